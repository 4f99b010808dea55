"""The hash-chained audit log and the reference-set version.

Each row's `hash` is SHA-256 over the previous row's hash and the canonical JSON of this row (seq, at, actor,
action, subject, details); the first row chains from 64 zeros. `verify_chain` recomputes every link in `seq` order
and names the first row that was edited, deleted (a gap or a broken link) or reordered.

Appends run inside the caller's transaction, so a change and its audit row commit together. Appends are
serialized until that transaction ends: on PostgreSQL by `pg_advisory_xact_lock` (shared by replicas, re-entrant
within a transaction), on SQLite by a process-wide re-entrant lock released when the session commits or rolls back
(another process writing the same SQLite file at that moment fails with a duplicate `seq`, it never forks the
chain). Deleting the newest rows, or rewriting rows and re-hashing everything after them, leaves a valid chain:
only a checkpoint kept outside the database detects that. `verify_chain(at=...)` returns the chain hash at the
sizes of signed checkpoints (`verifier.results.audit_checkpoint`) so the caller can compare."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from ..errors import UnavailableError
from .engine import Database
from .tables import AuditRow, ReferenceSetRow
from .text import storable, storable_json

GENESIS = "0" * 64
_LOCK = threading.RLock()
LOCK_WAIT_SECONDS = 2.0  # like the SQLite busy timeout and the PostgreSQL lock timeout (issue 11)
_PG_LOCK_KEY = 0x7EE5A0D1  # any constant shared by every replica


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainCheck:
    """`rows` counts the rows read (the bad one included); `head` is the hash of the last consistent row (GENESIS
    for none) and `good` its seq; `hashes` maps each requested seq in 0..good to its chain hash."""

    ok: bool
    rows: int
    bad_seq: int | None = None
    reason: str = ""
    head: str = GENESIS
    good: int = 0
    hashes: Mapping[int, str] = field(default_factory=dict)


def _digest(
    prev_hash: str, seq: int, at: dt.datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "at": at.astimezone(dt.UTC).isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + body.encode()).hexdigest()


def append(
    session: Session, *, at: dt.datetime, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append one row in `session`'s transaction (commit happens with the caller's change). Text is stored, and
    hashed, as `text.storable` makes it: U+0000 and lone surrogates replaced, cut to the column lengths."""
    details = storable_json(json.loads(json.dumps(details or {}, sort_keys=True, default=str)))
    actor, action, subject = storable(actor, 200), storable(action, 64), storable(subject, 200)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        _hold_until_transaction_ends(session)
    last = session.scalars(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).first()
    seq = (last.seq + 1) if last is not None else 1
    prev = last.hash if last is not None else GENESIS
    row = AuditRow(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details,
        prev_hash=prev,
        hash=_digest(prev, seq, at, actor, action, subject, details),
    )
    session.add(row)
    session.flush()
    return AuditEntry(seq, at, row.actor, row.action, row.subject, details, prev, row.hash)


def _hold_until_transaction_ends(session: Session) -> None:
    """Take the process-wide append lock once per transaction and release it on commit or rollback."""
    if session.info.get("audit_lock"):
        return
    if not _LOCK.acquire(timeout=LOCK_WAIT_SECONDS):  # a stuck session must not stop every appraisal for ever
        raise UnavailableError("DATABASE_BUSY", "the audit log is busy; try again")
    session.info["audit_lock"] = True

    def release(sess: Session, *_: object) -> None:
        if sess.info.pop("audit_lock", None):
            _LOCK.release()

    event.listen(session, "after_commit", release, once=True)
    event.listen(session, "after_rollback", release, once=True)


def verify_chain(db: Database, *, batch: int = 1000, at: Collection[int] = ()) -> ChainCheck:
    """Recompute the chain from the first row in one read; the first inconsistency names its row. `at`: seqs whose
    chain hash to report in `hashes` (0 is GENESIS), e.g. the sizes of signed checkpoints."""
    prev, expected_seq, rows = GENESIS, 1, 0
    wanted = set(at)
    hashes = {0: GENESIS} if 0 in wanted else {}

    def broken(bad_seq: int, reason: str) -> ChainCheck:
        return ChainCheck(False, rows, bad_seq, reason, prev, expected_seq - 1, hashes)

    with db.session() as session:
        query = select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=batch)
        for row in session.scalars(query):
            rows += 1
            if row.seq != expected_seq:
                return broken(expected_seq, f"row {expected_seq} is missing (next row is {row.seq})")
            if row.prev_hash != prev:
                return broken(row.seq, f"row {row.seq} does not chain to row {row.seq - 1}")
            if _digest(prev, row.seq, row.at, row.actor, row.action, row.subject, row.details) != row.hash:
                return broken(row.seq, f"row {row.seq} was edited (its hash does not match)")
            prev, expected_seq = row.hash, expected_seq + 1
            if row.seq in wanted:
                hashes[row.seq] = row.hash
    return ChainCheck(True, rows, head=prev, good=rows, hashes=hashes)


def entries(db: Database, *, after: int = 0, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    query = select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(limit)
    if action is not None:
        query = query.where(AuditRow.action == action)
    with db.session() as session:
        return [
            AuditEntry(r.seq, r.at, r.actor, r.action, r.subject, dict(r.details), r.prev_hash, r.hash)
            for r in session.scalars(query)
        ]


def bump_reference_set(session: Session, now: dt.datetime) -> int:
    """Increment the reference-set version in `session`'s transaction; returns the new version."""
    row = session.get(ReferenceSetRow, 1, with_for_update=True)
    if row is None:
        row = ReferenceSetRow(id=1, version=0, updated_at=now)
        session.add(row)
    row.version += 1
    row.updated_at = now
    session.flush()
    return row.version


def reference_set_version(db: Database) -> int:
    with db.session() as session:
        row = session.get(ReferenceSetRow, 1)
        return row.version if row is not None else 0
