"""SqlChallengeStore: single use under concurrency (in its own transaction and in the appraisal unit of work),
expiry, unknown nonces, purge."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from verifier.challenges import Challenge, ConsumeOutcome
from verifier.errors import RequestError
from verifier.recording import AppraisalRecord
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
TTL = dt.timedelta(minutes=5)


@pytest.fixture
def store(db: Database) -> SqlChallengeStore:
    return SqlChallengeStore(db)


def test_create_returns_challenge(store: SqlChallengeStore) -> None:
    nonce = os.urandom(32)
    assert store.create(nonce, now=T0, ttl=TTL) == Challenge(nonce=nonce, created_at=T0, expires_at=T0 + TTL)


def test_consume_once(store: SqlChallengeStore) -> None:
    nonce = os.urandom(32)
    store.create(nonce, now=T0, ttl=TTL)
    assert store.consume(nonce, at=T0 + dt.timedelta(seconds=1)) is ConsumeOutcome.OK
    assert store.consume(nonce, at=T0 + dt.timedelta(seconds=2)) is ConsumeOutcome.ALREADY_USED
    assert store.consume(nonce, at=T0 + 2 * TTL) is ConsumeOutcome.ALREADY_USED


def test_expired_and_unknown(store: SqlChallengeStore) -> None:
    nonce = os.urandom(32)
    store.create(nonce, now=T0, ttl=TTL)
    assert store.consume(nonce, at=T0 + TTL) is ConsumeOutcome.EXPIRED  # expires_at is exclusive
    assert store.consume(nonce, at=T0 + TTL) is ConsumeOutcome.EXPIRED  # a failed consume does not mark it
    assert store.consume(os.urandom(32), at=T0) is ConsumeOutcome.UNKNOWN


def test_consume_with_other_timezone(store: SqlChallengeStore) -> None:
    nonce = os.urandom(16)
    store.create(nonce, now=T0, ttl=TTL)
    minus_five = dt.timezone(dt.timedelta(hours=-5))
    assert store.consume(nonce, at=(T0 + TTL - dt.timedelta(seconds=1)).astimezone(minus_five)) is ConsumeOutcome.OK


def _in_unit_of_work(db: Database, nonce: bytes, at: dt.datetime) -> ConsumeOutcome:
    """Consume as an appraisal does: in the unit of work that records the appraisal (whatever the outcome)."""
    with SqlAppraisalStore(db).begin() as unit:
        outcome = unit.consume(nonce, at=at)
        appraisal_id = str(uuid.uuid4())
        unit.record(
            AppraisalRecord(
                appraisal_id=appraisal_id,
                appraised_at=at,
                tee="nitro",
                status=outcome.value,
                policy_id="default",
                evidence_sha256=hashlib.sha256(appraisal_id.encode()).hexdigest(),
                findings=(),
                token_id=None,
                request_id=None,
            )
        )
    return outcome


CONSUMERS: dict[str, Callable[[Database, bytes, dt.datetime], ConsumeOutcome]] = {
    "own-transaction": lambda db, nonce, at: SqlChallengeStore(db).consume(nonce, at=at),
    "unit-of-work": _in_unit_of_work,
}


def _recorded(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AppraisalRow)) or 0)


@pytest.mark.parametrize("path", CONSUMERS)
def test_consume_exactly_once_under_concurrency(db: Database, path: str) -> None:
    threads, consume = 8, CONSUMERS[path]
    for round_ in range(3):
        nonce = os.urandom(32)
        SqlChallengeStore(db).create(nonce, now=T0, ttl=TTL)
        barrier = threading.Barrier(threads)

        def attempt(_: int, nonce: bytes = nonce, barrier: threading.Barrier = barrier) -> ConsumeOutcome:
            barrier.wait()
            return consume(db, nonce, T0 + dt.timedelta(seconds=1))

        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(attempt, range(threads)))
        assert sorted(outcomes) == sorted([ConsumeOutcome.OK] + [ConsumeOutcome.ALREADY_USED] * (threads - 1)), round_
    if path == "unit-of-work":  # every attempt recorded its (possibly negative) result, on one chain
        check = audit.verify_chain(db)
        assert _recorded(db) == 3 * threads and check.ok and check.rows == 3 * threads


@pytest.mark.parametrize("path", CONSUMERS)
def test_consume_exactly_once_across_replicas(database_url: str, db: Database, path: str) -> None:
    """Separate engines (as in separate processes) sharing one database."""
    replicas, consume = [Database(database_url) for _ in range(4)], CONSUMERS[path]
    try:
        nonce = os.urandom(32)
        SqlChallengeStore(db).create(nonce, now=T0, ttl=TTL)
        barrier = threading.Barrier(len(replicas))

        def attempt(replica: Database) -> ConsumeOutcome:
            barrier.wait()
            return consume(replica, nonce, T0)

        with ThreadPoolExecutor(len(replicas)) as pool:
            outcomes = list(pool.map(attempt, replicas))
        assert outcomes.count(ConsumeOutcome.OK) == 1
        assert outcomes.count(ConsumeOutcome.ALREADY_USED) == len(replicas) - 1
    finally:
        for replica in replicas:
            replica.dispose()


def test_duplicate_nonce(store: SqlChallengeStore) -> None:
    nonce = os.urandom(32)
    store.create(nonce, now=T0, ttl=TTL)
    with pytest.raises(RequestError) as info:
        store.create(nonce, now=T0, ttl=TTL)
    assert info.value.code == "CHALLENGE_NONCE_EXISTS"


@pytest.mark.parametrize("nonce", [b"", b"x" * 65])
def test_nonce_length_bounds(store: SqlChallengeStore, nonce: bytes) -> None:
    with pytest.raises(RequestError) as info:
        store.create(nonce, now=T0, ttl=TTL)
    assert info.value.code == "CHALLENGE_NONCE_LENGTH"


def test_max_length_nonce(store: SqlChallengeStore) -> None:
    nonce = b"\xff" * 64
    store.create(nonce, now=T0, ttl=TTL)
    assert store.consume(nonce, at=T0) is ConsumeOutcome.OK


def test_non_positive_ttl(store: SqlChallengeStore) -> None:
    with pytest.raises(RequestError):
        store.create(os.urandom(8), now=T0, ttl=dt.timedelta(0))


def test_purge_expired(store: SqlChallengeStore) -> None:
    old, fresh = os.urandom(32), os.urandom(32)
    store.create(old, now=T0, ttl=TTL)
    store.create(fresh, now=T0 + TTL, ttl=TTL)
    assert store.purge_expired(T0 + TTL) == 1
    assert store.purge_expired(T0 + TTL) == 0
    assert store.consume(old, at=T0) is ConsumeOutcome.UNKNOWN
    assert store.consume(fresh, at=T0 + TTL) is ConsumeOutcome.OK


def _count(db: Database) -> int:
    from verifier.storage.tables import ChallengeRow

    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(ChallengeRow)) or 0)


def test_creating_challenges_purges_expired_ones_in_batches(db: Database) -> None:
    """Issue 11 item 8: a flood of CreateChallenge calls does not grow the table without bound."""
    store = SqlChallengeStore(db, purge_every=1, purge_batch=3, purge_grace=dt.timedelta(minutes=1))
    for _ in range(7):
        store.create(os.urandom(32), now=T0, ttl=TTL)
    assert _count(db) == 7
    fresh = os.urandom(32)
    later = T0 + TTL + dt.timedelta(minutes=1)  # the first seven expired a grace period ago
    store.create(fresh, now=later, ttl=TTL)
    assert _count(db) == 8 - 3  # one batch of at most 3
    for _ in range(2):
        store.create(os.urandom(32), now=later, ttl=TTL)
    assert _count(db) == 3  # the 7 old ones are gone, the 3 new ones stay
    assert store.consume(fresh, at=later) is ConsumeOutcome.OK


def test_the_default_store_purges_too(db: Database) -> None:
    store = SqlChallengeStore(db)
    for _ in range(20):
        store.create(os.urandom(32), now=T0, ttl=TTL)
    day = T0 + dt.timedelta(days=1)
    for _ in range(20):
        store.create(os.urandom(32), now=day, ttl=TTL)
    assert _count(db) == 20
