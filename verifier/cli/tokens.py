"""`verifier tokens create|list|revoke`: bearer tokens for the admin gRPC API (roles admin and auditor).

`create` prints the token exactly once (stdout, alone on its line, so `$(verifier tokens create ...)` captures
it); afterwards only its id and metadata are ever shown: the database keeps nothing but its SHA-256."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..auth import ROLES, current_actor
from ..bootstrap import open_database
from ..clock import SystemClock, to_rfc3339
from ..settings import Settings
from ..storage import migrate
from ..storage.admin_tokens import SqlAdminTokens, TokenInfo
from ..storage.engine import Database
from .common import add_db_flag, eprint, print_json, settings_for


def register(sub: Any) -> None:
    parser = sub.add_parser("tokens", help="admin API bearer tokens")
    ts = parser.add_subparsers(dest="tokens_command", required=True)
    create = ts.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=ROLES, help="admin (read and write) or auditor (read)")
    create.add_argument("--name", required=True, help="who or what uses it (shown in the audit log)")
    create.add_argument("--json", action="store_true", help='print {"token": ..., "id": ..., ...}')
    add_db_flag(create)
    create.set_defaults(handler=_create)
    ls = ts.add_parser("list", help="list tokens (never the token text)")
    ls.add_argument("--json", action="store_true")
    add_db_flag(ls)
    ls.set_defaults(handler=_list)
    rv = ts.add_parser("revoke", help="revoke a token (kept for the record)")
    rv.add_argument("id")
    add_db_flag(rv)
    rv.set_defaults(handler=_revoke)


def _store(args: argparse.Namespace, base: Settings) -> tuple[Database, SqlAdminTokens]:
    db = open_database(settings_for(args, base))
    migrate.check(db)
    return db, SqlAdminTokens(db)


def token_json(info: TokenInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "name": info.name,
        "role": info.role,
        "state": "active" if info.active else "revoked",
        "created_at": to_rfc3339(info.created_at),
        "created_by": info.created_by,
        "revoked_at": to_rfc3339(info.revoked_at) if info.revoked_at else None,
        "revoked_by": info.revoked_by,
        "last_used_at": to_rfc3339(info.last_used_at) if info.last_used_at else None,
    }


def _create(args: argparse.Namespace, base: Settings) -> int:
    db, store = _store(args, base)
    try:
        info, token = store.create(args.name, args.role, now=SystemClock().now(), actor=current_actor())
    finally:
        db.dispose()
    if args.json:
        print_json({"token": token, **token_json(info)})
    else:
        print(token)
    sys.stdout.flush()
    eprint(f"created {info.role} token {info.id} ({info.name}); it is shown only now: store it safely")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    db, store = _store(args, base)
    try:
        infos = store.list()
    finally:
        db.dispose()
    if args.json:
        print_json([token_json(i) for i in infos])
        return 0
    for i in infos:
        state = f"revoked {to_rfc3339(i.revoked_at)}" if i.revoked_at else "active"
        used = to_rfc3339(i.last_used_at) if i.last_used_at else "never used"
        print(f"{i.id}  {i.role:<7}  {state:<28}  {used:<20}  {i.name}")
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    db, store = _store(args, base)
    try:
        info = store.revoke(args.id, now=SystemClock().now(), actor=current_actor())
    finally:
        db.dispose()
    print(f"revoked {info.id} ({info.name}, {info.role})")
    return 0
