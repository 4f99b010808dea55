"""`verifier refs add | list | revoke | reapprove | history | import`: the approved rows and their lifecycle,
and the helpers the other `refs` handlers share (the port, the CLI actor, a row's JSON, an entry from the flags).
Every handler works through `RefsAdmin` (verifier.cli.refs_port): on the database of `--db`, or on a running
server with `--server` (the same output and exit codes).

Revocation is per value: `revoke ID` revokes the row's kind and value in every live row, every add path then
refuses the value (REFERENCE_VALUE_REVOKED, exit 64) and only `reapprove KIND VALUE --reason TEXT` lifts that."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..auth import current_actor
from ..clock import to_rfc3339
from ..reference_values.kinds import normalize_value
from ..reference_values.model import ReferenceValue, State, ValueRevocation
from ..settings import Settings
from ..storage.engine import Database
from ..workloads.manifest import load_manifest
from ..workloads.manifest_model import ManifestEntry
from .admin_port import open_port
from .common import UsageError, print_json
from .output import print_table
from .refs_db import DatabaseRefs
from .refs_grpc import RemoteRefs
from .refs_port import RefsAdmin


def cli_actor() -> str:
    """Who the CLI acts as, for created_by / revoked_by and the audit log: `cli:<os user>`."""
    return current_actor()


@contextmanager
def open_refs(args: argparse.Namespace, base: Settings) -> Iterator[RefsAdmin]:
    """The `RefsAdmin` the flags name: the server of `--server`, else the database of `--db`. Raises what
    `open_port` raises (UsageError for bad `--server` flags, UnavailableError for an unreachable database)."""

    def local(db: Database, settings: Settings) -> RefsAdmin:
        return DatabaseRefs(db, settings)

    with open_port(args, base, local=local, remote=RemoteRefs) as refs:
        yield refs


def _time(value: dt.datetime | None) -> str | None:
    return to_rfc3339(value) if value is not None else None


def ref_json(ref: ReferenceValue, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": ref.id,
        "kind": ref.kind,
        "value": ref.value.hex(),
        "label": ref.label,
        "version": ref.version,
        "state": ref.state(at),
        "created_at": to_rfc3339(ref.created_at),
        "created_by": ref.created_by,
        "valid_from": _time(ref.valid_from),
        "expires_at": _time(ref.expires_at),
        "revoked_at": _time(ref.revoked_at),
        "revoked_by": ref.revoked_by,
        "revoke_reason": ref.revoke_reason,
    }


def _entry_from_args(args: argparse.Namespace, kind: str, value: bytes, label: str) -> ManifestEntry:
    if args.valid_from is not None and args.expires is not None and args.expires <= args.valid_from:
        raise UsageError("--expires must be after --valid-from")
    return ManifestEntry(kind, value, label, args.expires, args.ref_version, args.valid_from)


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    return reason


def _add(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    entry = _entry_from_args(args, args.kind, value, args.label)
    with open_refs(args, base) as refs:
        ref, now = refs.add(entry), refs.now
    if args.json:
        print_json(ref_json(ref, now))
    else:
        print(f"added {ref.id} {ref.kind} {ref.value.hex()} {ref.label!r} ({ref.state(now)})")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    state: State | None = args.state
    with open_refs(args, base) as refs:
        rows, now = refs.list(kind=args.kind, label=args.label, state=state, include_inactive=args.all), refs.now
    if args.json:
        print_json([ref_json(r, now) for r in rows])
        return 0
    columns = ["id", "state", "kind", "value", "label", "version"]
    print_table([{**ref_json(r, now), "label": r.label or None} for r in rows], columns)
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    reason = _reason(args.reason)
    with open_refs(args, base) as refs:
        (ref, also), now = refs.revoke(args.id, reason), refs.now
    if args.json:
        print_json({**ref_json(ref, now), "also_revoked": [ref_json(r, now) for r in also]})
    else:
        print(f"revoked {ref.id} {ref.kind} ({reason})")
        for r in also:
            print(f"revoked {r.id} {r.kind} {r.label!r}: same value")
    return 0


def revocation_json(rv: ValueRevocation) -> dict[str, Any]:
    return {
        "id": rv.id,
        "ref_id": rv.ref_id,
        "revoked_at": to_rfc3339(rv.revoked_at),
        "revoked_by": rv.revoked_by,
        "reason": rv.reason,
        "reapproved_at": _time(rv.reapproved_at),
        "reapproved_by": rv.reapproved_by,
        "reapprove_reason": rv.reapprove_reason,
    }


def _reapprove(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    reason = _reason(args.reason)
    if args.label is None and (args.ref_version, args.valid_from, args.expires) != (None, None, None):
        raise UsageError("--version, --valid-from and --expires need --label (the row to add)")
    entry = _entry_from_args(args, args.kind, value, args.label or "")
    with open_refs(args, base) as refs:
        result, now = refs.reapprove(args.kind, value, reason, entry if args.label is not None else None), refs.now
    if args.json:
        print_json(
            {
                "kind": result.kind,
                "value": result.value.hex(),
                "reason": reason,
                "revocations": [revocation_json(r) for r in result.revocations],
                "added": ref_json(result.added, now) if result.added is not None else None,
            }
        )
        return 0
    print(f"re-approved {result.kind} {result.value.hex()} ({reason})")
    for rv in result.revocations:
        print(
            f"  closed the revocation of {to_rfc3339(rv.revoked_at)} by {rv.revoked_by} (row {rv.ref_id}): {rv.reason}"
        )
    if result.added is not None:
        added = result.added
        print(f"added {added.id} {added.kind} {added.value.hex()} {added.label!r} ({added.state(now)})")
    else:
        print("the value may be added again (refs add / import / apply)")
    return 0


def _history(args: argparse.Namespace, base: Settings) -> int:
    if args.id is None and args.kind is None and args.label is None:
        raise UsageError("history needs an ID, --kind or --label")
    with open_refs(args, base) as refs:
        rows = refs.history(args.id, kind=args.kind, label=args.label)
    if args.json:
        print_json(
            [
                {
                    "seq": e.seq,
                    "at": to_rfc3339(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                }
                for e in rows
            ]
        )
        return 0
    table = [
        {
            "seq": e.seq,
            "at": to_rfc3339(e.at),
            "action": e.action,
            "subject": e.subject,
            "kind": e.details.get("kind"),
            "label": e.details.get("label") or None,
            "actor": e.actor,
            "reason": e.details.get("reason") or None,
        }
        for e in rows
    ]
    print_table(table, ["seq", "at", "action", "subject", "kind", "label", "actor", "reason"])
    return 0


def _import(args: argparse.Namespace, base: Settings) -> int:
    """All or nothing: a revoked value among the entries (REFERENCE_VALUE_REVOKED) adds none of them."""
    entries = load_manifest(args.file, default_label=args.label, expires_at=args.expires)
    with open_refs(args, base) as refs:
        added, skipped = refs.import_entries(entries)
    if args.json:
        print_json({"file": str(args.file), "added": added, "already_present": skipped})
    else:
        print(f"imported {args.file}: {added} added, {skipped} already present")
    return 0
