"""Appraisals are audited in the same transaction as their record; the hash chain names edited, deleted and
reordered rows; tokens carry the policy hash and the reference-set version. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import delete, func, select, update

from tests.service_helpers import Harness, make_harness
from verifier.appraisal.policy import Policy, policy_sha256
from verifier.service import AppraisalRequest
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow, AuditRow

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


@pytest.fixture
def h(db: Database) -> Harness:
    harness = make_harness(db)
    harness.service.reference_set_version = lambda: audit.reference_set_version(db)
    harness.approve()
    return harness


def appraise_n(h: Harness, n: int) -> list[str]:
    return [h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal_id for _ in range(n)]


def _rows(db: Database) -> list[AuditRow]:
    with db.session() as session:
        return list(session.scalars(select(AuditRow).order_by(AuditRow.seq)))


def test_each_appraisal_appends_one_audit_row_with_its_details(db: Database, h: Harness) -> None:
    with db.session() as session:
        version = audit.bump_reference_set(session, h.clock.now())
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(), request_id="req-1"))
    (row,) = [r for r in _rows(db) if r.action == "appraisal"]
    assert row.subject == result.appraisal_id
    assert row.at == result.appraised_at
    assert row.details == {
        "tee": "nitro",
        "status": "affirming",
        "policy_id": "default",
        "policy_sha256": policy_sha256(Policy()),
        "evidence_sha256": row.details["evidence_sha256"],
        "token_id": result.token_id,
        "reference_set_version": version,
        "request_id": "req-1",
    }
    with db.session() as session:
        recorded = session.get(AppraisalRow, result.appraisal_id)
        assert recorded is not None and recorded.evidence_sha256 == row.details["evidence_sha256"]
    assert audit.verify_chain(db).ok


def test_token_carries_policy_hash_and_reference_set_version(db: Database, h: Harness) -> None:
    with db.session() as session:
        before = audit.reference_set_version(db)
        version = audit.bump_reference_set(session, h.clock.now())
    assert version == before + 1
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    claims = jwt.decode(
        result.token,
        KeySet.import_key_set(h.service.jwks()),  # type: ignore[arg-type]
        algorithms=["ES256"],
    ).claims
    sub = claims["submods"]["nitro"]
    assert sub["ear_verifier_claims"]["reference_set_version"] == version
    assert sub["ear_verifier_claims"]["policy_sha256"] == policy_sha256(Policy())
    assert sub["ear_appraisal_policy_ids"] == ["default"]


def test_untouched_log_passes(db: Database, h: Harness) -> None:
    before = len(_rows(db))  # approving the reference values may be audited too
    ids = appraise_n(h, 4)
    check = audit.verify_chain(db)
    assert check.ok and check.rows == before + 4
    assert [e.subject for e in audit.entries(db, after=before)] == ids
    assert [e.subject for e in audit.entries(db, action="appraisal")] == ids


def test_verify_chain_reports_the_head_and_the_hashes_at_checkpoint_sizes(db: Database, h: Harness) -> None:
    appraise_n(h, 3)
    rows = _rows(db)
    check = audit.verify_chain(db, at={0, 2, len(rows), len(rows) + 5})
    assert check.ok and check.good == len(rows) and check.head == rows[-1].hash
    assert check.hashes == {0: audit.GENESIS, 2: rows[1].hash, len(rows): rows[-1].hash}
    with db.session() as session:
        session.execute(update(AuditRow.__table__).where(AuditRow.__table__.c.seq == len(rows)).values(actor="x"))
    broken = audit.verify_chain(db, at={len(rows)})
    assert not broken.ok and broken.good == len(rows) - 1 and broken.head == rows[-2].hash and broken.hashes == {}


def test_editing_details_in_sql_names_the_row(db: Database, h: Harness) -> None:
    seq = len(_rows(db)) + 2
    appraise_n(h, 3)
    with db.session() as session:
        row = session.get(AuditRow, seq)
        assert row is not None and row.action == "appraisal"
        details: dict[str, Any] = {**row.details, "status": "contraindicated"}
        session.execute(update(AuditRow.__table__).where(AuditRow.__table__.c.seq == seq).values(details=details))
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == seq
    assert "edited" in check.reason


def test_deleting_a_row_names_the_gap(db: Database, h: Harness) -> None:
    seq = len(_rows(db)) + 2
    appraise_n(h, 3)
    with db.session() as session:
        session.execute(delete(AuditRow.__table__).where(AuditRow.__table__.c.seq == seq))
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == seq
    assert "missing" in check.reason


def test_swapping_two_rows_content_is_detected(db: Database, h: Harness) -> None:
    seq = len(_rows(db)) + 2
    appraise_n(h, 3)
    table = AuditRow.__table__
    cols = ["at", "actor", "action", "subject", "details", "prev_hash", "hash"]
    with db.session() as session:
        two, three = (
            session.execute(select(*[table.c[c] for c in cols]).where(table.c.seq == s)).one() for s in (seq, seq + 1)
        )
        session.execute(update(table).where(table.c.seq == seq).values(hash="x" * 64))
        session.execute(update(table).where(table.c.seq == seq + 1).values(dict(zip(cols, two, strict=True))))
        session.execute(update(table).where(table.c.seq == seq).values(dict(zip(cols, three, strict=True))))
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == seq
    assert "does not chain" in check.reason


def test_appraisal_and_audit_row_commit_together(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqlAppraisalStore(db)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit append failed")

    monkeypatch.setattr(audit, "append_many_at_version", broken)
    with pytest.raises(RuntimeError):
        store.record(
            appraisal_id=str(uuid.uuid4()),
            appraised_at=T0,
            tee="nitro",
            status="affirming",
            policy_id="default",
            evidence_sha256="ab" * 32,
            findings=[],
            token_id=None,
            request_id=None,
        )
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AppraisalRow)) == 0


def test_concurrent_appraisal_records_keep_one_chain(db: Database) -> None:
    store = SqlAppraisalStore(db)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                store.record(
                    appraisal_id=str(uuid.uuid4()),
                    appraised_at=T0,
                    tee="nitro",
                    status="affirming",
                    policy_id="default",
                    evidence_sha256="cd" * 32,
                    findings=[],
                    token_id=None,
                    request_id=None,
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = audit.verify_chain(db)
    assert check.ok and check.rows == 20


def test_a_stuck_appender_makes_others_busy_not_blocked(sqlite_db: Database, monkeypatch: Any) -> None:
    """Issue 11 item 1: one session holding the SQLite append lock stopped every appraisal; now the others give
    DATABASE_BUSY after a bounded wait (on SQLite the wait for this process's turn, `Database._sqlite_turn`, comes
    first and is bounded the same way)."""
    import threading

    from verifier.errors import UnavailableError
    from verifier.storage import audit as audit_module
    from verifier.storage import engine as engine_module

    monkeypatch.setattr(audit_module, "LOCK_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(engine_module, "SQLITE_TURN_WAIT_S", 0.2)
    held, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with sqlite_db.session() as session:
            audit_module._hold_until_transaction_ends(session)
            held.set()
            release.wait(timeout=5)

    thread = threading.Thread(target=stuck)
    thread.start()
    try:
        assert held.wait(timeout=5)
        with pytest.raises(UnavailableError) as busy, sqlite_db.session() as session:
            audit_module._hold_until_transaction_ends(session)
        assert busy.value.code == "DATABASE_BUSY"
    finally:
        release.set()
        thread.join(timeout=5)
