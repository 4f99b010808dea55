"""Matching verified evidence to approved workload versions (issue 10; ARCHITECTURE.md pipeline step 7).

Each candidate is one workload version appraised under its own policy (by the per-TEE appraiser, with only that
version's reference values). A candidate matches *completely* when none of its findings is a reference-value miss:
every kind of the version (and every kind its policy requires) carries one of the version's values. Only a
complete match can affirm; a value shared by two workloads therefore never lends one workload's approval to the
other's evidence, and values from several workloads never add up to an approval no one gave.

Selection: among complete matches the best status wins (then the name and version, for a stable answer); every
complete match is reported with its own status. Without one, the closest versions (fewest missed kinds) are
reported, each miss naming its workload ("nitro.pcr2 differs from my-enclave 1.5"), so an admin sees which
approval the evidence came close to rather than unrelated misses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..appraisal.model import CONTRAINDICATED, Claim, Finding, TrustVector, combine
from ..appraisal.policy import Policy
from ..evaluation import Component
from ..reference_values.model import ReferenceValue
from .model import WorkloadVersion

# Finding codes that mean "this evidence is not this workload version" (as opposed to policy findings).
# WORKLOAD_GPUS_INSUFFICIENT: fewer affirming GPUs than the version's `<tee>.min_gpus` (verifier.composite).
MISS_CODES = frozenset(
    {
        "REFERENCE_VALUE_MISMATCH",
        "REFERENCE_VALUE_MISSING",
        "CLAIM_MISSING",
        "TDX_SERVICE_TD_NOT_APPROVED",
        "WORKLOAD_GPUS_INSUFFICIENT",
    }
)
MAX_CLOSEST = 3


@dataclass(frozen=True)
class Candidate:
    """One workload version appraised under its policy (`version` None: no workload is registered for the TEE)."""

    version: WorkloadVersion | None
    policy: Policy
    baseline: dict[Claim, int]
    findings: tuple[Finding, ...]
    matched: tuple[ReferenceValue, ...]
    # The GPUs of a composite request appraised under `policy` (verifier.composite `with_gpus`).
    components: tuple[Component, ...] = ()

    @property
    def misses(self) -> list[Finding]:
        return [f for f in self.findings if f.code in MISS_CODES]

    @property
    def complete(self) -> bool:
        return self.version is not None and not self.misses

    @property
    def vector(self) -> TrustVector:
        return combine(self.baseline, list(self.findings))

    def describe(self) -> dict[str, Any]:
        """The token's view of this candidate: workload name, version, id, policy and status."""
        assert self.version is not None
        return {
            "name": self.version.workload,
            "version": self.version.version,
            "id": self.version.workload_id,
            "policy": self.policy.policy_id,
            "status": self.vector.status.value,
        }


@dataclass(frozen=True)
class Selection:
    chosen: Candidate  # whose findings, trust vector and policy the result carries
    complete: tuple[Candidate, ...]  # every complete match, best first
    findings: tuple[Finding, ...]  # the result's findings


def select(candidates: Sequence[Candidate]) -> Selection:
    """Pick the result among `candidates` (non-empty; see the module docstring)."""
    if not candidates:
        raise ValueError("no candidate")
    complete = sorted((c for c in candidates if c.complete), key=_rank)
    if complete:
        return Selection(complete[0], tuple(complete), complete[0].findings)
    registered = [c for c in candidates if c.version is not None]
    if not registered:
        return Selection(candidates[0], (), candidates[0].findings)
    fewest = min(len(c.misses) for c in registered)
    closest = sorted((c for c in registered if len(c.misses) == fewest), key=_rank)[:MAX_CLOSEST]
    chosen = closest[0]
    findings = [_named(f, chosen) if f.code in MISS_CODES else f for f in chosen.findings]
    for other in closest[1:]:
        findings.extend(_named(f, other) for f in other.misses)
    findings.append(_not_matched(closest, len(registered)))
    return Selection(chosen, (), tuple(findings))


def _rank(candidate: Candidate) -> tuple[int, str, str]:
    version = candidate.version
    return (candidate.vector.status.rank, version.workload if version else "", version.version if version else "")


def _named(finding: Finding, candidate: Candidate) -> Finding:
    assert candidate.version is not None
    return replace(finding, message=f"{candidate.version.describe()}: {finding.message}")


def _not_matched(closest: Sequence[Candidate], count: int) -> Finding:
    parts = []
    for candidate in closest:
        version = candidate.version
        assert version is not None
        kinds_ok = {ref.kind for ref in candidate.matched}
        wanted = set(version.required) | set(version.members) | set(candidate.policy.required(version.tee))
        wanted |= {ref.kind for ref in version.gpus} | ({version.gpu_kind} if version.gpus_required else set())
        parts.append(
            f"{version.describe()} (matched: {', '.join(sorted(kinds_ok)) or 'none'}; "
            f"differs: {', '.join(sorted(wanted - kinds_ok)) or 'none'})"
        )
    return Finding(
        code="WORKLOAD_NOT_MATCHED",
        claim=Claim.EXECUTABLES,
        value=CONTRAINDICATED,
        message=f"the evidence matches none of the {count} approved workload versions of its TEE completely",
        expected="every value of one approved workload version",
        actual="closest: " + "; ".join(parts),
    )
