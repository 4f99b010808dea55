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
sizes of signed checkpoints (`verifier.results.audit_checkpoint`) so the caller can compare.

Retention (`verifier.storage.retention`) deletes a prefix 1..N only under a signed checkpoint of size S >= N whose
head the chain reproduces, and records it in `audit_prune` (N, the chain hash of row N, S, the checkpoint's head and
the signed note) in the transaction that deletes the first batch. `verify_chain` then starts at the latest record:
row N+1 must chain from its head, every recorded checkpoint head at a row still present must match (so rows N+1..S
cannot be rewritten, deleted or truncated), the log must go on past row S (each prune appends an `audit.prune` row
after it), and with `verifiers` every recorded note must verify under one of them.
Rows 1..k still present after an interrupted prune are recomputed from row k's stored prev_hash and must reach the
recorded head at row N. A missing first row with no prune record covering it is a deletion (a gap at the start)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, event, insert, select, text
from sqlalchemy.orm import Session

from ..errors import UnavailableError
from ..results.audit_checkpoint import Checkpoint, open_checkpoint
from ..results.signed_note import NoteError, NoteVerifier
from .engine import Database
from .tables import AuditPruneRow, AuditRow, ReferenceSetRow
from .text import storable, storable_json

GENESIS = "0" * 64
_LOCK = threading.RLock()
LOCK_WAIT_SECONDS = 2.0  # like the SQLite busy timeout and the PostgreSQL lock timeout (issue 11)
_PG_LOCK_KEY = 0x7EE5A0D1  # any constant shared by every replica
_AUDIT = cast(Table, AuditRow.__table__)
_REFERENCE_SET = cast(Table, ReferenceSetRow.__table__)
# Core statements of the hot path (compiled once, run on the session's connection without the ORM layer)
_INSERT = insert(_AUDIT)
_VERSION = select(_REFERENCE_SET.c.version).where(_REFERENCE_SET.c.id == 1)
# The chain's head (the newest row's seq and hash) and the reference-set version, read once the chain is locked:
# one statement, one row (NULLs when empty). Every append reads both; the group commit checks the version.
_HEAD_AND_VERSION = select(
    select(_AUDIT.c.seq).order_by(_AUDIT.c.seq.desc()).limit(1).scalar_subquery(),
    select(_AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1).scalar_subquery(),
    _VERSION.scalar_subquery(),
)


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
class PruneRecord:
    """One recorded prune (table `audit_prune`): rows 1..`through` were deleted; `head` is row `through`'s chain
    hash; `checkpoint` is the signed note (size `checkpoint_size`, head `checkpoint_head`) it was pruned under."""

    through: int
    head: str
    checkpoint_size: int
    checkpoint_head: str
    checkpoint: str
    pruned_at: dt.datetime
    pruned_by: str


@dataclass(frozen=True)
class ChainCheck:
    """`rows` counts the rows read (the bad one included); `head` is the hash of the last consistent row (GENESIS
    for none) and `good` its seq (the log's size when `ok`); `hashes` maps each requested seq in 0..good to its chain
    hash: recomputed for rows present, the recorded head for a pruned seq a prune record names, absent for other
    pruned seqs. `pruned`: rows 1..pruned were pruned (the latest record; 0: never); `prune_verified`: every
    recorded checkpoint verified under a given key (False when no key was given or nothing was pruned)."""

    ok: bool
    rows: int
    bad_seq: int | None = None
    reason: str = ""
    head: str = GENESIS
    good: int = 0
    hashes: Mapping[int, str] = field(default_factory=dict)
    pruned: int = 0
    prunes: tuple[PruneRecord, ...] = ()
    prune_verified: bool = False


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


@dataclass(frozen=True)
class Pending:
    """One audit row to append (`append_many`): its text as given; `details` is any JSON-able mapping."""

    at: dt.datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] | None = None


def _json_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """`details` as stored and hashed: JSON values only (others as `str`), text as `text.storable` makes it. A flat
    mapping of text, numbers, booleans and nulls (an appraisal's) is taken as it is, without a JSON round trip."""
    if details is None:
        return {}
    if all(isinstance(k, str) for k in details) and all(
        v is None or type(v) in (str, int, bool) for v in details.values()
    ):
        flat: dict[str, Any] = storable_json(dict(details))
        return flat
    stored: dict[str, Any] = storable_json(json.loads(json.dumps(dict(details), sort_keys=True, default=str)))
    return stored


def append(
    session: Session, *, at: dt.datetime, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
) -> AuditEntry:
    """Append one row in `session`'s transaction (commit happens with the caller's change). Text is stored, and
    hashed, as `text.storable` makes it: U+0000 and lone surrogates replaced, cut to the column lengths."""
    return append_many(session, [Pending(at, actor, action, subject, details)])[0]


def append_many(session: Session, pending: Sequence[Pending]) -> list[AuditEntry]:
    """Append `pending` in order in `session`'s transaction: one chain lock, one read of the newest row and one
    multi-row INSERT (SQLAlchemy Core) for all of them, so a batch of appraisals (`storage.group_commit`) holds the
    lock shared by every replica once. Text as `append` stores it. Raises UnavailableError (DATABASE_*) from the
    lock; database errors pass through to the caller's unit of work. The head is read with the reference-set
    version (`append_many_at_version`), which this discards."""
    return append_many_at_version(session, pending)[0] if pending else []


def append_many_at_version(session: Session, pending: Sequence[Pending]) -> tuple[list[AuditEntry], int]:
    """`append_many` (also of nothing) and the reference-set version, read in the statement that reads the chain's
    head once the chain is locked. Every version bump holds that lock until it commits (`bump_reference_set`), so
    it is the version in force when this transaction commits (SQLite: after a write of the caller's transaction,
    which holds the file's write lock against other processes). Raises as `append_many` does."""
    prepared = [
        (
            item.at,
            storable(item.actor, 200),
            storable(item.action, 64),
            storable(item.subject, 200),
            _json_details(item.details),
        )
        for item in pending
    ]
    lock_chain(session)
    session.flush()  # rows the caller added through the ORM come first; below, Core on the session's connection
    connection = session.connection()
    newest_seq, newest_hash, version = connection.execute(_HEAD_AND_VERSION).one()  # retention keeps the newest
    seq, prev = (int(newest_seq), str(newest_hash)) if newest_seq is not None else (0, GENESIS)
    entries: list[AuditEntry] = []
    for at, actor, action, subject, details in prepared:
        seq += 1
        digest = _digest(prev, seq, at, actor, action, subject, details)
        entries.append(AuditEntry(seq, at, actor, action, subject, details, prev, digest))
        prev = digest
    if not entries:
        return entries, int(version or 0)
    connection.execute(
        _INSERT,
        [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "details": e.details,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in entries
        ],
    )
    return entries, int(version or 0)


def lock_chain(session: Session) -> None:
    """Serialize with every append (and prune) until `session`'s transaction ends: `pg_advisory_xact_lock` on
    PostgreSQL, the process lock on SQLite. Raises UnavailableError(DATABASE_BUSY) after LOCK_WAIT_SECONDS on
    SQLite (PostgreSQL: the lock timeout)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    else:
        _hold_until_transaction_ends(session)


def _hold_until_transaction_ends(session: Session) -> None:
    """Take the process-wide append lock once per transaction and release it on commit or rollback (`_release`,
    listening on every Session once: a listener per transaction cost more than the append)."""
    if session.info.get("audit_lock"):
        return
    if not _LOCK.acquire(timeout=LOCK_WAIT_SECONDS):  # a stuck session must not stop every appraisal for ever
        raise UnavailableError("DATABASE_BUSY", "the audit log is busy; try again")
    session.info["audit_lock"] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _release(session: Session, *_: object) -> None:
    if session.info.pop("audit_lock", None):
        _LOCK.release()


def open_with_any(note: bytes, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """The checkpoint in `note` if its signature verifies under one of `verifiers`. Raises NoteError: the first
    error other than NOTE_UNKNOWN_KEY (a bad signature by a known key rejects the note), else NOTE_UNKNOWN_KEY."""
    unknown = NoteError("NOTE_UNKNOWN_KEY", "no verifier key given")
    for verifier in verifiers:
        try:
            return open_checkpoint(note, verifier)
        except NoteError as exc:
            if exc.code != "NOTE_UNKNOWN_KEY":
                raise
            unknown = exc
    raise unknown


def prune_records(session: Session) -> list[PruneRecord]:
    """Every recorded prune, oldest (smallest `through`) first."""
    t = AuditPruneRow.__table__.c
    query = select(
        t.through_seq, t.head, t.checkpoint_size, t.checkpoint_head, t.checkpoint, t.pruned_at, t.pruned_by
    ).order_by(t.through_seq)
    return [PruneRecord(*row) for row in session.execute(query)]


def verify_chain(
    db: Database,
    *,
    batch: int = 1000,
    at: Collection[int] = (),
    verifiers: Sequence[NoteVerifier] = (),
    through: int | None = None,
) -> ChainCheck:
    """Recompute the chain from the recorded pruned prefix (module docstring) in one read; the first inconsistency
    names its row. `at`: seqs whose chain hash to report in `hashes` (0 is GENESIS), e.g. the sizes of signed
    checkpoints. `verifiers`: every recorded prune checkpoint must verify under one of them (else not ok).
    `through`: read rows up to this seq only (a recorded checkpoint beyond it is not checked). Read again (at most
    three times) when a prune is recorded meanwhile. Raises UnavailableError."""
    for _ in range(3):
        with db.session() as session:
            records = prune_records(session)
            check = _walk(session, records, batch, set(at), verifiers, through)
            if prune_records(session) == records:
                break
    return check


def _check_records(
    records: list[PruneRecord], verifiers: Sequence[NoteVerifier], anchors: dict[int, str]
) -> tuple[int, str] | None:
    """Fill `anchors` (seq -> chain hash the records pin); (bad seq, reason) for an inconsistent record."""
    for rec in records:
        where = f"the prune of rows 1..{rec.through}"
        if not 0 < rec.through <= rec.checkpoint_size:
            return rec.through, f"{where} is recorded under a checkpoint of size {rec.checkpoint_size}"
        if verifiers:
            try:
                cp = open_with_any(rec.checkpoint.encode(), verifiers)
            except NoteError as exc:
                return rec.through, f"the checkpoint recorded with {where} does not verify: {exc.code}: {exc.message}"
            if (cp.size, cp.head) != (rec.checkpoint_size, rec.checkpoint_head):
                return rec.through, f"the checkpoint recorded with {where} is not the one its record names"
        for seq, head in ((rec.through, rec.head), (rec.checkpoint_size, rec.checkpoint_head)):
            if anchors.setdefault(seq, head) != head:
                return seq, f"two prune records disagree about the chain hash of row {seq}"
    return None


def _walk(
    session: Session,
    records: list[PruneRecord],
    batch: int,
    wanted: set[int],
    verifiers: Sequence[NoteVerifier],
    through: int | None,
) -> ChainCheck:
    pruned, start = (records[-1].through, records[-1].head) if records else (0, GENESIS)
    prev, expected_seq, rows = start, pruned + 1, 0
    hashes = {0: GENESIS} if 0 in wanted else {}
    anchors: dict[int, str] = {}
    prunes = tuple(records)

    def broken(bad_seq: int, reason: str) -> ChainCheck:
        return ChainCheck(False, rows, bad_seq, reason, prev, expected_seq - 1, hashes, pruned, prunes)

    problem = _check_records(records, verifiers, anchors)
    if problem is not None:
        prev, expected_seq = GENESIS, 1
        return broken(*problem)
    hashes.update({seq: head for seq, head in anchors.items() if seq <= pruned and seq in wanted})
    query = select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=batch)
    if through is not None:
        query = query.where(AuditRow.seq <= through)
    for row in session.scalars(query):
        rows += 1
        if rows == 1 and row.seq <= pruned:  # a prune still deleting: rows up to `pruned` must reach its head
            prev, expected_seq = row.prev_hash, row.seq
        if row.seq != expected_seq:
            why = f"rows 1..{pruned} were pruned, not more" if pruned else "no prune is recorded"
            gap = f"; {why}" if rows == 1 else ""
            return broken(expected_seq, f"row {expected_seq} is missing (next row is {row.seq}){gap}")
        if row.prev_hash != prev:
            if rows == 1 and pruned:
                return broken(row.seq, f"row {row.seq} does not chain to the pruned rows 1..{pruned}")
            return broken(row.seq, f"row {row.seq} does not chain to row {row.seq - 1}")
        digest = _digest(prev, row.seq, row.at, row.actor, row.action, row.subject, row.details)
        if digest != row.hash:
            return broken(row.seq, f"row {row.seq} was edited (its hash does not match)")
        if anchors.get(row.seq, digest) != digest:
            return broken(row.seq, f"row {row.seq} does not hash to the head recorded with a prune (signed checkpoint)")
        prev, expected_seq = row.hash, expected_seq + 1
        if row.seq in wanted:
            hashes[row.seq] = row.hash
    last = expected_seq - 1
    beyond = [seq for seq in anchors if seq > last and (through is None or seq <= through)]
    if beyond:
        return broken(
            last + 1, f"the log ends at row {last}; a checkpoint recorded with a prune covers {max(beyond)} rows"
        )
    if records and through is None and last <= records[-1].checkpoint_size:  # retention audits each prune after S
        return broken(last + 1, f"the log ends at row {last}, before the row that audits the prune of 1..{pruned}")
    verified = bool(verifiers) and bool(records)
    return ChainCheck(True, rows, None, "", prev, last, hashes, pruned, prunes, verified)


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
    """Increment the reference-set version in `session`'s transaction, holding the chain's lock until it ends (so
    a batch reading the version under that lock, `append_many_at_version`, sees this change or commits before it);
    returns the new version. Raises UnavailableError (DATABASE_*) from the lock."""
    lock_chain(session)
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
