"""Workloads: the unit of trust (ARCHITECTURE.md "Workloads"; Veraison CoRIM reference triples, Contrast manifests).

A workload has a unique name (the reference values' `label`), a TEE kind, and versions. A version is the set of
active reference values registered under (label, version): every kind present is required, and several values
of one kind are alternatives (e.g. two accepted RTMR2 values for two kernel command lines). Evidence matches a
version only when every kind of that version matches (all-of), so a value shared by two workloads never mixes
them. Each workload may name the policy it is appraised under (`WorkloadMeta.policy`); without one the verifier's
default policy applies. Metadata (TEE, policy, revoked versions) is kept by `WorkloadCatalog`; rows without
metadata form implicit workloads under the default policy (`refs add KIND VALUE --label L` keeps working).

GPUs (composite evidence, verifier.composite): a version of an SEV-SNP or TDX workload may require "this CPU TEE plus
at least k GPUs in CC mode with approved firmware" with a value of kind `snp.min_gpus` / `tdx.min_gpus` (one byte,
k; a manifest's `gpus: {min: k}` writes it). Such a value is a constraint of the composite, not a claim of the CPU
report: `group_versions` keeps it apart from the version's members (`WorkloadVersion.gpus`), so the CPU appraiser
never sees it, and the version matches only when at least k of the request's GPUs are affirming (all-of: several
values, the largest k). Like any kind, when its only value is revoked or not yet valid the version cannot match."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..reference_values.kinds import register_kind
from ..reference_values.model import ReferenceValue

UNVERSIONED = ""  # the version of rows registered without one
MIN_GPUS = "min_gpus"  # the claim of the GPU-count constraint kinds `<tee>.min_gpus` (module docstring)
COMPOSITE_TEES = ("snp", "tdx")  # the CPU TEEs whose REPORT_DATA can bind GPU reports (appraisal/binding.py)
GPU_COUNT_KINDS = frozenset(f"{tee}.{MIN_GPUS}" for tee in COMPOSITE_TEES)
for _kind in sorted(GPU_COUNT_KINDS):
    register_kind(_kind, 1, "at_least")  # k as one byte: "02" = at least two affirming GPUs


@dataclass(frozen=True)
class WorkloadMeta:
    """What the catalog knows of one workload besides its values."""

    name: str
    tee: str
    id: str = ""
    policy: str | None = None  # a named policy (database, file or built-in); None: the verifier's default
    revoked_at: dt.datetime | None = None
    revoked_versions: frozenset[str] = frozenset()
    review: bool = False  # migrated from flat values with alternatives an admin should confirm
    # version -> the policy that version is appraised under instead of `policy` (`workload_version_policies`)
    version_policies: Mapping[str, str] = field(default_factory=dict)

    def live_at(self, at: dt.datetime) -> bool:
        return self.revoked_at is None or self.revoked_at > at


class WorkloadCatalog(Protocol):
    """Workload metadata by name (`verifier.storage.workloads.SqlWorkloads`)."""

    def metadata(self, names: Iterable[str]) -> Mapping[str, WorkloadMeta]: ...


@dataclass(frozen=True)
class WorkloadVersion:
    """One approved version: the active reference values of (workload, version), grouped by kind."""

    workload: str
    version: str
    tee: str
    members: Mapping[str, tuple[ReferenceValue, ...]]
    meta: WorkloadMeta | None = None
    # Every kind the version requires, including kinds none of whose values is active (revoked or pending): such a
    # version cannot match until a value of the kind is active again.
    required: frozenset[str] = frozenset()
    # The active `<tee>.min_gpus` values (module docstring), kept out of `members` and `required`; `gpus_required`:
    # the version has such a row that has not expired (active, pending or revoked).
    gpus: tuple[ReferenceValue, ...] = ()
    gpus_required: bool = False

    @property
    def gpu_kind(self) -> str:
        return f"{self.tee}.{MIN_GPUS}"

    @property
    def min_gpus(self) -> int | None:
        """The affirming GPUs the version requires (the largest of its active values); 0 without a requirement,
        None when it has one but no value of it is active (then it cannot match). Never raises."""
        if not self.gpus_required:
            return 0
        if not self.gpus:
            return None
        return max(int.from_bytes(ref.value, "big") for ref in self.gpus)

    @property
    def values(self) -> list[ReferenceValue]:
        return [ref for refs in self.members.values() for ref in refs]

    @property
    def policy(self) -> str | None:
        """The version's own policy if set, else the workload's (None: the verifier's default)."""
        if self.meta is None:
            return None
        return self.meta.version_policies.get(self.version, self.meta.policy)

    @property
    def workload_id(self) -> str:
        return self.meta.id if self.meta is not None and self.meta.id else self.workload

    def describe(self) -> str:
        return f"{self.workload} {self.version}".rstrip()


@dataclass(frozen=True)
class WorkloadVersions:
    versions: tuple[WorkloadVersion, ...] = field(default_factory=tuple)


def group_versions(
    tee: str,
    references: Sequence[ReferenceValue],
    catalog: Mapping[str, WorkloadMeta],
    at: dt.datetime,
    *,
    members: Sequence[ReferenceValue] = (),
) -> list[WorkloadVersion]:
    """The live workload versions of `tee` formed by active `references` (label = workload, version = version).

    `members` (rows not expired: active, pending or revoked) add the kinds a version requires beyond its active
    values. Rows of another TEE, of a revoked workload or of a revoked version are left out; a workload whose catalog
    entry names another TEE is left out too (its values cannot be evidence of this TEE)."""
    prefix, gpu_kind = f"{tee}.", f"{tee}.{MIN_GPUS}"
    groups: dict[tuple[str, str], dict[str, list[ReferenceValue]]] = {}
    required: dict[tuple[str, str], set[str]] = {}
    for ref in references:
        if not ref.kind.startswith(prefix) or not ref.label:
            continue
        groups.setdefault((ref.label, ref.version or UNVERSIONED), {}).setdefault(ref.kind, []).append(ref)
    for ref in members:
        if ref.kind.startswith(prefix) and ref.label:
            required.setdefault((ref.label, ref.version or UNVERSIONED), set()).add(ref.kind)
    out = []
    for key in sorted(set(groups) | set(required)):
        name, version = key
        meta = catalog.get(name)
        if meta is not None and (meta.tee != tee or not meta.live_at(at) or version in meta.revoked_versions):
            continue
        values = dict(groups.get(key, {}))
        gpus = tuple(values.pop(gpu_kind, ()))
        kinds = (frozenset(values) | frozenset(required.get(key, ()))) - {gpu_kind}
        wants_gpus = bool(gpus) or gpu_kind in required.get(key, ())
        members_of = {k: tuple(v) for k, v in sorted(values.items())}
        out.append(WorkloadVersion(name, version, tee, members_of, meta, kinds, gpus, wants_gpus))
    return out
