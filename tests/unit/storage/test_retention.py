"""Retention of appraisals and the audit log (issue 11 item 8, `verifier.storage.retention`), SQLite and PostgreSQL.

The audit log is pruned only under a checkpoint that verifies under the given key and whose head the chain
reproduces; afterwards `verify_chain` starts at the recorded prefix and still catches edits, deletions, truncation
and deletions without a prune record."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from verifier.results.audit_checkpoint import Checkpoint, sign_checkpoint
from verifier.results.signed_note import NoteSigner, generate_signer
from verifier.storage import audit, retention
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import SqlKeptEvidence
from verifier.storage.retention import AuditPruneError, prune_appraisals, prune_audit, run_retention
from verifier.storage.tables import AppraisalRow, AuditPruneRow, AuditRow

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
FAR = T0 + 3650 * DAY  # a keep_after that keeps nothing back
ORIGIN = "verifier.example/audit"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return generate_signer(ORIGIN)


def append(db: Database, n: int, start: dt.datetime = T0, step: dt.timedelta = dt.timedelta(minutes=1)) -> None:
    with db.session() as session:
        last = session.scalar(select(func.max(AuditRow.seq))) or 0
    for i in range(n):
        with db.session() as session:
            audit.append(session, at=start + (last + i) * step, actor="t", action="test", subject=str(last + i + 1))


def note(db: Database, signer: NoteSigner, size: int, head: str | None = None) -> str:
    """A checkpoint of the first `size` rows (`head` overrides the chain hash)."""
    with db.session() as session:
        stored = session.scalar(select(AuditRow.hash).where(AuditRow.seq == size)) if size else audit.GENESIS
    return sign_checkpoint(Checkpoint(ORIGIN, size, head or str(stored), T0), signer)


def seqs(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.scalars(select(AuditRow.seq).order_by(AuditRow.seq)))


def test_prune_then_verify_intact_and_appends_continue(db: Database, signer: NoteSigner) -> None:
    append(db, 10)
    eight = note(db, signer, 8)
    result = prune_audit(db, eight, [signer.verifier], FAR, now=T0)
    assert result == retention.AuditPruneResult(8, 8, True, True)
    assert seqs(db) == [9, 10, 11]  # 11: the audit.prune row
    check = audit.verify_chain(db, verifiers=[signer.verifier], at={0, 8, 9, 4})
    assert (check.ok, check.rows, check.good, check.pruned, check.prune_verified) == (True, 3, 11, 8, True)
    assert set(check.hashes) == {0, 8, 9}  # 4 is pruned: nothing to check it against
    assert audit.verify_chain(db).ok and not audit.verify_chain(db).prune_verified
    (prune_row,) = audit.entries(db, action="audit.prune")
    assert prune_row.subject == "1..8" and prune_row.details["checkpoint_size"] == 8
    append(db, 2)
    assert seqs(db)[-1] == 13 and audit.verify_chain(db, verifiers=[signer.verifier]).ok
    # the same checkpoint again: nothing more to do; a later one prunes further, recorded as a second prune
    assert prune_audit(db, eight, [signer.verifier], FAR) == retention.AuditPruneResult(8, 0, False, True)
    assert prune_audit(db, note(db, signer, 12), [signer.verifier], FAR).through == 12
    check = audit.verify_chain(db, verifiers=[signer.verifier])
    assert check.ok and check.pruned == 12 and len(check.prunes) == 2 and seqs(db)[0] == 13


def test_keep_after_and_the_newest_row_bound_the_prefix(db: Database, signer: NoteSigner) -> None:
    append(db, 6, step=DAY)  # row k appended at T0 + (k-1) days
    assert prune_audit(db, note(db, signer, 6), [signer.verifier], T0 + 2.5 * DAY).through == 3  # rows 4.. newer
    assert seqs(db) == [4, 5, 6, 7]  # 7: the audit.prune row
    assert prune_audit(db, note(db, signer, 7), [signer.verifier], FAR).through == 6  # row 7 is the newest
    assert seqs(db) == [7, 8] and audit.verify_chain(db, verifiers=[signer.verifier]).ok


@pytest.mark.parametrize("case", ["none", "no_key", "other_key", "bad_signature", "head", "too_big", "broken"])
def test_prune_is_refused_without_a_matching_checkpoint(db: Database, signer: NoteSigner, case: str) -> None:
    append(db, 5)
    other = generate_signer(ORIGIN)
    text: str | None = note(db, signer, 4)
    keys = [signer.verifier]
    code = "AUDIT_PRUNE_NEEDS_CHECKPOINT"
    if case == "none":
        text = None
    elif case == "no_key":
        keys = []
    elif case == "other_key":
        keys = [other.verifier]
    elif case == "bad_signature":
        assert text is not None
        text = text.replace("\n4\n", "\n3\n")
    elif case == "head":
        text, code = note(db, signer, 4, head="ab" * 32), "AUDIT_PRUNE_CHECKPOINT_MISMATCH"
    elif case == "too_big":
        text, code = note(db, signer, 9, head="ab" * 32), "AUDIT_PRUNE_CHECKPOINT_MISMATCH"
    else:
        with db.session() as session:
            session.execute(update(AuditRow.__table__).where(AuditRow.seq == 2).values(subject="edited"))
        code = "AUDIT_PRUNE_CHAIN_BROKEN"
    with pytest.raises(AuditPruneError) as info:
        prune_audit(db, text, keys, FAR)
    assert info.value.code == code
    assert seqs(db) == [1, 2, 3, 4, 5]
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditPruneRow)) == 0


def _pruned(db: Database, signer: NoteSigner) -> None:
    """Rows 1..8 appended, a checkpoint of 6, rows 1..4 pruned under it (keep_after), 9 the audit.prune row."""
    append(db, 8, step=DAY)
    assert prune_audit(db, note(db, signer, 6), [signer.verifier], T0 + 3.5 * DAY).through == 4
    assert seqs(db) == [5, 6, 7, 8, 9]


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        ("edit_kept_row", 6, "edited"),
        ("delete_first_kept_row", 5, "row 5 is missing"),
        ("rehash_from_first_kept_row", 5, "does not chain to the pruned rows 1..4"),
        ("truncate_to_checkpoint", 5, "a checkpoint recorded with a prune covers 6 rows"),
        ("drop_the_record", 1, "no prune is recorded"),
        ("forge_the_record_head", 5, "does not chain to the pruned rows"),
        ("delete_a_middle_row", 7, "row 7 is missing (next row is 8)"),
    ],
)
def test_tampering_after_a_prune_is_detected(
    db: Database, signer: NoteSigner, tamper: str, bad_seq: int, words: str
) -> None:
    _pruned(db, signer)
    table = AuditRow.__table__
    with db.session() as session:
        if tamper == "edit_kept_row":
            session.execute(update(table).where(table.c.seq == 6).values(subject="edited"))
        elif tamper == "delete_first_kept_row":
            session.execute(delete(table).where(table.c.seq == 5))
        elif tamper == "rehash_from_first_kept_row":
            _rehash(session, start_prev="cd" * 32)
        elif tamper == "truncate_to_checkpoint":
            session.execute(delete(table).where(table.c.seq >= 5))
        elif tamper == "drop_the_record":
            session.execute(delete(AuditPruneRow.__table__))
        elif tamper == "forge_the_record_head":
            session.execute(update(AuditPruneRow.__table__).values(head="ef" * 32))
        else:
            session.execute(delete(table).where(table.c.seq == 7))
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == bad_seq and words in check.reason, check


def _rehash(session: Session, start_prev: str) -> None:
    """Recompute prev_hash and hash of every remaining row from `start_prev` (an attacker with SQL access)."""
    table = AuditRow.__table__
    prev = start_prev
    for row in session.execute(select(table).order_by(table.c.seq)).mappings().all():
        digest = audit._digest(prev, row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["details"])
        session.execute(update(table).where(table.c.seq == row["seq"]).values(prev_hash=prev, hash=digest))
        prev = digest


def test_a_rewrite_rehashed_up_to_the_checkpoint_is_caught_by_the_recorded_head(
    db: Database, signer: NoteSigner
) -> None:
    _pruned(db, signer)
    with db.session() as session:
        head4 = session.scalar(select(AuditPruneRow.head))
        session.execute(update(AuditRow.__table__).where(AuditRow.seq == 5).values(subject="forged"))
        _rehash(session, start_prev=str(head4))  # chains from the recorded head: only row 6's signed head shows it
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == 6 and "head recorded with a prune" in check.reason


def test_deleting_rows_without_a_prune_record_is_a_gap_at_the_start(db: Database) -> None:
    append(db, 5)
    with db.session() as session:
        session.execute(delete(AuditRow.__table__).where(AuditRow.seq <= 2))
    check = audit.verify_chain(db)
    assert not check.ok and check.bad_seq == 1 and "row 1 is missing (next row is 3)" in check.reason


def test_a_forged_prune_record_fails_under_the_key(db: Database, signer: NoteSigner) -> None:
    """Someone with SQL access deletes rows 1..3 and records a prune under a checkpoint signed by their own key."""
    append(db, 5)
    mallory = generate_signer(ORIGIN)
    forged = note(db, mallory, 3)
    with db.session() as session:
        head3 = str(session.scalar(select(AuditRow.hash).where(AuditRow.seq == 3)))
        session.execute(delete(AuditRow.__table__).where(AuditRow.seq <= 3))
        session.add(
            AuditPruneRow(
                through_seq=3,
                head=head3,
                checkpoint_size=3,
                checkpoint_head=head3,
                checkpoint=forged,
                pruned_at=T0,
                pruned_by="mallory",
            )
        )
    assert audit.verify_chain(db).ok  # without a key only the chain can be checked (the CLI warns)
    check = audit.verify_chain(db, verifiers=[signer.verifier])
    assert not check.ok and check.bad_seq == 3 and "NOTE_UNKNOWN_KEY" in check.reason


def test_batched_prune_resumes_and_verifies_midway(db: Database, signer: NoteSigner) -> None:
    append(db, 12)
    first = prune_audit(db, note(db, signer, 10), [signer.verifier], FAR, batch=3, max_batches=2)
    assert first == retention.AuditPruneResult(10, 6, True, False) and seqs(db)[0] == 7
    check = audit.verify_chain(db, verifiers=[signer.verifier])  # rows 7..10 still there must reach the head
    assert check.ok and check.pruned == 10 and check.rows == 7
    with db.session() as session:  # an interrupted prune whose remaining rows were edited is caught
        session.execute(update(AuditRow.__table__).where(AuditRow.seq == 8).values(subject="x"))
    assert not audit.verify_chain(db).ok
    with db.session() as session:
        session.execute(update(AuditRow.__table__).where(AuditRow.seq == 8).values(subject="8"))
    second = prune_audit(db, note(db, signer, 10), [signer.verifier], FAR, batch=3, max_batches=1)
    assert second == retention.AuditPruneResult(10, 3, False, False)
    assert prune_audit(db, note(db, signer, 10), [signer.verifier], FAR, batch=3) == retention.AuditPruneResult(
        10, 1, False, True
    )
    assert seqs(db)[0] == 11 and audit.verify_chain(db, verifiers=[signer.verifier]).ok


def record_appraisals(db: Database, ages: list[int], now: dt.datetime) -> list[str]:
    store, ids = SqlAppraisalStore(db), []
    for i, age in enumerate(ages):
        ids.append(str(uuid.uuid4()))
        store.record(
            appraisal_id=ids[-1],
            appraised_at=now - age * DAY,
            tee="nitro",
            status="affirming",
            policy_id="default",
            evidence_sha256=f"{i:064x}",
            findings=[],
            token_id=None,
            request_id=None,
        )
    return ids


def _appraisal_ids(db: Database) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(AppraisalRow.id)))


def test_prune_appraisals_deletes_only_old_rows_and_respects_kept_evidence(db: Database) -> None:
    now = T0 + 100 * DAY
    ids = record_appraisals(db, [90, 80, 70, 40, 5, 0], now)
    SqlKeptEvidence(db, max_days=365).keep(
        received_at=now - 80 * DAY,
        tee="nitro",
        evidence=b"e",
        collateral={},
        policy=None,
        status="affirming",
        appraisal_id=ids[1],
        workload="w",
    )
    assert prune_appraisals(db, now - 60 * DAY, limit=1) == 1  # the oldest first
    assert _appraisal_ids(db) == set(ids[1:])
    assert prune_appraisals(db, now - 30 * DAY, batch=1) == 2  # 70 and 40 days; 80 has kept evidence
    assert _appraisal_ids(db) == {ids[1], ids[4], ids[5]}
    assert prune_appraisals(db, now - 30 * DAY) == 0
    assert audit.verify_chain(db).ok and len(audit.entries(db)) == 6  # their audit rows stay


def test_run_retention_is_bounded_and_prunes_under_the_latest_checkpoint(
    db: Database, signer: NoteSigner, tmp_path: Path
) -> None:
    now = T0 + 100 * DAY
    record_appraisals(db, [90, 80, 70, 60, 1], now)  # audit rows 1..5
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    for size in (2, 4):
        (directory / f"{size:012d}-x.checkpoint").write_text(note(db, signer, size))
    (directory / "999999999999-junk.checkpoint").write_text("not a note")
    counts = run_retention(
        db,
        now=now,
        appraisal_days=30,
        audit_days=30,
        audit_checkpoints=directory,
        verifier_keys=[signer.verifier],
        batch=2,
        max_rows=2,
    )
    assert counts == {"appraisals": 2, "audit_log": 2}  # at most 2 per table per call
    assert audit.verify_chain(db, verifiers=[signer.verifier]).pruned == 4
    counts = run_retention(
        db, now=now, appraisal_days=30, audit_days=30, audit_checkpoints=directory, verifier_keys=[signer.verifier]
    )
    assert counts == {"appraisals": 2, "audit_log": 2}
    assert seqs(db)[0] == 5 and audit.verify_chain(db, verifiers=[signer.verifier]).ok
    assert run_retention(db, now=now, appraisal_days=None) == {"appraisals": 0, "audit_log": 0}


def test_run_retention_only_logs_when_it_cannot_work(
    db: Database, signer: NoteSigner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    append(db, 3)
    other = generate_signer(ORIGIN)
    path = tmp_path / "foreign.checkpoint"
    path.write_text(note(db, other, 2))
    caplog.set_level(logging.WARNING)

    def run(database: Database) -> dict[str, int]:
        return run_retention(
            database, now=T0, appraisal_days=1, audit_days=0, audit_checkpoints=path, verifier_keys=[signer.verifier]
        )

    assert run(db) == {"appraisals": 0, "audit_log": 0}
    assert "no checkpoint verifying" in caplog.text
    path.write_text(note(db, signer, 2, head="ab" * 32))
    assert run(db) == {"appraisals": 0, "audit_log": 0}
    assert "AUDIT_PRUNE_CHECKPOINT_MISMATCH" in caplog.text
    gone = Database(f"sqlite:///{tmp_path}/no/such/dir/x.db")
    try:
        assert run(gone) == {"appraisals": 0, "audit_log": 0}
    finally:
        gone.dispose()
    assert "retention pass stopped" in caplog.text
    assert seqs(db) == [1, 2, 3]
