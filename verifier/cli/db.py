"""`verifier db upgrade|current`: schema migrations (alembic, migrations/). The server never migrates.
`verifier db prune`: delete what is old in the tables that only serve the running service (module `prune`)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..settings import Settings
from ..storage import migrate
from ..storage.challenges import SqlChallengeStore
from ..storage.collateral import SqlCollateralCache
from ..storage.engine import Database
from ..storage.kept_evidence import SqlKeptEvidence
from .common import UsageError, add_db_flag, rfc3339, settings_for

DEFAULT_KEEP_DAYS = 7


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
        help="delete old challenges, kept evidence and collateral cache rows (never appraisals or audit)",
        description="Deletes challenges that expired before the cutoff, kept evidence received before it, and "
        "collateral cache rows fetched before it or past their nextUpdate (they are fetched again when needed). "
        "Appraisals and the audit log are not touched.",
    )
    add_db_flag(prune)
    when = prune.add_mutually_exclusive_group()
    when.add_argument("--before", type=rfc3339, metavar="RFC3339", help="the cutoff time")
    when.add_argument("--keep-days", type=_days, metavar="N", help=f"cutoff N days ago (default {DEFAULT_KEEP_DAYS})")
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


def prune(db: Database, *, now: dt.datetime, before: dt.datetime) -> dict[str, int]:
    """Delete challenges expired at or before `before`, kept evidence received before it and collateral cache rows
    fetched before it or past their nextUpdate at `now`; returns rows deleted per table. Appraisals and the audit
    log are never pruned here (the audit log must stay verifiable)."""
    if before > now:
        raise UsageError("the cutoff is in the future")
    return {
        "challenges": SqlChallengeStore(db).purge_expired(before),
        "kept_evidence": SqlKeptEvidence(db).delete_before(before),
        "collateral_cache": SqlCollateralCache(db).delete_old(now=now, before=before),
    }


def _prune(args: argparse.Namespace, base: Settings) -> int:
    now = dt.datetime.now(dt.UTC)
    before = args.before or now - dt.timedelta(days=DEFAULT_KEEP_DAYS if args.keep_days is None else args.keep_days)
    db = Database(settings_for(args, base).database_url)
    try:
        counts = prune(db, now=now, before=before)
    finally:
        db.dispose()
    cutoff = before.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"pruned before {cutoff}: " + ", ".join(f"{table} {count}" for table, count in counts.items()))
    return 0
