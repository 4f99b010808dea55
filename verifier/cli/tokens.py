"""`verifier tokens create|list|revoke`: bearer tokens for the admin gRPC API (roles admin and auditor), on the
database (`--db`) or on a running server (`--server`, verifier.v1.AdminTokenService, admin role).

`create` prints the token exactly once (stdout, alone on its line, so `$(verifier tokens create ...)` captures
it); afterwards only its id and metadata are ever shown: the database keeps nothing but its SHA-256."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..auth import ROLES
from ..clock import to_rfc3339
from ..settings import Settings
from ..storage.admin_tokens import TokenInfo
from .common import add_db_flag, eprint, print_json
from .output import print_table
from .remote import add_server_flags
from .tokens_port import tokens


def register(sub: Any) -> None:
    parser = sub.add_parser("tokens", help="admin API bearer tokens")
    ts = parser.add_subparsers(dest="tokens_command", required=True)
    create = ts.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=ROLES, help="admin (read and write) or auditor (read)")
    create.add_argument("--name", required=True, help="who or what uses it (shown in the audit log)")
    create.add_argument("--json", action="store_true", help='print {"token": ..., "id": ..., ...}')
    _common(create)
    create.set_defaults(handler=_create)
    ls = ts.add_parser("list", help="list tokens (never the token text)")
    ls.add_argument("--json", action="store_true")
    _common(ls)
    ls.set_defaults(handler=_list)
    rv = ts.add_parser("revoke", help="revoke a token (kept for the record)")
    rv.add_argument("id")
    _common(rv)
    rv.set_defaults(handler=_revoke)


def _common(parser: argparse.ArgumentParser) -> None:
    add_db_flag(parser)
    add_server_flags(parser)


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
    with tokens(args, base) as port:
        info, token = port.create(args.name, args.role)
    if args.json:
        print_json({"token": token, **token_json(info)})
    else:
        print(token)
    sys.stdout.flush()
    eprint(f"created {info.role} token {info.id} ({info.name}); it is shown only now: store it safely")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    with tokens(args, base) as port:
        rows = [token_json(i) for i in port.list()]
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["last_used_at"] = row["last_used_at"] or "never"
    print_table(rows, ["id", "role", "state", "created_at", "revoked_at", "last_used_at", "name"])
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    with tokens(args, base) as port:
        info = port.revoke(args.id)
    print(f"revoked {info.id} ({info.name}, {info.role})")
    return 0
