"""`verifier refs add | list | revoke | reapprove | history | import`: the approved rows and their lifecycle,
and the helpers the other `refs` handlers share (the store, the CLI actor, a row's JSON, an entry from the flags).

Revocation is per value: `revoke ID` revokes the row's kind and value in every live row, every add path then
refuses the value (REFERENCE_VALUE_REVOKED, exit 64) and only `reapprove KIND VALUE --reason TEXT` lifts that."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..auth import current_actor
from ..bootstrap import open_database
from ..clock import SystemClock, to_rfc3339
from ..reference_values.kinds import normalize_value
from ..reference_values.model import Reapproval, ReferenceValue, State, ValueRevocation
from ..settings import Settings
from ..storage import migrate
from ..storage.engine import Database
from ..storage.reference_values import SqlReferenceValueStore
from ..storage.workloads import SqlWorkloads
from ..workloads.manifest import load_manifest
from ..workloads.manifest_model import ManifestEntry
from .common import UsageError, print_json, settings_for


def cli_actor() -> str:
    """Who the CLI acts as, for created_by / revoked_by and the audit log: `cli:<os user>`."""
    return current_actor()


def _store(args: argparse.Namespace, base: Settings) -> tuple[Database, SqlReferenceValueStore]:
    db = open_database(settings_for(args, base))
    migrate.check(db)
    return db, SqlReferenceValueStore(db)


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


def _add(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    entry = _entry_from_args(args, args.kind, value, args.label)
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        if entry.label:  # the value joins the workload named by the label, created if missing (one transaction)
            _, [ref] = SqlWorkloads(db).add_values(entry.label, [entry], now=now, actor=cli_actor(), skip_present=False)
        else:
            ref = store.add(
                entry.kind,
                entry.value,
                entry.label,
                now=now,
                expires_at=entry.expires_at,
                valid_from=entry.valid_from,
                version=entry.version,
                actor=cli_actor(),
            )
    finally:
        db.dispose()
    if args.json:
        print_json(ref_json(ref, now))
    else:
        print(f"added {ref.id} {ref.kind} {ref.value.hex()} {ref.label!r} ({ref.state(now)})")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    now = SystemClock().now()
    state: State | None = args.state
    db, store = _store(args, base)
    try:
        refs = store.list(kind=args.kind, label=args.label, state=state, include_inactive=args.all, at=now)
    finally:
        db.dispose()
    if args.json:
        print_json([ref_json(r, now) for r in refs])
        return 0
    for r in refs:
        version = f" [{r.version}]" if r.version else ""
        print(f"{r.id}  {r.state(now):8}  {r.kind:16}  {r.value.hex()}  {r.label}{version}")
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        ref = store.revoke(args.id, reason, now=now, actor=cli_actor())
        also = [
            r
            for r in store.list(kind=ref.kind, state="revoked", at=now)
            if r.value == ref.value and r.id != ref.id and r.revoked_at == ref.revoked_at
        ]
    finally:
        db.dispose()
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
    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    if args.label is None and (args.ref_version, args.valid_from, args.expires) != (None, None, None):
        raise UsageError("--version, --valid-from and --expires need --label (the row to add)")
    entry = _entry_from_args(args, args.kind, value, args.label or "")
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        result: Reapproval = store.reapprove(
            args.kind,
            value,
            reason,
            now=now,
            actor=cli_actor(),
            label=args.label,
            expires_at=entry.expires_at,
            valid_from=entry.valid_from,
            version=entry.version,
        )
    finally:
        db.dispose()
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
    db, store = _store(args, base)
    try:
        rows = store.history(args.id, kind=args.kind, label=args.label)
    finally:
        db.dispose()
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
    for e in rows:
        what = f"{e.details.get('kind', '')} {e.details.get('label', '')!r}"
        why = f": {e.details['reason']}" if e.details.get("reason") else ""
        print(f"{e.seq:6}  {to_rfc3339(e.at)}  {e.action:10}  {e.subject}  {what}  by {e.actor}{why}")
    return 0


def _add_missing(store: SqlReferenceValueStore, entries: list[ManifestEntry], now: dt.datetime) -> tuple[int, int]:
    """All or nothing: a revoked value among the entries (REFERENCE_VALUE_REVOKED) adds none of them."""
    added, skipped = store.add_missing(entries, now=now, actor=cli_actor())
    return len(added), skipped


def _import(args: argparse.Namespace, base: Settings) -> int:
    entries = load_manifest(args.file, default_label=args.label, expires_at=args.expires)
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        added, skipped = _add_missing(store, entries, now)
    finally:
        db.dispose()
    print(f"imported {args.file}: {added} added, {skipped} already present")
    return 0
