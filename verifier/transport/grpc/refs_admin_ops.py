"""What `verifier refs plan | apply` and `refs import-nitro | compute snp --add` do on a database, written once for
both ways of reaching it: the CLI's `--db` path (verifier.cli.refs_db) and the admin RPCs that serve `--server`
(refs_admin_servicer, workloads_servicer), so the two give the same plan, the same SHA-256 and the same audit rows
(the actor is whoever `current_actor()` names: `cli:<os user>` or the token's principal).

A plan's SHA-256 (`plan_sha256`) is over its canonical JSON without the file names: `apply` with an expected digest
re-plans right before it writes and refuses (PLAN_STALE) when the plan is no longer the one that was reviewed.
Manifests received over the API are parsed by the same loader as local files (`received_manifest`); nothing on the
server's disk is opened under the name the client gave."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PosixPath

from ...appraisal.policy import policy_sha256
from ...errors import RequestError
from ...reference_values.model import ReferenceValue
from ...storage.engine import Database
from ...storage.policies import SqlPolicies
from ...storage.reference_values import SqlReferenceValueStore
from ...storage.workloads import SqlWorkloads
from ...workloads.manifest import MAX_MANIFEST_BYTES, load_manifest_file
from ...workloads.manifest_model import Manifest, ManifestEntry
from ...workloads.model import WorkloadMeta
from ...workloads.plan import Plan

log = logging.getLogger(__name__)

MAX_MANIFESTS = 64  # files in one plan or apply
MAX_NAME = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Received(PosixPath):
    """A manifest received over the API where the loader expects a file: its name is the client's (for `sources`,
    error messages, the parser chosen by suffix and a nitro-cli file's default label) and reading it returns the
    received bytes."""

    content: bytes = b""

    def read_bytes(self) -> bytes:
        return self.content


def received_manifest(name: str, content: bytes, default_label: str | None) -> Manifest:
    """The manifest a client sent as (file name, content), parsed exactly as `load_manifest_file` parses a local
    file. RequestError MANIFEST_NAME_INVALID (empty, longer than 1000 characters or not printable), and those of
    `load_manifest_file` (MANIFEST_TOO_LARGE, MANIFEST_INVALID, a value's kind / hex / length code)."""
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise RequestError("MANIFEST_NAME_INVALID", f"a manifest needs a printable name of 1..{MAX_NAME} characters")
    if len(content) > MAX_MANIFEST_BYTES:
        raise RequestError("MANIFEST_TOO_LARGE", f"{name} exceeds {MAX_MANIFEST_BYTES} bytes")
    path = _Received(name)
    path.content = content
    return load_manifest_file(path, default_label=default_label)


def check_policies(manifests: Sequence[Manifest], known: Callable[[str], bool]) -> None:
    """A policy a workload manifest names (top level or per version; not its inline ones, which `apply` stores)
    must be `known` (database, --policy-file or built-in): RequestError POLICY_UNKNOWN otherwise."""
    for name in sorted({n for m in manifests if m.workload is not None for n in m.workload.named_policies}):
        if not known(name):
            source = next(m.source for m in manifests if m.workload is not None and name in m.workload.named_policies)
            raise RequestError(
                "POLICY_UNKNOWN",
                f"{source}: no appraisal policy named {name!r} (create it first "
                "with `verifier policy set`, or in --policy-file)",
            )


def _stored_digests(manifests: Sequence[Manifest], db: Database) -> dict[str, str]:
    """The SHA-256 of the stored database policies the manifests' inline policies would replace (by name)."""
    stored = SqlPolicies(db)
    out: dict[str, str] = {}
    for m in manifests:
        for name, _ in m.workload.inline_policies if m.workload is not None else ():
            policy = stored.get(name)
            if policy is not None:
                out[name] = policy_sha256(policy)
    return out


def plan_sha256(plan: Plan) -> str:
    """SHA-256 (hex) of the plan's canonical JSON without `sources` (the same plan from files named otherwise has
    the same digest); it covers every row added, expired or revoked (by id) and every metadata change."""
    document = {k: v for k, v in plan.to_json().items() if k != "sources"}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made against (the workload metadata `before`, the stored policies' SHA-256
    `digests`) and its own SHA-256."""

    plan: Plan
    before: dict[str, WorkloadMeta]
    digests: dict[str, str]
    sha256: str


class WorkloadPlanner:
    """Plan and apply workload manifests on `db`; `known` says whether a policy name exists where the plan runs."""

    def __init__(self, db: Database, known: Callable[[str], bool]) -> None:
        self._db = db
        self._known = known
        self.store = SqlReferenceValueStore(db)
        self.workloads = SqlWorkloads(db)

    def plan(self, manifests: Sequence[Manifest], *, now: dt.datetime) -> Planned:
        """The plan `apply` would carry out now. RequestError POLICY_UNKNOWN, WORKLOAD_TEE_MISMATCH,
        MANIFEST_CONFLICT, REFERENCE_VALUE_REVOKED (an added value is revoked), ..."""
        check_policies(manifests, self._known)
        before = self.workloads.metadata({m.workload.name for m in manifests if m.workload is not None})
        digests = _stored_digests(manifests, self._db)
        plan = self.store.plan(manifests, now=now).with_catalog(manifests, before, digests)
        return Planned(plan, before, digests, plan_sha256(plan))

    def apply(self, manifests: Sequence[Manifest], *, now: dt.datetime, actor: str, expect: str | None) -> Planned:
        """Plan, refuse when `expect` is given and the plan's SHA-256 is another (RequestError PLAN_STALE, nothing
        written; PLAN_SHA256_INVALID when it is no SHA-256), then apply: each workload's metadata in its own
        transaction (before its values, so no value is ever live without its policy), then the values re-planned
        and applied in one transaction. Raises what `plan` raises."""
        if expect is not None and not _SHA256.fullmatch(expect):
            raise RequestError("PLAN_SHA256_INVALID", "the plan's SHA-256 is 64 lowercase hex digits")
        planned = self.plan(manifests, now=now)
        if expect is not None and planned.sha256 != expect:
            raise RequestError(
                "PLAN_STALE",
                f"the plan is now {planned.sha256}, not the reviewed {expect}: the database or the manifests "
                "changed since; plan again",
            )
        for m in manifests:
            if m.workload is not None:
                spec = m.workload
                inline = {n: body for n, _ in spec.inline_policies if (body := spec.inline(n)) is not None}
                self.workloads.ensure(
                    spec.name,
                    spec.tee,
                    now=now,
                    actor=actor,
                    policy=spec.policy,
                    version_policies=spec.version_policies,
                    inline_policies=inline,
                )
        applied = self.store.apply(manifests, now=now, actor=actor)
        result = applied.with_catalog(manifests, planned.before, planned.digests)
        digest = plan_sha256(result)
        if digest != planned.sha256:  # a change committed between the check and the values' transaction
            log.warning("applied plan %s differs from the plan %s checked just before it", digest, planned.sha256)
        return Planned(result, planned.before, planned.digests, digest)


def import_version(
    db: Database,
    name: str,
    tee: str,
    entries: Sequence[ManifestEntry],
    *,
    now: dt.datetime,
    actor: str,
    alternative: bool,
) -> tuple[list[ReferenceValue], int]:
    """Add one workload version (`refs import-nitro`, `refs compute snp --add`): (rows added, already present).
    The same version with the same live values is already present; with other values it is refused
    (WORKLOAD_VERSION_EXISTS: a released version is never changed by an import, which would make the two builds'
    values alternatives of each other), unless `alternative`. The workload is created if missing (TEE `tee`).
    RequestError as `SqlWorkloads.add_values`."""
    store, workloads = SqlReferenceValueStore(db), SqlWorkloads(db)
    version = entries[0].version if entries else None
    wanted = {(e.kind, e.value) for e in entries}
    live = {
        (r.kind, r.value)
        for r in store.list(label=name, include_inactive=True, at=now)
        if r.version == version and r.state(now) in ("active", "pending")
    }
    if live and wanted <= live and not alternative:
        workloads.ensure(name, tee, now=now, actor=actor)
        return [], len(entries)
    _, added = workloads.add_values(
        name, entries, now=now, actor=actor, tee=tee, new_version=not alternative, skip_present=True
    )
    return added, len(entries) - len(added)
