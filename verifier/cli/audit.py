"""`verifier audit verify|list`: the hash-chained audit log."""

from __future__ import annotations

import argparse
from typing import Any

from ..clock import to_rfc3339
from ..settings import Settings
from ..storage import audit
from ..storage.engine import Database
from .common import EXIT_CONTRAINDICATED, add_db_flag, print_json, settings_for

EXIT_TAMPERED = EXIT_CONTRAINDICATED  # 2: the log was edited, truncated in the middle or reordered


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="the tamper-evident audit log")
    au = parser.add_subparsers(dest="audit_command", required=True)
    ver = au.add_parser("verify", help="recompute the hash chain; exit 2 naming the first bad row")
    add_db_flag(ver)
    ver.set_defaults(handler=_verify)
    ls = au.add_parser("list", help="list audit rows in order")
    ls.add_argument("--after", type=int, default=0, metavar="SEQ", help="rows after this sequence number")
    ls.add_argument("--limit", type=_positive, default=100, metavar="N")
    ls.add_argument("--action", metavar="A", help="only this action (e.g. appraisal, policy.set)")
    ls.add_argument("--json", action="store_true")
    add_db_flag(ls)
    ls.set_defaults(handler=_list)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError("must be 1..100000")
    return value


def _database(args: argparse.Namespace, base: Settings) -> Database:
    db = Database(settings_for(args, base).database_url)
    try:
        db.check()
    except BaseException:
        db.dispose()
        raise
    return db


def _verify(args: argparse.Namespace, base: Settings) -> int:
    db = _database(args, base)
    try:
        check = audit.verify_chain(db)
    finally:
        db.dispose()
    if check.ok:
        print(f"audit log intact: {check.rows} rows")
        return 0
    print(f"audit log BROKEN at row {check.bad_seq}: {check.reason}")
    return EXIT_TAMPERED


def entry_json(entry: audit.AuditEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": to_rfc3339(entry.at), "actor": entry.actor, "action": entry.action,
            "subject": entry.subject, "details": entry.details, "prev_hash": entry.prev_hash, "hash": entry.hash}


def _list(args: argparse.Namespace, base: Settings) -> int:
    db = _database(args, base)
    try:
        rows = audit.entries(db, after=args.after, limit=args.limit, action=args.action)
    finally:
        db.dispose()
    if args.json:
        print_json([entry_json(e) for e in rows])
        return 0
    for e in rows:
        print(f"{e.seq:>8}  {to_rfc3339(e.at)}  {e.action:<16} {e.subject:<38} {e.actor}")
    return 0
