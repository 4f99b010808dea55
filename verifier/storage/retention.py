"""Retention of `appraisals` and `audit_log` (issue 11 item 8): `verifier db prune` and `run_retention`.

Appraisals: `prune_appraisals` deletes rows appraised before a cutoff, oldest first, in batches. No foreign key
points at an appraisal; the one reference, `kept_evidence.appraisal_id`, is respected: an appraisal whose evidence
is still kept stays until that evidence is pruned (within its `max_days`). The audit row of an appraisal is not
touched: it keeps the outcome, policy and evidence digest in the chain.

Audit log: `prune_audit` deletes rows 1..N only under a signed checkpoint (C2SP tlog-checkpoint, verified here
under one of the given keys) of size S >= N whose head the recomputed chain reproduces at row S, keeping the newest
row and every row appended after `keep_after` (N = min(S, first row after `keep_after` - 1, newest - 1)). Before
deleting it recomputes the chain from the pruned prefix to row S (a broken chain is evidence: nothing is deleted).
In one transaction, holding the append lock, it records the prune in `audit_prune` (N, row N's hash, S, the head,
the note), appends an `audit.prune` row and deletes the first batch; later batches (each its own short transaction,
one bounded DELETE by primary-key range, so a statement stays far under the 5 s timeout and appends are never held
up) delete the rest of 1..N, and a call that stops early (`max_batches`) is continued by the next call.
`verify_chain` (module `audit`) then starts at the recorded prefix.

Pruning is authorized by a checkpoint, not by a secret: whoever can write the database could delete rows anyway;
what pruning cannot do is hide a change to rows 1..S (the chain must reproduce the signed head) or to the rows it
keeps (they must chain from the recorded head and reproduce it at row S).

Errors (`AuditPruneError`, a request error: nothing is deleted): AUDIT_PRUNE_NEEDS_CHECKPOINT (no checkpoint or
key, or the note does not verify under any given key), AUDIT_PRUNE_CHECKPOINT_MISMATCH (the checkpoint covers more
rows than the log holds, or its head is not the chain hash of row S: a different log or a rewrite),
AUDIT_PRUNE_CHAIN_BROKEN (the chain up to row S does not verify).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, exists, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, aliased

from ..errors import RequestError, UnavailableError
from ..results.audit_checkpoint import Checkpoint
from ..results.signed_note import MAX_NOTE_BYTES, NoteError, NoteVerifier
from . import audit
from .engine import Database
from .tables import AppraisalRow, AuditPruneRow, AuditRow, KeptEvidenceRow

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000  # rows per DELETE: milliseconds each, far from the 5 s statement timeout
DEFAULT_MAX_ROWS_PER_CALL = 10_000  # `run_retention`: rows deleted per table per call
CHECKPOINT_SUFFIX = ".checkpoint"
MAX_CHECKPOINT_FILES = 16  # `latest_checkpoint` reads at most this many files of a directory (the newest names)


class AuditPruneError(RequestError):
    """The audit log was not pruned. Codes: AUDIT_PRUNE_NEEDS_CHECKPOINT, AUDIT_PRUNE_CHECKPOINT_MISMATCH,
    AUDIT_PRUNE_CHAIN_BROKEN (module docstring)."""


@dataclass(frozen=True)
class AuditPruneResult:
    """`through`: rows 1..through are pruned (recorded; 0: never); `deleted`: rows this call deleted; `recorded`:
    this call recorded a new prune; `done`: no row up to `through` is left (False: call again)."""

    through: int
    deleted: int
    recorded: bool
    done: bool


def prune_appraisals(db: Database, before: dt.datetime, limit: int | None = None, *, batch: int = DEFAULT_BATCH) -> int:
    """Delete appraisals appraised before `before`, oldest first, at most `limit` (None: all), `batch` per
    transaction, skipping those whose evidence is still kept; returns how many went. Raises UnavailableError."""
    if batch < 1 or (limit is not None and limit < 0):
        raise ValueError("batch must be >= 1 and limit >= 0")
    inner = aliased(AppraisalRow)
    kept = exists().where(KeptEvidenceRow.appraisal_id == inner.id)
    removed = 0
    while limit is None or removed < limit:
        size = batch if limit is None else min(batch, limit - removed)
        oldest = (
            select(inner.id)
            .where(inner.appraised_at < before, ~kept)
            .order_by(inner.appraised_at)
            .limit(size)
            .scalar_subquery()
        )
        with db.session() as session:
            went = int(session.connection().execute(delete(AppraisalRow).where(AppraisalRow.id.in_(oldest))).rowcount)
        removed += went
        if went < size:
            break
    return removed


def _open(note: bytes | str | None, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    if not note or not verifiers:
        raise AuditPruneError(
            "AUDIT_PRUNE_NEEDS_CHECKPOINT", "pruning the audit log needs a signed checkpoint and its verifier key"
        )
    try:
        return audit.open_with_any(note.encode() if isinstance(note, str) else note, verifiers)
    except NoteError as exc:
        raise AuditPruneError(
            "AUDIT_PRUNE_NEEDS_CHECKPOINT",
            f"the checkpoint does not verify under the given key: {exc.code}: {exc.message}",
        ) from None


def _mismatch(message: str) -> AuditPruneError:
    return AuditPruneError("AUDIT_PRUNE_CHECKPOINT_MISMATCH", message)


def _delete_batch(session: Session, through: int, batch: int) -> int | None:
    """Delete the oldest `batch` rows up to `through`; None when none is left."""
    first = session.scalar(select(func.min(AuditRow.seq)))
    if first is None or first > through:
        return None
    upper = min(through, first + batch - 1)
    return int(session.connection().execute(delete(AuditRow).where(AuditRow.seq <= upper)).rowcount)


def _continue(db: Database, through: int, batch: int, batches: int | None) -> tuple[int, bool]:
    """Delete what is left of rows 1..`through`, at most `batches` batches (None: all); (deleted, done)."""
    deleted = 0
    while batches is None or batches > 0:
        with db.session() as session:
            went = _delete_batch(session, through, batch)
        if went is None:
            return deleted, True
        deleted += went
        batches = None if batches is None else batches - 1
    with db.session() as session:
        first = session.scalar(select(func.min(AuditRow.seq)))
    return deleted, first is None or first > through


def prune_audit(
    db: Database,
    checkpoint_note: bytes | str | None,
    verifier_keys: Sequence[NoteVerifier],
    keep_after: dt.datetime,
    *,
    now: dt.datetime | None = None,
    actor: str = "verifier",
    batch: int = DEFAULT_BATCH,
    max_batches: int | None = None,
) -> AuditPruneResult:
    """Prune the audit log's oldest rows under `checkpoint_note` (module docstring): finish a recorded prune, then
    record and start a new one when the checkpoint allows more. At most `max_batches` DELETEs of `batch` rows
    (None: until done). Raises AuditPruneError (nothing deleted by the new prune), UnavailableError (also
    DATABASE_BUSY when another prune ran meanwhile), ValueError for bad bounds."""
    if batch < 1 or (max_batches is not None and max_batches < 1):
        raise ValueError("batch and max_batches must be >= 1")
    cp = _open(checkpoint_note, verifier_keys)
    now = now or dt.datetime.now(dt.UTC)
    current, target = _prune_target(db, cp, keep_after)
    if target <= current:
        deleted, done = _continue(db, current, batch, max_batches)
        return AuditPruneResult(current, deleted, False, done)
    head = _verified_head(db, cp, target, batch)
    deleted = _record_prune(db, cp, checkpoint_note, current, target, head, now=now, actor=actor, batch=batch)
    more, done = _continue(db, target, batch, None if max_batches is None else max_batches - 1)
    return AuditPruneResult(target, deleted + more, True, done)


def _prune_target(db: Database, cp: Checkpoint, keep_after: dt.datetime) -> tuple[int, int]:
    """(rows pruned so far, rows `cp` lets a prune reach): at most the checkpoint's size, keeping the newest row and
    every row after `keep_after`. AuditPruneError AUDIT_PRUNE_CHECKPOINT_MISMATCH when `cp` covers more rows than
    the log holds."""
    with db.session() as session:
        records = audit.prune_records(session)
        current = records[-1].through if records else 0
        newest = session.scalar(select(func.max(AuditRow.seq)))
        young = session.scalar(
            select(func.min(AuditRow.seq)).where(
                AuditRow.seq > current, AuditRow.seq <= cp.size, AuditRow.at > keep_after
            )
        )
    last = current if newest is None else newest
    if cp.size > last:
        raise _mismatch(f"the checkpoint covers {cp.size} rows, the log ends at row {last}")
    return current, min(cp.size, last - 1, cp.size if young is None else young - 1)  # the newest row always stays


def _verified_head(db: Database, cp: Checkpoint, target: int, batch: int) -> str:
    """The chain hash of row `target`, once the recomputed chain verifies up to row `cp.size` and reproduces the
    checkpoint's head there. AuditPruneError AUDIT_PRUNE_CHAIN_BROKEN, AUDIT_PRUNE_CHECKPOINT_MISMATCH."""
    check = audit.verify_chain(db, batch=batch, at={cp.size, target}, through=cp.size)
    if not check.ok:
        raise AuditPruneError("AUDIT_PRUNE_CHAIN_BROKEN", f"not pruning: row {check.bad_seq}: {check.reason}")
    if check.hashes.get(cp.size) != cp.head:
        raise _mismatch(f"row {cp.size} hashes to {check.hashes.get(cp.size)}, the checkpoint says {cp.head}")
    return check.hashes[target]


def _record_prune(
    db: Database,
    cp: Checkpoint,
    checkpoint_note: bytes | str | None,
    current: int,
    target: int,
    head: str,
    *,
    now: dt.datetime,
    actor: str,
    batch: int,
) -> int:
    """In one transaction holding the append lock: record the prune of rows 1..`target` (`audit_prune`), append
    its `audit.prune` row and delete the first batch; returns the rows deleted. UnavailableError DATABASE_BUSY
    (another prune ran since `current`), AuditPruneError AUDIT_PRUNE_CHECKPOINT_MISMATCH (a pinned row changed)."""
    with db.session() as session:
        audit.lock_chain(session)  # one prune at a time, serialized with appends
        latest = session.scalar(select(func.max(AuditPruneRow.through_seq))) or 0
        if latest != current:
            raise UnavailableError("DATABASE_BUSY", "another prune of the audit log ran meanwhile; try again")
        pinned = select(AuditRow.seq, AuditRow.hash).where(AuditRow.seq.in_(sorted({target, cp.size})))
        stored = {int(seq): str(digest) for seq, digest in session.execute(pinned)}
        if stored.get(target) != head or stored.get(cp.size) != cp.head:
            raise _mismatch(f"rows {target} or {cp.size} changed while the chain was being checked")
        session.add(
            AuditPruneRow(
                through_seq=target,
                head=head,
                checkpoint_size=cp.size,
                checkpoint_head=cp.head,
                checkpoint=(checkpoint_note.decode() if isinstance(checkpoint_note, bytes) else str(checkpoint_note)),
                pruned_at=now,
                pruned_by=actor,
            )
        )
        session.flush()
        details = {"through": target, "head": head, "checkpoint_size": cp.size, "checkpoint_origin": cp.origin}
        audit.append(session, at=now, actor=actor, action="audit.prune", subject=f"1..{target}", details=details)
        return _delete_batch(session, target, batch) or 0


def read_checkpoint(path: Path) -> bytes:
    """The bytes of a checkpoint file (at most MAX_NOTE_BYTES + 1 read). Raises OSError."""
    with path.open("rb") as f:
        return f.read(MAX_NOTE_BYTES + 1)


def latest_checkpoint(path: Path, verifiers: Sequence[NoteVerifier]) -> bytes | None:
    """The note of the largest checkpoint verifying under `verifiers` among the last MAX_CHECKPOINT_FILES
    *.checkpoint files of directory `path` by name (`audit checkpoint --dir` names them by zero-padded size), or of
    file `path`; None when there is none. Raises OSError for an unreadable directory."""
    files = (
        sorted(p for p in path.iterdir() if p.name.endswith(CHECKPOINT_SUFFIX))[-MAX_CHECKPOINT_FILES:]
        if path.is_dir()
        else [path]
    )
    best: tuple[int, bytes] | None = None
    for file in files:
        try:
            note = read_checkpoint(file)
            size = audit.open_with_any(note, verifiers).size
        except (OSError, NoteError):
            continue
        if best is None or size > best[0]:
            best = (size, note)
    return None if best is None else best[1]


def run_retention(
    db: Database,
    *,
    now: dt.datetime,
    appraisal_days: int | None,
    audit_days: int | None = None,
    audit_checkpoints: Path | None = None,
    verifier_keys: Sequence[NoteVerifier] = (),
    batch: int = DEFAULT_BATCH,
    max_rows: int = DEFAULT_MAX_ROWS_PER_CALL,
) -> dict[str, int]:
    """One bounded retention pass for a periodic task: appraisals older than `appraisal_days` (None: kept) and,
    when `audit_days`, `audit_checkpoints` (a checkpoint file or directory, see `latest_checkpoint`) and
    `verifier_keys` are all given, audit rows older than `audit_days` under the latest valid checkpoint. At most
    `max_rows` rows per table per call (the rest on the next call). Returns rows deleted per table. Never raises
    for an unavailable database, a missing or unusable checkpoint or a refused prune: those are logged warnings."""
    counts = {"appraisals": 0, "audit_log": 0}
    try:
        if appraisal_days is not None:
            counts["appraisals"] = prune_appraisals(
                db, now - dt.timedelta(days=appraisal_days), max_rows, batch=min(batch, max(1, max_rows))
            )
        if audit_days is not None and audit_checkpoints is not None and verifier_keys:
            note = latest_checkpoint(audit_checkpoints, verifier_keys)
            if note is None:
                log.warning(
                    "audit log not pruned: no checkpoint verifying under the given keys in %s", audit_checkpoints
                )
            else:
                result = prune_audit(
                    db,
                    note,
                    verifier_keys,
                    now - dt.timedelta(days=audit_days),
                    now=now,
                    batch=batch,
                    max_batches=max(1, max_rows // batch),
                )
                counts["audit_log"] = result.deleted
    except (UnavailableError, sa_exc.SQLAlchemyError) as exc:
        log.warning("retention pass stopped: %s", getattr(exc, "code", type(exc).__name__))
    except AuditPruneError as exc:
        log.warning("audit log not pruned: %s: %s", exc.code, exc.message)
    except OSError as exc:
        log.warning("audit log not pruned: cannot read %s: %s", audit_checkpoints, exc.strerror)
    return counts
