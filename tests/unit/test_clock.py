"""verifier/clock.py's timestamp parsers: every bad timestamp is a ValueError, including instants that parse but lie
outside datetime's range once converted to UTC (before, an OverflowError escaped to callers that catch ValueError:
the CLI's --at, manifests, key rings, audit checkpoints, Intel collateral dates)."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier.clock import as_utc, parse_iso_utc, parse_rfc3339

EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("text", EDGES, ids=["year-1-east", "year-9999-west"])
@pytest.mark.parametrize("parse", [parse_rfc3339, parse_iso_utc], ids=["rfc3339", "iso-utc"])
def test_an_instant_outside_the_utc_range_is_a_value_error(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(ValueError, match="outside the range"):
        parse(text)


def test_the_edges_that_fit_still_parse() -> None:
    assert parse_rfc3339("0001-01-01T00:00:00Z") == dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    assert parse_rfc3339("0001-01-01T00:00:00-01:00") == dt.datetime(1, 1, 1, 1, tzinfo=dt.UTC)
    assert parse_iso_utc("9999-12-31T23:59:59") == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert parse_iso_utc("2025-01-01T01:00:00+01:00") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def test_parse_rfc3339_still_needs_a_zone_and_as_utc_converts() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        parse_rfc3339("2025-01-01T00:00:00")
    east = dt.datetime(2025, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert as_utc(east) == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
