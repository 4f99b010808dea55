"""`verifier refs add|list|revoke|import`: approved reference values in the database."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from ..clock import SystemClock, to_rfc3339
from ..reference_values.kinds import normalize_value
from ..reference_values.manifest import ManifestEntry, load_manifest
from ..reference_values.model import ReferenceValue
from ..settings import Settings
from ..storage.engine import Database
from ..storage.reference_values import SqlReferenceValueStore
from .common import UsageError, add_db_flag, print_json, rfc3339, settings_for


def register(sub: Any) -> None:
    parser = sub.add_parser("refs", help="reference values (approved measurements)")
    rs = parser.add_subparsers(dest="refs_command", required=True)
    add = rs.add_parser("add", help="register an approved value")
    add.add_argument("kind", help="e.g. nitro.pcr0")
    add.add_argument("value", help="hex")
    add.add_argument("--label", default="", help="what this value is (image name, version)")
    add.add_argument("--expires", type=rfc3339, metavar="RFC3339")
    add.add_argument("--json", action="store_true")
    add_db_flag(add)
    add.set_defaults(handler=_add)
    ls = rs.add_parser("list", help="list reference values")
    ls.add_argument("--kind")
    ls.add_argument("--all", action="store_true", help="include expired and revoked values")
    ls.add_argument("--json", action="store_true")
    add_db_flag(ls)
    ls.set_defaults(handler=_list)
    rv = rs.add_parser("revoke", help="revoke a value (it is kept, never deleted)")
    rv.add_argument("id")
    rv.add_argument("--reason", required=True)
    add_db_flag(rv)
    rv.set_defaults(handler=_revoke)
    im = rs.add_parser("import", help="import a manifest (measurements/*.json) or `nitro-cli describe-eif` JSON")
    im.add_argument("file", type=Path)
    im.add_argument("--label", help="label for nitro-cli measurements (default: the file name)")
    im.add_argument("--expires", type=rfc3339, metavar="RFC3339")
    add_db_flag(im)
    im.set_defaults(handler=_import)


def _store(args: argparse.Namespace, base: Settings) -> tuple[Database, SqlReferenceValueStore]:
    db = Database(settings_for(args, base).database_url)
    db.check()
    return db, SqlReferenceValueStore(db)


def ref_json(ref: ReferenceValue, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": ref.id,
        "kind": ref.kind,
        "value": ref.value.hex(),
        "label": ref.label,
        "state": ref.state(at),
        "created_at": to_rfc3339(ref.created_at),
        "expires_at": to_rfc3339(ref.expires_at) if ref.expires_at else None,
        "revoked_at": to_rfc3339(ref.revoked_at) if ref.revoked_at else None,
        "revoke_reason": ref.revoke_reason,
    }


def _add(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        ref = store.add(args.kind, value, args.label, now=now, expires_at=args.expires)
    finally:
        db.dispose()
    if args.json:
        print_json(ref_json(ref, now))
    else:
        print(f"added {ref.id} {ref.kind} {ref.value.hex()} {ref.label!r}")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        refs = store.list(kind=args.kind, include_inactive=args.all, at=now)
    finally:
        db.dispose()
    if args.json:
        print_json([ref_json(r, now) for r in refs])
        return 0
    for r in refs:
        print(f"{r.id}  {r.state(now):8}  {r.kind:12}  {r.value.hex()}  {r.label}")
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must not be empty")
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        ref = store.revoke(args.id, args.reason, now=now)
    finally:
        db.dispose()
    print(f"revoked {ref.id} {ref.kind} ({args.reason})")
    return 0


def _import(args: argparse.Namespace, base: Settings) -> int:
    entries = load_manifest(args.file, default_label=args.label, expires_at=args.expires)
    now = SystemClock().now()
    db, store = _store(args, base)
    added = skipped = 0
    try:
        active = store.list(at=now)
        for entry in entries:
            if _present(active, entry):
                skipped += 1
                continue
            store.add(entry.kind, entry.value, entry.label, now=now, expires_at=entry.expires_at)
            added += 1
    finally:
        db.dispose()
    print(f"imported {args.file}: {added} added, {skipped} already present")
    return 0


def _present(active: list[ReferenceValue], entry: ManifestEntry) -> bool:
    return any(r.kind == entry.kind and r.value == entry.value and r.label == entry.label for r in active)
