"""What `verifier refs plan|apply` change: the difference between manifests and the database, for the labels the
manifests manage. Pure: `compute_plan` reads a snapshot of rows and returns the changes; storage applies them.

- ADD: a manifest entry with no matching live (active or pending) row. Match = kind, value, label, version,
  valid_from and expires_at, so changing any of these in a manifest replaces the row (EXPIRE old + ADD new).
  Entries already past their expires_at are not added.
- EXPIRE: a live row whose label a manifest manages and which no manifest entry matches: `expires_at = now`.
- REVOKE: every live row with the kind and value of a `revoke` entry, whatever its label: revocation is per value
  (and storage revokes every live row of a value whose row is revoked, so the plan lists them all).
Rows whose labels no manifest manages are never touched otherwise. A manifest cannot both approve and revoke one
value, and two manifests cannot describe one workload (MANIFEST_CONFLICT). A value revoked in the database is never
re-approved by a manifest: storage refuses to add it (REFERENCE_VALUE_REVOKED) in `plan` and `apply` alike, the one
rule every add path goes through.

The same changes are also grouped per workload (label) and version (`Plan.workloads`): a version that is new, one
whose rows all expire, one whose values change (+ value, - value, ! revoked value) or only its window;
`with_catalog` adds what the workload metadata would become (new workload, TEE, policy, each version's policy, and
each inline policy stored or replaced, by name and SHA-256) and refuses a manifest whose TEE differs from the stored
workload's (WORKLOAD_TEE_MISMATCH, as `SqlWorkloads.ensure` does)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..clock import to_rfc3339
from ..errors import RequestError
from ..reference_values.model import ReferenceValue
from .manifest_model import Manifest, ManifestEntry, WorkloadSpec
from .manifest_writer import entry_json
from .model import UNVERSIONED, WorkloadMeta

VersionChangeKind = Literal["new", "expired", "revoked", "changed", "window"]
_Pair = tuple[str, bytes]


@dataclass(frozen=True)
class Revocation:
    ref: ReferenceValue
    reason: str


@dataclass(frozen=True)
class VersionChange:
    """What happens to one workload version. `added` / `expired` / `revoked` are (kind, value) pairs; a value that
    is only re-dated is in none of them (`change == "window"`)."""

    version: str  # "" = unversioned rows
    change: VersionChangeKind
    kinds: tuple[str, ...]  # the kinds of the version once the plan is applied (all of them required)
    added: tuple[tuple[str, bytes], ...] = ()
    expired: tuple[tuple[str, bytes], ...] = ()
    revoked: tuple[tuple[str, bytes, str], ...] = ()  # (kind, value, reason)
    unpinned: tuple[str, ...] = ()  # kinds the version had and would have no live value for (after revocations)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "change": self.change,
            "kinds": list(self.kinds),
            "added": [{"kind": k, "value": v.hex()} for k, v in self.added],
            "expired": [{"kind": k, "value": v.hex()} for k, v in self.expired],
            "revoked": [{"kind": k, "value": v.hex(), "reason": r} for k, v, r in self.revoked],
            "unpinned": list(self.unpinned),
        }

    def line(self) -> str:
        label = f"version {self.version}" if self.version else "unversioned values"
        if self.change == "new":
            return f"+ {label} ({', '.join(self.kinds)})"
        if self.change in ("expired", "revoked"):
            why = "; ".join(f"{k} {v.hex()} revoked: {r}" for k, v, r in self.revoked)
            return f"- {label} {self.change}" + (f" ({why})" if why and self.change == "revoked" else "")
        if self.change == "window":
            return f"~ {label}: validity window changed"
        parts = []
        for kind in sorted({k for k, _ in self.added} | {k for k, _ in self.expired} | {k for k, _, _ in self.revoked}):
            part = kind + "".join(f" + {v.hex()}" for k, v in self.added if k == kind)
            part += "".join(f" - {v.hex()}" for k, v in self.expired if k == kind)
            part += "".join(f" ! {v.hex()} revoked: {r}" for k, v, r in self.revoked if k == kind)
            parts.append(part)
        return f"~ {label}: " + ", ".join(parts)


@dataclass(frozen=True)
class WorkloadChange:
    """The changes of one workload (label). `managed`: a manifest owns it (otherwise only revocations reach it)."""

    workload: str
    managed: bool
    versions: tuple[VersionChange, ...] = ()
    tee: str | None = None  # from its workload manifest
    policy: str | None = None  # the manifest's policy (None: not given)
    metadata: tuple[str, ...] = ()  # set by `Plan.with_catalog`: "new workload", "policy a -> b", ...
    # set by `Plan.with_catalog`: inline policies stored or replaced (name, sha256, previous sha256 or None) and
    # versions whose policy changes (version, previous or None = the workload's, new)
    inline_policies: tuple[tuple[str, str, str | None], ...] = ()
    version_policies: tuple[tuple[str, str | None, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.versions or self.metadata)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "managed": self.managed,
            "tee": self.tee,
            "policy": self.policy,
            "metadata": list(self.metadata),
            "versions": [v.to_json() for v in self.versions],
            "inline_policies": [{"name": n, "sha256": h, "previous_sha256": p} for n, h, p in self.inline_policies],
            "version_policies": [{"version": v, "previous": p, "policy": n} for v, p, n in self.version_policies],
        }

    def lines(self) -> list[str]:
        head = f"workload {self.workload}" + (f" ({', '.join(self.metadata)})" if self.metadata else "") + ":"
        out = [head] + [f"  {v.line()}" for v in self.versions]
        for v in self.versions:
            if v.unpinned:
                out.append(
                    f"  ! version {v.version or '(unversioned)'} would have no live value of "
                    f"{', '.join(v.unpinned)}: expire the version or approve a replacement value"
                )
        return out


@dataclass(frozen=True)
class Plan:
    add: tuple[ManifestEntry, ...]
    expire: tuple[ReferenceValue, ...]
    revoke: tuple[Revocation, ...]
    sources: tuple[str, ...] = ()
    workloads: tuple[WorkloadChange, ...] = ()

    @property
    def empty(self) -> bool:
        """No reference-value change (what storage applies; `metadata_empty` also counts workload metadata)."""
        return not (self.add or self.expire or self.revoke)

    @property
    def metadata_empty(self) -> bool:
        return self.empty and not any(w.metadata for w in self.workloads)

    def with_catalog(
        self,
        manifests: Sequence[Manifest],
        catalog: Mapping[str, WorkloadMeta],
        policies: Mapping[str, str] | None = None,
    ) -> Plan:
        """The plan with what each workload manifest changes in the workload metadata (`catalog`: the stored
        metadata by name; `policies`: the SHA-256 of the stored database policies by name, for the inline policies).
        RequestError WORKLOAD_TEE_MISMATCH when a manifest names another TEE than the stored workload (it would
        also fail in `SqlWorkloads.ensure`)."""
        changes = {w.workload: w for w in self.workloads}
        for m in manifests:
            spec = m.workload
            if spec is None:
                continue
            meta = catalog.get(spec.name)
            notes = _catalog_notes(m, spec, meta, {e.version or UNVERSIONED for e in self.add if e.label == spec.name})
            inline, versions, policy_notes = _policy_changes(spec, meta, policies or {})
            current = changes.get(spec.name, WorkloadChange(spec.name, True, (), spec.tee, spec.policy))
            changes[spec.name] = dataclasses.replace(
                current, metadata=(*notes, *policy_notes), inline_policies=inline, version_policies=versions
            )
        return dataclasses.replace(self, workloads=tuple(changes[k] for k in sorted(changes)))

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
            "workloads": [w.to_json() for w in self.workloads if not w.empty],
        }

    def lines(self, *, values: bool = False) -> list[str]:
        """Per workload: + new version, - expired version, ~ changed values; then, with `values`, one line per
        row; last the counts of rows."""
        out = [line for w in self.workloads if not w.empty for line in w.lines()]
        if values:
            out += self.value_lines()
        total = len(self.add) + len(self.expire) + len(self.revoke)
        out.append(
            f"{len(self.add)} to add, {len(self.expire)} to expire, {len(self.revoke)} to revoke"
            + ("" if total or not self.metadata_empty else " (nothing to do)")
        )
        return out

    def value_lines(self) -> list[str]:
        out = []
        for e in self.add:
            extra = "".join(
                f" {k}={v}"
                for k, v in (
                    ("version", e.version),
                    ("valid_from", e.valid_from and to_rfc3339(e.valid_from)),
                    ("expires_at", e.expires_at and to_rfc3339(e.expires_at)),
                )
                if v
            )
            out.append(f"+ add     {e.kind:16} {e.value.hex()}  {e.label!r}{extra}")
        for r in self.expire:
            out.append(f"- expire  {r.kind:16} {r.value.hex()}  {r.label!r}  ({r.id})")
        for rv in self.revoke:
            out.append(f"! revoke  {rv.ref.kind:16} {rv.ref.value.hex()}  {rv.ref.label!r}  ({rv.ref.id}): {rv.reason}")
        return out


def _match_key(e: ManifestEntry | ReferenceValue) -> tuple[Any, ...]:
    return (e.kind, e.value, e.label, e.version, e.valid_from, e.expires_at)


def compute_plan(manifests: Sequence[Manifest], rows: Sequence[ReferenceValue], now: dt.datetime) -> Plan:
    """`rows`: every reference value in the database (any state). Raises MANIFEST_CONFLICT; does not check whether
    an added value is revoked (storage does, for every add path)."""
    _one_owner(manifests)
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
            wanted.setdefault(_match_key(e), e)

    present = {_match_key(r) for r in live if r.id not in revoke_ids}
    adds = [e for key, e in wanted.items() if key not in present]

    def managed(label: str) -> bool:
        return any(m.manages(label) for m in manifests)

    expires = tuple(r for r in live if r.id not in revoke_ids and managed(r.label) and _match_key(r) not in wanted)
    workloads = _by_workload(manifests, live, adds, expires, revocations)
    return Plan(tuple(adds), expires, tuple(revocations), tuple(m.source for m in manifests), workloads)


def _one_owner(manifests: Sequence[Manifest]) -> None:
    """A workload manifest owns its workload alone: no second workload manifest, no older manifest managing it."""
    owners: dict[str, str] = {}
    for m in manifests:
        if m.workload is not None:
            if m.workload.name in owners:
                raise RequestError(
                    "MANIFEST_CONFLICT",
                    f"workload {m.workload.name!r} is described by both {owners[m.workload.name]} and {m.source}",
                )
            owners[m.workload.name] = m.source
    for m in manifests:
        if m.workload is None:
            for name, source in owners.items():
                if m.manages(name):
                    raise RequestError(
                        "MANIFEST_CONFLICT",
                        f"{m.source} manages label {name!r}, which the workload manifest {source} owns",
                    )


def _catalog_notes(m: Manifest, spec: WorkloadSpec, meta: WorkloadMeta | None, adds: set[str]) -> list[str]:
    """What manifest `m` changes in its stored workload `meta` (None: a new one) besides the policies; `adds`: the
    versions it adds values to. RequestError WORKLOAD_TEE_MISMATCH, WORKLOAD_REVOKED, WORKLOAD_VERSION_REVOKED."""
    if meta is None:
        return [f"new {spec.tee} workload, policy {spec.policy or '(verifier default)'}"]
    if meta.tee != spec.tee:
        raise RequestError(
            "WORKLOAD_TEE_MISMATCH", f"{m.source}: workload {spec.name!r} is a {meta.tee} workload, not {spec.tee}"
        )
    notes: list[str] = []
    if spec.policy is not None and spec.policy != meta.policy:
        notes.append(f"policy {meta.policy or '(verifier default)'} -> {spec.policy}")
    if meta.revoked_at is not None and adds:
        raise RequestError(
            "WORKLOAD_REVOKED",
            f"{m.source}: workload {spec.name!r} is revoked; a "
            "revoked workload takes no new values (use a new workload name)",
        )
    again = sorted(adds & meta.revoked_versions)
    if again:
        raise RequestError(
            "WORKLOAD_VERSION_REVOKED",
            f"{m.source}: version {again[0]!r} of {spec.name!r} is revoked; a revoked version is never re-approved: "
            "remove it or release a new version",
        )
    listed = sorted({v.version for v in spec.versions} & meta.revoked_versions)
    if listed:
        notes.append(f"revoked versions {', '.join(listed)} do not match")
    return notes


def _policy_changes(
    spec: WorkloadSpec, meta: WorkloadMeta | None, stored: Mapping[str, str]
) -> tuple[tuple[tuple[str, str, str | None], ...], tuple[tuple[str, str | None, str], ...], list[str]]:
    """The inline policies stored or replaced (name, sha256, previous sha256 or None; `stored`: the sha256 of the
    stored ones by name), the versions whose policy changes (version, previous or None = the workload's, new) and
    their notes, in that order."""
    inline: list[tuple[str, str, str | None]] = []
    notes: list[str] = []
    for name, body in spec.inline_policies:
        digest, previous = hashlib.sha256(body.encode()).hexdigest(), stored.get(name)
        if digest != previous:
            inline.append((name, digest, previous))
            notes.append(
                f"inline policy {name} sha256 {digest}" + (f" (replaces {previous})" if previous else " (new)")
            )
    versions: list[tuple[str, str | None, str]] = []
    for version, policy in sorted(spec.version_policies.items()):
        before = meta.version_policies.get(version) if meta is not None else None
        if policy != before:
            versions.append((version, before, policy))
            shown = before or "(the workload's)"
            notes.append(f"version {version} policy {shown} -> {policy}")
    return tuple(inline), tuple(versions), notes


def _by_workload(
    manifests: Sequence[Manifest],
    live: Sequence[ReferenceValue],
    adds: Sequence[ManifestEntry],
    expires: Sequence[ReferenceValue],
    revocations: Sequence[Revocation],
) -> tuple[WorkloadChange, ...]:
    """Group the row changes per workload (label) and version."""
    before: dict[tuple[str, str], set[_Pair]] = {}
    for r in live:
        before.setdefault((r.label, r.version or UNVERSIONED), set()).add((r.kind, r.value))
    gone_ids = {r.id for r in expires} | {rv.ref.id for rv in revocations}
    after: dict[tuple[str, str], set[_Pair]] = {}
    for r in live:
        if r.id not in gone_ids:
            after.setdefault((r.label, r.version or UNVERSIONED), set()).add((r.kind, r.value))
    for e in adds:
        after.setdefault((e.label, e.version or UNVERSIONED), set()).add((e.kind, e.value))
    touched = {(e.label, e.version or UNVERSIONED) for e in adds}
    touched |= {(r.label, r.version or UNVERSIONED) for r in expires}
    revoked: dict[tuple[str, str], list[tuple[str, bytes, str]]] = {}
    for rv in revocations:
        key = (rv.ref.label, rv.ref.version or UNVERSIONED)
        touched.add(key)
        revoked.setdefault(key, []).append((rv.ref.kind, rv.ref.value, rv.reason))
    specs = {m.workload.name: m.workload for m in manifests if m.workload is not None}
    versions: dict[str, list[VersionChange]] = {}
    for key in sorted(touched):
        old, new = before.get(key, set()), after.get(key, set())
        gone = tuple(sorted(set(revoked.get(key, []))))
        revoked_pairs = {(k, v) for k, v, _ in gone}
        added = tuple(sorted(new - old))
        expired = tuple(sorted((old - new) - revoked_pairs))
        kinds = tuple(sorted({k for k, _ in new}))
        change: VersionChangeKind
        if not old:
            change = "new"
        elif not new:
            change = "expired" if expired or not gone else "revoked"
        elif added or expired or gone:
            change = "changed"
        else:
            change = "window"
        unpinned = tuple(sorted({k for k, _ in old} - set(kinds))) if new and gone else ()
        versions.setdefault(key[0], []).append(VersionChange(key[1], change, kinds, added, expired, gone, unpinned))
    return tuple(
        WorkloadChange(
            name,
            any(m.manages(name) for m in manifests),
            tuple(vs),
            specs[name].tee if name in specs else None,
            specs[name].policy if name in specs else None,
        )
        for name, vs in sorted(versions.items())
    )
