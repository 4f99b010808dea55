"""SqlAppraisalStore: record, get, recent; its unit of work (`begin`): the challenge's consumption, the appraisal row
and its audit row commit together or not at all, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from sqlalchemy import event, select

from verifier.challenges import ConsumeOutcome
from verifier.errors import UnavailableError
from verifier.recording import AppraisalRecord
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.tables import ChallengeRow

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
FINDINGS = [
    {"code": "NITRO_PCR_MATCH", "claim": "executables", "value": 2, "expected": "ab" * 48, "actual": "ab" * 48},
    {"code": "NITRO_DEBUG", "claim": "configuration", "value": 32, "detail": {"nested": [1, None, "x"]}},
]


@pytest.fixture
def store(db: Database) -> SqlAppraisalStore:
    return SqlAppraisalStore(db)


def _record(store: SqlAppraisalStore, at: dt.datetime, **overrides: object) -> str:
    appraisal_id = str(uuid.uuid4())
    fields: dict[str, object] = {
        "appraisal_id": appraisal_id,
        "appraised_at": at,
        "tee": "nitro",
        "status": "affirming",
        "policy_id": "default",
        "evidence_sha256": hashlib.sha256(appraisal_id.encode()).hexdigest(),
        "findings": FINDINGS,
        "token_id": "jti-" + appraisal_id[:8],
        "request_id": None,
    }
    fields.update(overrides)
    store.record(**fields)  # type: ignore[arg-type]
    return appraisal_id


def test_record_and_get(store: SqlAppraisalStore) -> None:
    appraisal_id = _record(store, T0, request_id="req-1")
    got = store.get(appraisal_id)
    assert got is not None
    assert got["appraisal_id"] == appraisal_id
    assert got["appraised_at"] == T0 and got["appraised_at"].tzinfo is not None
    assert got["findings"] == FINDINGS
    assert got["tee"] == "nitro" and got["status"] == "affirming" and got["policy_id"] == "default"
    assert got["request_id"] == "req-1" and got["token_id"].startswith("jti-")


def test_get_unknown(store: SqlAppraisalStore) -> None:
    assert store.get(str(uuid.uuid4())) is None


def test_recent_newest_first(store: SqlAppraisalStore) -> None:
    ids = [_record(store, T0 + dt.timedelta(minutes=i), token_id=None) for i in range(5)]
    assert [a["appraisal_id"] for a in store.recent(3)] == ids[::-1][:3]
    assert store.recent(0) == []


def test_bad_digest_rejected(store: SqlAppraisalStore) -> None:
    with pytest.raises(ValueError):
        _record(store, T0, evidence_sha256="AB" * 32)


# --- the unit of work (`SqlAppraisalStore.begin`): challenge, appraisal row and audit row in one transaction ------


def _appraisal(status: str = "affirming") -> AppraisalRecord:
    appraisal_id = str(uuid.uuid4())
    return AppraisalRecord(
        appraisal_id=appraisal_id,
        appraised_at=T0,
        tee="nitro",
        status=status,
        policy_id="default",
        evidence_sha256=hashlib.sha256(appraisal_id.encode()).hexdigest(),
        findings=tuple(FINDINGS),
        token_id="jti-" + appraisal_id[:8],
        request_id=None,
    )


def _challenge(db: Database) -> bytes:
    nonce = os.urandom(32)
    SqlChallengeStore(db).create(nonce, now=T0 - dt.timedelta(seconds=1), ttl=dt.timedelta(minutes=5))
    return nonce


def _seen(observer: Database, nonce: bytes, appraisal_id: str) -> tuple[bool, bool, int]:
    """What another engine (another replica) sees: the challenge consumed, the appraisal row, its audit rows."""
    with observer.session() as session:
        consumed = session.scalar(select(ChallengeRow.consumed_at).where(ChallengeRow.nonce == nonce))
    audited = [e for e in audit.entries(observer, action="appraisal") if e.subject == appraisal_id]
    return consumed is not None, SqlAppraisalStore(observer).get(appraisal_id) is not None, len(audited)


@pytest.fixture
def observer(database_url: str, db: Database) -> Iterator[Database]:
    other = Database(database_url)
    try:
        yield other
    finally:
        other.dispose()


def test_a_unit_commits_consumption_appraisal_and_audit_row_together(
    store: SqlAppraisalStore, db: Database, observer: Database
) -> None:
    nonce, record = _challenge(db), _appraisal()
    with store.begin() as unit:
        assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
        unit.record(record)
        assert _seen(observer, nonce, record.appraisal_id) == (False, False, 0)  # nothing before the commit
    assert _seen(observer, nonce, record.appraisal_id) == (True, True, 1)  # everything after it
    assert SqlChallengeStore(db).consume(nonce, at=T0) is ConsumeOutcome.ALREADY_USED
    (entry,) = audit.entries(db, action="appraisal")
    assert entry.details["token_id"] == record.token_id and entry.details["evidence_sha256"] == record.evidence_sha256
    assert audit.verify_chain(db).ok


def test_a_unit_that_raises_leaves_nothing_and_the_nonce_unused(
    store: SqlAppraisalStore, db: Database, observer: Database
) -> None:
    nonce, record = _challenge(db), _appraisal()
    with pytest.raises(RuntimeError, match="before the commit"), store.begin() as unit:
        assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
        unit.record(record)
        raise RuntimeError("the caller failed after the last statement, before the commit")
    assert _seen(observer, nonce, record.appraisal_id) == (False, False, 0)
    assert SqlChallengeStore(db).consume(nonce, at=T0) is ConsumeOutcome.OK  # a retry can still use it


def test_a_bad_digest_rolls_back_the_consumption_too(store: SqlAppraisalStore, db: Database) -> None:
    nonce = _challenge(db)
    with pytest.raises(ValueError), store.begin() as unit:
        assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
        unit.record(replace(_appraisal(), evidence_sha256="AB" * 32))
    assert SqlChallengeStore(db).consume(nonce, at=T0) is ConsumeOutcome.OK


@pytest.mark.parametrize("table", ["appraisals", "audit_log"])
def test_a_failing_insert_rolls_back_the_whole_unit(
    store: SqlAppraisalStore, db: Database, observer: Database, table: str
) -> None:
    """The database refuses the appraisal row (or its audit row, the unit's last statement) as a full disk does:
    DATABASE_FULL, and neither the challenge's consumption nor any row survives."""
    nonce, record = _challenge(db), _appraisal()
    full: BaseException = (
        psycopg.errors.DiskFull("injected")
        if db.dialect == "postgresql"
        else sqlite3.OperationalError("database or disk is full")
    )

    def refuse(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(f"INSERT INTO {table.upper()}"):
            raise full

    event.listen(db.engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(UnavailableError) as info, store.begin() as unit:
            assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
            unit.record(record)
    finally:
        event.remove(db.engine, "before_cursor_execute", refuse)
    assert info.value.code == "DATABASE_FULL"
    assert _seen(observer, nonce, record.appraisal_id) == (False, False, 0)
    assert audit.entries(db) == []
    with store.begin() as unit:  # the retry
        assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
        unit.record(record)
    assert _seen(observer, nonce, record.appraisal_id) == (True, True, 1)
    assert audit.verify_chain(db).ok


@pytest.mark.parametrize("ends", ["commit", "rollback"])
def test_a_unit_consuming_a_nonce_another_unit_holds_sees_how_that_one_ended(
    store: SqlAppraisalStore, db: Database, observer: Database, ends: str
) -> None:
    """Two replicas, the same nonce: the second waits for the first's transaction; it gets ALREADY_USED when the
    first committed and OK when it rolled back (the nonce was never spent)."""
    nonce = _challenge(db)
    consumed, release = threading.Event(), threading.Event()

    def first() -> None:
        with contextlib.suppress(RuntimeError), store.begin() as unit:
            assert unit.consume(nonce, at=T0) is ConsumeOutcome.OK
            consumed.set()
            assert release.wait(timeout=10)
            if ends == "rollback":
                raise RuntimeError("recording failed")

    def second() -> ConsumeOutcome:
        assert consumed.wait(timeout=10)
        with SqlAppraisalStore(observer).begin() as unit:
            return unit.consume(nonce, at=T0)

    with ThreadPoolExecutor(2) as pool:
        holder, waiter = pool.submit(first), pool.submit(second)
        time.sleep(0.3)  # the second is (most likely) waiting on the first's lock now; either way the answer holds
        release.set()
        holder.result(timeout=10)
        outcome = waiter.result(timeout=10)
    assert outcome is (ConsumeOutcome.ALREADY_USED if ends == "commit" else ConsumeOutcome.OK)


def test_an_ended_unit_cannot_be_used(store: SqlAppraisalStore, db: Database) -> None:
    nonce = _challenge(db)
    with store.begin() as unit:
        pass
    with pytest.raises(RuntimeError):
        unit.consume(nonce, at=T0)
    with pytest.raises(RuntimeError):
        unit.record(_appraisal())
    assert SqlChallengeStore(db).consume(nonce, at=T0) is ConsumeOutcome.OK
