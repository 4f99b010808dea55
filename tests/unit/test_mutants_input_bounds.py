"""Tests that kill surviving mutants of scripts/mutation.py: input checks that no other test reached."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier.errors import ParseError
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.tee.nitro.parse import MAX_EVIDENCE_BYTES, parse
from verifier.tee.tdx.freshness import newer


def test_nitro_evidence_that_is_not_bytes_is_a_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        parse("not bytes")  # type: ignore[arg-type]
    assert info.value.code == "NITRO_COSE_MALFORMED"


def test_nitro_evidence_of_exactly_the_limit_is_not_refused_as_too_large() -> None:
    with pytest.raises(ParseError) as info:
        parse(b"\x00" * MAX_EVIDENCE_BYTES)
    assert info.value.code != "NITRO_EVIDENCE_TOO_LARGE"
    with pytest.raises(ParseError) as info:
        parse(b"\x00" * (MAX_EVIDENCE_BYTES + 1))
    assert info.value.code == "NITRO_EVIDENCE_TOO_LARGE"


def test_tdx_newer_without_any_candidate_raises() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        newer(None, None)


@pytest.mark.parametrize(
    "kwargs",
    [{"purge_every": -1}, {"purge_batch": 0}, {"purge_grace": dt.timedelta(seconds=-1)}],
)
def test_challenge_store_refuses_bad_purge_settings(sqlite_db: Database, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="purge_every"):
        SqlChallengeStore(sqlite_db, **kwargs)  # type: ignore[arg-type]


def test_challenge_store_accepts_a_zero_purge_grace(sqlite_db: Database) -> None:
    SqlChallengeStore(sqlite_db, purge_every=0, purge_grace=dt.timedelta(0))
