"""`verifier policy show|set|list`: named appraisal policies (built-in, --policy-file, database), on the database
(`--db`) or on a running server (`--server`, verifier.v1.PolicyService) with the same output and exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..appraisal.policy import canonical_json
from ..clock import to_rfc3339
from ..settings import Settings, add_flags
from ..storage.policies import MAX_BODY_BYTES
from .common import UsageError, add_db_flag, print_json
from .output import print_table
from .policy_port import PolicyView, policies
from .remote import add_server_flags


def register(sub: Any) -> None:
    parser = sub.add_parser("policy", help="named appraisal policies")
    ps = parser.add_subparsers(dest="policy_command", required=True)
    show = ps.add_parser("show", help="the effective policy of a name and its SHA-256")
    show.add_argument("name", nargs="?", default="default")
    show.add_argument("--json", action="store_true")
    _common(show)
    show.set_defaults(handler=_show)
    put = ps.add_parser("set", help="store a policy in the database (same schema as a --policy-file entry)")
    put.add_argument("name")
    put.add_argument("--file", required=True, type=Path, metavar="FILE.json", help="one policy as a JSON object")
    put.add_argument("--json", action="store_true")
    _common(put)
    put.set_defaults(handler=_set)
    ls = ps.add_parser("list", help="every policy name with its source and SHA-256")
    ls.add_argument("--json", action="store_true")
    _common(ls)
    ls.set_defaults(handler=_list)


def _common(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, ["policy_file"], help={"policy_file": "named policies (JSON) below the database"})
    add_db_flag(parser)
    add_server_flags(parser)


def _show(args: argparse.Namespace, base: Settings) -> int:
    with policies(args, base) as port:
        view = port.show(args.name)
    if args.json:
        print_json({"name": view.name, "source": view.source, "sha256": view.sha256, "policy": view.body})
    else:
        print(f"{view.name} ({view.source}) sha256 {view.sha256}")
        print(canonical_json(view.body))
    return 0


def _set(args: argparse.Namespace, base: Settings) -> int:
    try:
        if args.file.stat().st_size > MAX_BODY_BYTES:
            raise UsageError(f"{args.file} is over {MAX_BODY_BYTES} bytes")
        text = args.file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    with policies(args, base) as port:
        stored = port.set(args.name, text)
    if args.json:
        print_json({"name": stored.name, "sha256": stored.sha256, "policy": stored.body})
    else:
        print(f"policy {stored.name} set: sha256 {stored.sha256}")
    return 0


def _row(view: PolicyView) -> dict[str, Any]:
    row: dict[str, Any] = {"name": view.name, "source": view.source, "sha256": view.sha256}
    if view.updated_at is not None:
        row["updated_at"] = to_rfc3339(view.updated_at)
        row["updated_by"] = view.updated_by
    return row


def _list(args: argparse.Namespace, base: Settings) -> int:
    with policies(args, base) as port:
        rows = [_row(view) for view in port.list()]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["name", "source", "sha256", "updated_at", "updated_by"])
    return 0
