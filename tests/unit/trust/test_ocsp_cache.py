"""The OCSP status cache of verifier.trust.ocsp: verified statuses by (issuer, serial), served only inside their
window (never at or past nextUpdate), the newer status winning, bounded."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from tests.fakes.nvidia_ocsp import (
    AT,
    DAY,
    HOUR,
    DirectFetcher,
    FakeNvidiaPki,
    FakeOcspResponder,
    good_responses,
    nvidia_pki_fixture,
    ocsp_response,
)
from verifier.trust.ocsp import OcspCache, check_chain
from verifier.trust.ocsp_response import CLOCK_SKEW, VerifiedStatus

nvidia_pki = nvidia_pki_fixture


def status(
    kind: str = "good", *, this_update: dt.datetime = AT - HOUR, next_update: dt.datetime | None = AT + DAY
) -> VerifiedStatus:
    return VerifiedStatus(kind, None, this_update, next_update, this_update)  # type: ignore[arg-type]


def test_a_verified_status_is_served_from_the_cache_until_nextupdate(nvidia_pki: FakeNvidiaPki) -> None:
    cache = OcspCache()
    assert check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki), cache=cache).status == "good"
    assert len(cache) == 3
    fetcher = DirectFetcher(FakeOcspResponder(nvidia_pki), unavailable=True)
    later = check_chain(nvidia_pki.chain, at=AT + DAY - dt.timedelta(seconds=1), fetch=fetcher, cache=cache)
    assert later.status == "good" and {c.source for c in later.certificates} == {"cache"}
    assert fetcher.asked == []
    for at in (AT + DAY, AT + 2 * DAY):  # at nextUpdate and past it: never served
        assert check_chain(nvidia_pki.chain, at=at, cache=cache).status == "unavailable"
    assert check_chain(nvidia_pki.chain, at=AT - HOUR - CLOCK_SKEW - dt.timedelta(seconds=1), cache=cache).status == (
        "unavailable"
    )


def test_a_newer_revoked_response_supersedes_a_cached_good_one(nvidia_pki: FakeNvidiaPki) -> None:
    cache = OcspCache()
    check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki), cache=cache)
    revoked = ocsp_response(
        nvidia_pki.chain[1],
        nvidia_pki.issued[2],
        status="revoked",
        reason=x509.ReasonFlags.key_compromise,
        this_update=AT,
    )
    assert check_chain(nvidia_pki.chain, at=AT, responses=[revoked], cache=cache).status == "revoked"
    # an older "good" supplied later does not mask the cached revocation
    replayed = check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki), cache=cache)
    assert replayed.status == "revoked" and replayed.certificates[0].source == "cache"


def test_a_fresh_good_response_replaces_an_older_cached_one(nvidia_pki: FakeNvidiaPki) -> None:
    cache = OcspCache()
    check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki, next_update=AT + HOUR), cache=cache)
    check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki, this_update=AT), cache=cache)
    outcome = check_chain(nvidia_pki.chain, at=AT + 2 * HOUR, cache=cache)  # the first set has expired by now
    assert outcome.status == "good" and outcome.next_update == AT + DAY


def test_cache_rules() -> None:
    cache = OcspCache(max_entries=2)
    key_a, key_b, key_c = (b"a" * 32, 1), (b"b" * 32, 1), (b"a" * 32, 2)
    cache.put(key_a, status("unknown"))
    cache.put(key_b, status(next_update=None))
    assert len(cache) == 0  # unknown and windowless statuses are never kept
    cache.put(key_a, status())
    assert cache.get(key_a, AT) is not None and cache.get(key_b, AT) is None  # by issuer and serial
    assert cache.get((b"a" * 32, 2), AT) is None
    cache.put(key_a, status("revoked", this_update=AT - 2 * HOUR))
    assert cache.get(key_a, AT) == status()  # an older status does not replace a newer one
    cache.put(key_a, status("revoked"))
    held = cache.get(key_a, AT)
    assert held is not None and held.status == "revoked"  # same thisUpdate: revoked wins
    cache.put(key_b, status())
    cache.put(key_c, status())
    assert len(cache) == 2 and cache.get(key_a, AT) is None  # least recently used dropped
