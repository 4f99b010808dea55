"""The reference-value manifest model: the rows a manifest asks for (`ManifestEntry`), its per-value revocations
(`RevokeEntry`), a workload manifest's structure (`WorkloadSpec`, `VersionSpec`) and the loaded `Manifest` (which
labels it owns). Read by verifier.workloads.manifest, written by verifier.workloads.manifest_writer;
schema in measurements/README.md."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ManifestEntry:
    kind: str
    value: bytes
    label: str
    expires_at: dt.datetime | None = None
    version: str | None = None
    valid_from: dt.datetime | None = None


@dataclass(frozen=True)
class RevokeEntry:
    """Revokes the value (kind and value) wherever it is registered: revocation is per value, never per label."""

    kind: str
    value: bytes
    reason: str


@dataclass(frozen=True)
class VersionSpec:
    """One workload version: kind -> accepted values (several = alternatives), all kinds required."""

    version: str
    values: tuple[tuple[str, tuple[bytes, ...]], ...]  # sorted by kind
    valid_from: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    policy: str | None = None  # the version's own policy (a name, or its inline policy's name); None: the workload's

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, _ in self.values)


@dataclass(frozen=True)
class WorkloadSpec:
    """What a workload manifest says: the workload (= label of its rows), its TEE, the policy it is appraised under
    (None: leave the stored one, or the verifier default for a new workload) and its versions."""

    name: str
    tee: str
    policy: str | None
    versions: tuple[VersionSpec, ...]
    # The inline policies: (name, canonical JSON of the body with "id" = name), stored by `refs apply` under
    # `inline_policy_name`; `policy` and the versions' `policy` name them like any other policy.
    inline_policies: tuple[tuple[str, str], ...] = ()

    def version(self, version: str) -> VersionSpec | None:
        return next((v for v in self.versions if v.version == version), None)

    def inline(self, name: str | None) -> dict[str, Any] | None:
        """The body of the inline policy `name` (the `--policy-file` schema, with "id"), None if `name` is not one."""
        body = dict(self.inline_policies).get(name) if name is not None else None
        return json.loads(body) if body is not None else None

    @property
    def version_policies(self) -> dict[str, str]:
        return {v.version: v.policy for v in self.versions if v.policy is not None}

    @property
    def named_policies(self) -> list[str]:
        """The policies referenced by name (not inline): they must exist."""
        inline = {n for n, _ in self.inline_policies}
        names = [self.policy, *(v.policy for v in self.versions)]
        return sorted({n for n in names if n is not None and n not in inline})


def inline_policy_name(workload: str, version: str | None = None) -> str:
    """The database policy name of an inline policy: `workload:<name>` (top level) or `workload:<name>@<version>`
    (one version); reserved for that workload (`SqlWorkloads.ensure` refuses WORKLOAD_POLICY_CONFLICT)."""
    return f"workload:{workload}" if version is None else f"workload:{workload}@{version}"


@dataclass(frozen=True)
class Manifest:
    source: str
    entries: tuple[ManifestEntry, ...]
    managed_labels: frozenset[str] = frozenset()
    label_scope: tuple[str, ...] = ()  # patterns: exact, or a prefix when ending with "*"
    revoke: tuple[RevokeEntry, ...] = field(default=())
    nitro_cli: bool = False  # read from nitro-cli build-enclave / describe-eif JSON
    workload: WorkloadSpec | None = None  # a workload manifest (owns exactly `workload.name`)
    legacy: bool = False  # the pre-workload `reference_values:` format (read for one release)

    def manages(self, label: str) -> bool:
        return label in self.managed_labels or any(_matches(p, label) for p in self.label_scope)


def _matches(pattern: str, label: str) -> bool:
    return label.startswith(pattern[:-1]) if pattern.endswith("*") else label == pattern
