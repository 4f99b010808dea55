"""`verifier db upgrade|current`: schema migrations (alembic, verifier/migrations/). The server never migrates.
`verifier db prune`: delete what is old in the tables that only serve the running service (function `prune`);
with `--appraisals-older-than` also old appraisals, and with `--audit-checkpoint` and `--checkpoint-key` the audit
log's oldest rows under that signed checkpoint (`verifier.storage.retention`: the log stays verifiable)."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import exists, func, select

from ..auth import current_actor
from ..bootstrap import open_database
from ..results.signed_note import NoteVerifier
from ..settings import Settings
from ..storage import migrate, retention
from ..storage.challenges import SqlChallengeStore
from ..storage.collateral import SqlCollateralCache
from ..storage.engine import Database
from ..storage.kept_evidence import SqlKeptEvidence
from ..storage.tables import AppraisalRow, KeptEvidenceRow
from .audit import EXIT_TAMPERED, read_verifier
from .common import UsageError, add_db_flag, rfc3339, settings_for
from .output import progress

DEFAULT_KEEP_DAYS = 7
PRUNE_BATCH = retention.DEFAULT_BATCH  # appraisals deleted per call (each call deletes in transactions of a batch)
PROGRESS_MIN_ROWS = 10 * PRUNE_BATCH  # fewer old appraisals than this: no progress lines


def register(sub: Any) -> None:
    parser = sub.add_parser("db", help="database schema")
    dbsub = parser.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate the schema to the newest revision")
    add_db_flag(up)
    up.add_argument("--revision", default="head")
    up.set_defaults(handler=_upgrade)
    cur = dbsub.add_parser("current", help="print the schema revision")
    add_db_flag(cur)
    cur.set_defaults(handler=_current)
    prune = dbsub.add_parser(
        "prune",
        help="delete old challenges, kept evidence and collateral cache rows; on request old appraisals and "
        "the audit log's oldest rows under a signed checkpoint",
        description="Deletes challenges that expired before the cutoff, kept evidence received before it, and "
        "collateral cache rows fetched before it or past their nextUpdate (they are fetched again when needed). "
        "Appraisals only with --appraisals-older-than; the audit log only with --audit-checkpoint and "
        "--checkpoint-key: rows up to the checkpoint's size and older than --audit-older-than (default: the "
        "cutoff), never the newest row; the prune is recorded so `audit verify` still checks the rest. Exit 2 "
        "when the checkpoint does not match the log.",
    )
    add_db_flag(prune)
    when = prune.add_mutually_exclusive_group()
    when.add_argument("--before", type=rfc3339, metavar="RFC3339", help="the cutoff time")
    when.add_argument("--keep-days", type=_days, metavar="N", help=f"cutoff N days ago (default {DEFAULT_KEEP_DAYS})")
    prune.add_argument("--appraisals-older-than", type=_days, metavar="DAYS", help="also delete older appraisals")
    prune.add_argument(
        "--audit-checkpoint",
        type=Path,
        metavar="PATH",
        help="a signed checkpoint file (or a directory of *.checkpoint: the largest valid one) to prune the audit "
        "log under",
    )
    prune.add_argument(
        "--checkpoint-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="the checkpoint's signed-note verifier key, or a file holding it (repeatable)",
    )
    prune.add_argument("--audit-older-than", type=_days, metavar="DAYS", help="keep audit rows newer than this")
    prune.set_defaults(handler=_prune)


def _upgrade(args: argparse.Namespace, base: Settings) -> int:
    settings = settings_for(args, base)
    migrate.upgrade(settings.database_url, args.revision)
    print(f"database at revision {migrate.current(settings.database_url)}")
    return 0


def _current(args: argparse.Namespace, base: Settings) -> int:
    settings = settings_for(args, base)
    print(migrate.current(settings.database_url) or "empty (run `verifier db upgrade`)")
    return 0


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 36_500:
        raise argparse.ArgumentTypeError("must be 0..36500")
    return value


def prune(
    db: Database, *, now: dt.datetime, before: dt.datetime, appraisals_before: dt.datetime | None = None
) -> dict[str, int]:
    """Delete challenges expired at or before `before`, kept evidence received before it and collateral cache rows
    fetched before it or past their nextUpdate at `now`, and with `appraisals_before` appraisals older than that
    (`retention.prune_appraisals`, after kept evidence); returns rows deleted per table. The audit log is pruned
    only by `retention.prune_audit`, under a signed checkpoint. Raises UsageError (a cutoff in the future),
    UnavailableError."""
    if before > now or (appraisals_before is not None and appraisals_before > now):
        raise UsageError("the cutoff is in the future")
    counts = {
        "challenges": SqlChallengeStore(db).purge_expired(before),
        "kept_evidence": SqlKeptEvidence(db).delete_before(before),
        "collateral_cache": SqlCollateralCache(db).delete_old(now=now, before=before),
    }
    if appraisals_before is not None:
        counts["appraisals"] = prune_appraisals(db, appraisals_before)
    return counts


def prune_appraisals(db: Database, before: dt.datetime) -> int:
    """`retention.prune_appraisals` in rounds of PRUNE_BATCH, with `appraisals: done/total` progress on stderr
    (`output.progress`) when at least PROGRESS_MIN_ROWS are due; returns how many went. Raises UnavailableError."""
    total = _prunable_appraisals(db, before)
    shown = total >= PROGRESS_MIN_ROWS
    done = reported = 0
    while True:
        went = retention.prune_appraisals(db, before, PRUNE_BATCH, batch=PRUNE_BATCH)
        done += went
        if shown:  # "total" only once the last round is in (rows kept meanwhile make fewer go)
            now = min(done, total - 1) if went == PRUNE_BATCH else total
            progress(now, total, "appraisals", step=now - reported)
            reported = now
        if went < PRUNE_BATCH:
            return done


def _prunable_appraisals(db: Database, before: dt.datetime) -> int:
    """How many appraisals `retention.prune_appraisals` would delete now (those before `before` whose evidence is
    not kept)."""
    kept = exists().where(KeptEvidenceRow.appraisal_id == AppraisalRow.id)
    query = select(func.count()).select_from(AppraisalRow).where(AppraisalRow.appraised_at < before, ~kept)
    with db.session() as session:
        return int(session.scalar(query) or 0)


def _prune(args: argparse.Namespace, base: Settings) -> int:
    now = dt.datetime.now(dt.UTC)
    before = args.before or now - dt.timedelta(days=DEFAULT_KEEP_DAYS if args.keep_days is None else args.keep_days)
    if (args.audit_checkpoint is None) != (not args.checkpoint_key):
        raise UsageError("--audit-checkpoint and --checkpoint-key go together")
    if args.audit_older_than is not None and args.audit_checkpoint is None:
        raise UsageError("--audit-older-than needs --audit-checkpoint")
    days = args.appraisals_older_than
    verifiers = [read_verifier(text) for text in args.checkpoint_key]
    note = _checkpoint_note(args.audit_checkpoint, verifiers) if args.audit_checkpoint is not None else None
    db = open_database(settings_for(args, base))
    try:
        migrate.check(db)
        counts = prune(
            db, now=now, before=before, appraisals_before=None if days is None else now - dt.timedelta(days=days)
        )
        cutoff = before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"pruned before {cutoff}: " + ", ".join(f"{table} {count}" for table, count in counts.items()))
        if args.audit_checkpoint is None:
            return 0
        keep_after = before if args.audit_older_than is None else now - dt.timedelta(days=args.audit_older_than)
        try:
            result = retention.prune_audit(db, note, verifiers, keep_after, now=now, actor=current_actor())
        except retention.AuditPruneError as exc:
            if exc.code == "AUDIT_PRUNE_NEEDS_CHECKPOINT":
                raise
            print(f"audit log not pruned: {exc.code}: {exc.message}")
            return EXIT_TAMPERED
    finally:
        db.dispose()
    what = f"rows 1..{result.through} pruned" if result.through else "nothing pruned"
    new = "" if result.recorded else " (no new rows: the checkpoint, the cutoff or the newest row stops it)"
    print(f"audit_log: {what}, {result.deleted} rows deleted now{new}")
    return 0


def _checkpoint_note(path: Path, verifiers: list[NoteVerifier]) -> bytes:
    """A file's bytes (checked by `prune_audit`, which names why it does not verify), or the largest checkpoint
    of a directory that verifies."""
    try:
        if not path.is_dir():
            return retention.read_checkpoint(path)
        note = retention.latest_checkpoint(path, verifiers)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if note is None:
        raise retention.AuditPruneError(
            "AUDIT_PRUNE_NEEDS_CHECKPOINT", f"no *.checkpoint in {path} verifies under the given key"
        )
    return note
