"""Issue 16 surviving mutants: `verifier.collateral.cache._newest` (which cached copy of one key wins; a wrong
choice rolls collateral back) and the bounds of `verifier.storage.challenges.SqlChallengeStore`."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.fakes.kds_server import make_crl
from verifier.challenges import Challenge, ConsumeOutcome
from verifier.collateral.base import CollateralItem, CollateralKey
from verifier.collateral.cache import _newest
from verifier.collateral.ordering import version_of
from verifier.errors import RequestError
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.tables import NONCE_MAX_BYTES
from verifier.tee.sevsnp.collateral_keys import crl_key
from verifier.tee.sevsnp.tcb import Product

NEXT = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
EARLY = dt.datetime(2025, 1, 20, tzinfo=dt.UTC)
LATE = EARLY + dt.timedelta(hours=1)
CRL = crl_key(Product.MILAN)
TCB = CollateralKey("intel.tcb_info", (("fmspc", "00606a000000"),))
VCEK = CollateralKey("amd.vcek", (("product", "Milan"),))

CRL6 = make_crl(NEXT, number=6)
CRL7 = make_crl(NEXT - dt.timedelta(days=1), number=7)  # newer by number, whatever its dates


def _tcb_info(number: int) -> bytes:
    body = json.dumps({"tcbInfo": {"issueDate": "2025-01-02T03:04:05Z", "tcbEvaluationDataNumber": number}})
    return json.dumps({"body": body, "issuer_chain": "-----BEGIN CERTIFICATE-----\n"}).encode()


TCB16, TCB17 = _tcb_info(16), _tcb_info(17)


def _item(key: CollateralKey, data: bytes, fetched_at: dt.datetime, source: str = "cache") -> CollateralItem:
    return CollateralItem(key=key, data=data, fetched_at=fetched_at, next_update=NEXT, source=source)


def test_fixtures_are_ordered_as_intended() -> None:
    v6, v7 = version_of(CRL.kind, CRL6), version_of(CRL.kind, CRL7)
    t16, t17 = version_of(TCB.kind, TCB16), version_of(TCB.kind, TCB17)
    assert v6 is not None and v7 is not None and v6.older_than(v7)
    assert t16 is not None and t17 is not None and t16.older_than(t17)
    assert version_of(VCEK.kind, b"vcek") is None


# (key, data of a, fetched_at of a, data of b, fetched_at of b, which one wins)
NEWEST_CASES = [
    # By version: the fetch times point the other way, so a fallback to them would pick the older copy.
    pytest.param(CRL, CRL6, LATE, CRL7, EARLY, "b", id="crl-a-older-b-fetched-earlier"),
    pytest.param(CRL, CRL7, EARLY, CRL6, LATE, "a", id="crl-b-older-b-fetched-later"),
    pytest.param(TCB, TCB16, LATE, TCB17, EARLY, "b", id="tcb-a-older-b-fetched-earlier"),
    pytest.param(TCB, TCB17, EARLY, TCB16, LATE, "a", id="tcb-b-older-b-fetched-later"),
    # Equal versions: the later fetched; at the same instant `a` is kept.
    pytest.param(CRL, CRL7, EARLY, CRL7, LATE, "b", id="crl-equal-b-later"),
    pytest.param(CRL, CRL7, LATE, CRL7, EARLY, "a", id="crl-equal-b-earlier"),
    pytest.param(CRL, CRL7, EARLY, CRL7, EARLY, "a", id="crl-equal-same-instant"),
    pytest.param(TCB, TCB17, EARLY, TCB17, EARLY, "a", id="tcb-equal-same-instant"),
    # Unknown versions (certificates have no order; unparsable bytes): the later fetched; a tie keeps `a`.
    pytest.param(VCEK, b"vcek-1", EARLY, b"vcek-2", LATE, "b", id="unordered-b-later"),
    pytest.param(VCEK, b"vcek-1", LATE, b"vcek-2", EARLY, "a", id="unordered-b-earlier"),
    pytest.param(VCEK, b"vcek-1", EARLY, b"vcek-2", EARLY, "a", id="unordered-same-instant"),
    pytest.param(CRL, b"garbage", EARLY, CRL6, EARLY, "a", id="one-unparsable-same-instant"),
    pytest.param(CRL, b"garbage", EARLY, CRL6, LATE, "b", id="one-unparsable-b-later"),
]


@pytest.mark.parametrize(("key", "a_data", "a_at", "b_data", "b_at", "winner"), NEWEST_CASES)
def test_newest(
    key: CollateralKey, a_data: bytes, a_at: dt.datetime, b_data: bytes, b_at: dt.datetime, winner: str
) -> None:
    a = _item(key, a_data, a_at, source="memory")
    b = _item(key, b_data, b_at, source="database")
    assert _newest(a, b) is (a if winner == "a" else b)


def test_newest_with_one_missing() -> None:
    a = _item(CRL, CRL6, EARLY)
    assert _newest(a, None) is a
    assert _newest(None, a) is a
    assert _newest(None, None) is None


T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(minutes=5)
BOUNDS_MESSAGE = "purge_every >= 0 (0: never), purge_batch >= 1, purge_grace >= 0"


def test_purge_batch_zero_refused(sqlite_db: Database) -> None:
    with pytest.raises(ValueError) as raised:
        SqlChallengeStore(sqlite_db, purge_batch=0)
    assert str(raised.value) == BOUNDS_MESSAGE


def test_purge_batch_one_accepted_and_purges_one(sqlite_db: Database) -> None:
    store = SqlChallengeStore(sqlite_db, purge_every=1, purge_batch=1, purge_grace=dt.timedelta(0))
    store.create(b"first", now=T0, ttl=TTL)  # the first create purges (nothing yet)
    store.create(b"second", now=T0 + dt.timedelta(seconds=1), ttl=TTL)  # purges nothing: none expired
    store.create(b"third", now=T0 + 2 * TTL, ttl=TTL)  # purges at most one: the oldest expired
    at = T0 + 2 * TTL
    assert store.consume(b"first", at=at) is ConsumeOutcome.UNKNOWN
    assert store.consume(b"second", at=at) is ConsumeOutcome.EXPIRED
    assert store.consume(b"third", at=at) is ConsumeOutcome.OK


@pytest.mark.parametrize("length", [pytest.param(1, id="one-byte"), pytest.param(NONCE_MAX_BYTES, id="max-bytes")])
def test_nonce_length_accepted(sqlite_db: Database, length: int) -> None:
    store = SqlChallengeStore(sqlite_db)
    nonce = bytes(range(1, length + 1))
    assert store.create(nonce, now=T0, ttl=TTL) == Challenge(nonce=nonce, created_at=T0, expires_at=T0 + TTL)
    assert store.consume(nonce, at=T0) is ConsumeOutcome.OK


@pytest.mark.parametrize("length", [pytest.param(0, id="empty"), pytest.param(NONCE_MAX_BYTES + 1, id="max-plus-one")])
def test_nonce_length_refused(sqlite_db: Database, length: int) -> None:
    store = SqlChallengeStore(sqlite_db)
    nonce = b"\x01" * length
    with pytest.raises(RequestError) as raised:
        store.create(nonce, now=T0, ttl=TTL)
    assert raised.value.code == "CHALLENGE_NONCE_LENGTH"
    assert raised.value.message == f"nonce must be 1 to {NONCE_MAX_BYTES} bytes"
    assert store.consume(nonce, at=T0) is ConsumeOutcome.UNKNOWN  # nothing was stored
