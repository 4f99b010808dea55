"""The instant a client certificate is checked at (verifier/trust/client_certs.py `ClientCertVerifier.check`,
its `_utc`) against a mutant scripts/mutation.py left alive after issue 12.

An admin (or appraisal) client certificate is valid or not at an instant, not at a wall-clock reading: an aware
`at` in any zone is that instant, and a naive `at` is UTC whatever the server's local zone. A certificate used one
microsecond past its notAfter, or before its notBefore, is refused however the caller spelled the time."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator

import pytest

from tests.unit.trust.test_client_certs import NOW, TICK, _ca, _check, _leaf, _refused

EAST = dt.timezone(dt.timedelta(hours=2), "UTC+2")
WEST = dt.timezone(dt.timedelta(hours=-5), "UTC-5")


@pytest.mark.parametrize("zone", [EAST, WEST], ids=["utc+2", "utc-5"])
def test_an_aware_instant_in_another_zone_is_that_instant(zone: dt.timezone) -> None:
    admin = _ca()
    expiring = _leaf(admin, not_after=NOW)
    assert _check([admin], expiring, at=NOW.astimezone(zone)).leaf == expiring.cert
    assert _refused([admin], expiring, at=(NOW + TICK).astimezone(zone)).code == "CERT_EXPIRED"
    starting = _leaf(admin, "bob", not_before=NOW)
    assert _check([admin], starting, at=NOW.astimezone(zone)).leaf == starting.cert
    assert _refused([admin], starting, at=(NOW - TICK).astimezone(zone)).code == "CERT_NOT_YET_VALID"


@pytest.fixture
def local_zone_tokyo() -> Iterator[None]:
    """The process's local zone set to UTC+9 (POSIX TZ, no tz database needed), restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "JST-9"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("local_zone_tokyo")
def test_a_naive_instant_is_utc_whatever_the_local_zone() -> None:
    """A server whose local zone is not UTC reads a naive `at` as UTC still (not as local time, which would move a
    certificate's validity by the zone's offset)."""
    assert time.localtime(0).tm_hour == 9  # the zone really is UTC+9 for this test
    admin = _ca()
    expiring = _leaf(admin, not_after=NOW)
    assert _check([admin], expiring, at=NOW.replace(tzinfo=None)).leaf == expiring.cert
    assert _refused([admin], expiring, at=(NOW + TICK).replace(tzinfo=None)).code == "CERT_EXPIRED"
    starting = _leaf(admin, "bob", not_before=NOW)
    assert _refused([admin], starting, at=(NOW - TICK).replace(tzinfo=None)).code == "CERT_NOT_YET_VALID"
