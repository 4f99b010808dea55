"""What `verifier refs plan|apply` change: the difference between manifests and the database, for the labels the
manifests manage. Pure: `compute_plan` reads a snapshot of rows and returns the changes; storage applies them.

- ADD: a manifest entry with no matching live (active or pending) row. Match = kind, value, label, version,
  valid_from and expires_at, so changing any of these in a manifest replaces the row (EXPIRE old + ADD new).
  Entries already past their expires_at are not added.
- EXPIRE: a live row whose label a manifest manages and which no manifest entry matches: `expires_at = now`.
- REVOKE: every live row with the kind and value of a `revoke` entry, whatever its label: revocation is per value
  (and storage revokes every live row of a value whose row is revoked, so the plan lists them all).
Rows whose labels no manifest manages are never touched otherwise. A manifest cannot both approve and revoke one
value (MANIFEST_CONFLICT). A value revoked in the database is never re-approved by a manifest: storage refuses to
add it (REFERENCE_VALUE_REVOKED) in `plan` and `apply` alike, the one rule every add path goes through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..clock import to_rfc3339
from ..errors import RequestError
from .manifest import Manifest, ManifestEntry, entry_json
from .model import ReferenceValue


@dataclass(frozen=True)
class Revocation:
    ref: ReferenceValue
    reason: str


@dataclass(frozen=True)
class Plan:
    add: tuple[ManifestEntry, ...]
    expire: tuple[ReferenceValue, ...]
    revoke: tuple[Revocation, ...]
    sources: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add or self.expire or self.revoke)

    def to_json(self) -> dict[str, Any]:
        def ref(r: ReferenceValue) -> dict[str, Any]:
            out: dict[str, Any] = {"id": r.id, "kind": r.kind, "value": r.value.hex(), "label": r.label}
            if r.version is not None:
                out["version"] = r.version
            return out

        return {
            "sources": list(self.sources),
            "add": [entry_json(e) for e in self.add],
            "expire": [ref(r) for r in self.expire],
            "revoke": [{**ref(r.ref), "reason": r.reason} for r in self.revoke],
            "changes": len(self.add) + len(self.expire) + len(self.revoke),
        }

    def lines(self) -> list[str]:
        out = []
        for e in self.add:
            extra = "".join(
                f" {k}={v}" for k, v in (("version", e.version),
                                         ("valid_from", e.valid_from and to_rfc3339(e.valid_from)),
                                         ("expires_at", e.expires_at and to_rfc3339(e.expires_at))) if v
            )
            out.append(f"+ add     {e.kind:16} {e.value.hex()}  {e.label!r}{extra}")
        for r in self.expire:
            out.append(f"- expire  {r.kind:16} {r.value.hex()}  {r.label!r}  ({r.id})")
        for rv in self.revoke:
            out.append(f"! revoke  {rv.ref.kind:16} {rv.ref.value.hex()}  {rv.ref.label!r}  ({rv.ref.id}): {rv.reason}")
        total = len(self.add) + len(self.expire) + len(self.revoke)
        out.append(f"{len(self.add)} to add, {len(self.expire)} to expire, {len(self.revoke)} to revoke"
                   + ("" if total else " (nothing to do)"))
        return out


def _key(kind: str, value: bytes, label: str, version: str | None, valid_from: dt.datetime | None,
         expires_at: dt.datetime | None) -> tuple[Any, ...]:
    return (kind, value, label, version, valid_from, expires_at)


def _entry_key(e: ManifestEntry) -> tuple[Any, ...]:
    return _key(e.kind, e.value, e.label, e.version, e.valid_from, e.expires_at)


def _row_key(r: ReferenceValue) -> tuple[Any, ...]:
    return _key(r.kind, r.value, r.label, r.version, r.valid_from, r.expires_at)


def compute_plan(manifests: Sequence[Manifest], rows: Sequence[ReferenceValue], now: dt.datetime) -> Plan:
    """`rows`: every reference value in the database (any state). Raises MANIFEST_CONFLICT; does not check whether
    an added value is revoked (storage does, for every add path)."""
    live = [r for r in rows if r.state(now) in ("active", "pending")]

    revocations: list[Revocation] = []
    revoke_ids: set[str] = set()
    revoke_values: set[tuple[str, bytes]] = set()
    for m in manifests:
        for rv in m.revoke:
            revoke_values.add((rv.kind, rv.value))
            for r in live:
                if r.kind == rv.kind and r.value == rv.value and r.id not in revoke_ids:
                    revoke_ids.add(r.id)
                    revocations.append(Revocation(r, rv.reason))

    wanted: dict[tuple[Any, ...], ManifestEntry] = {}
    for m in manifests:
        for e in m.entries:
            if (e.kind, e.value) in revoke_values:
                raise RequestError(
                    "MANIFEST_CONFLICT", f"{m.source}: {e.kind} {e.value.hex()} is both approved and revoked"
                )
            if e.expires_at is not None and e.expires_at <= now:
                continue
            wanted.setdefault(_entry_key(e), e)

    present = {_row_key(r) for r in live if r.id not in revoke_ids}
    adds = [e for key, e in wanted.items() if key not in present]

    def managed(label: str) -> bool:
        return any(m.manages(label) for m in manifests)

    expires = tuple(r for r in live if r.id not in revoke_ids and managed(r.label) and _row_key(r) not in wanted)
    return Plan(tuple(adds), expires, tuple(revocations), tuple(m.source for m in manifests))
