"""`verifier policy show|set|list`: named appraisal policies (built-in, --policy-file, database)."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from ..appraisal.policy import PolicySet, canonical_json, policy_sha256, policy_to_json
from ..bootstrap import build_policies, open_database
from ..clock import SystemClock, to_rfc3339
from ..errors import RequestError
from ..settings import Settings, add_flags
from ..storage import migrate
from ..storage.engine import Database
from ..storage.policies import MAX_BODY_BYTES, SqlPolicies
from .common import UsageError, add_db_flag, print_json, settings_for


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


def _open(args: argparse.Namespace, base: Settings) -> tuple[Database, PolicySet]:
    settings = settings_for(args, base).with_overrides(policy_file=args.policy_file)
    db = open_database(settings)
    try:
        migrate.check(db)
        return db, build_policies(settings, db)
    except BaseException:
        db.dispose()
        raise


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _show(args: argparse.Namespace, base: Settings) -> int:
    db, policies = _open(args, base)
    try:
        found = policies.lookup(args.name)
    finally:
        db.dispose()
    if found is None:
        raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {args.name!r}")
    policy, source = found
    body, digest = policy_to_json(policy), policy_sha256(policy)
    if args.json:
        print_json({"name": args.name, "source": source, "sha256": digest, "policy": body})
    else:
        print(f"{args.name} ({source}) sha256 {digest}")
        print(canonical_json(body))
    return 0


def _set(args: argparse.Namespace, base: Settings) -> int:
    try:
        if args.file.stat().st_size > MAX_BODY_BYTES:
            raise UsageError(f"{args.file} is over {MAX_BODY_BYTES} bytes")
        text = args.file.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    db, _ = _open(args, base)
    try:
        stored = SqlPolicies(db).set(args.name, text, now=SystemClock().now(), actor=_actor())
    finally:
        db.dispose()
    if args.json:
        print_json({"name": stored.name, "sha256": stored.sha256, "policy": policy_to_json(stored.policy)})
    else:
        print(f"policy {stored.name} set: sha256 {stored.sha256}")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    db, policies = _open(args, base)
    try:
        stored = {p.name: p for p in SqlPolicies(db).list()}
        rows = []
        for name in policies.names():
            found = policies.lookup(name)
            if found is None:
                continue
            policy, source = found
            row: dict[str, Any] = {"name": name, "source": source, "sha256": policy_sha256(policy)}
            if source == "database" and name in stored:
                row["updated_at"] = to_rfc3339(stored[name].updated_at)
                row["updated_by"] = stored[name].updated_by
            rows.append(row)
    finally:
        db.dispose()
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        extra = f"  {row['updated_at']} by {row['updated_by']}" if "updated_at" in row else ""
        print(f"{row['name']:<24} {row['source']:<9} {row['sha256']}{extra}")
    return 0
