"""Steps 2-8's outcome for one request (`Evaluation`) and step 9 (`conclude`): its status is the worst tier of the
AR4SI trust vector (draft-ietf-rats-ar4si section 2.3), with the challenge's findings (step 7a) in place.

A composite request (verifier.composite) also has the appraisals of its GPUs (`Component`, one per GPU report,
`gpu0`..): the result's status is then the worst of the CPU TEE's and every component's (`overall`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .appraisal.model import Appraisal, Claim, Finding, Tier, combine
from .appraisal.policy import Policy
from .appraisal.scheme import Scheme, Verified
from .reference_values.model import ReferenceValue


@dataclass(frozen=True)
class Component:
    """The appraisal of one GPU of a composite request: its submodule name (`gpu<i>`, i its index in the request),
    its own appraisal (tee "gpu", status, trust vector, claims, findings), the SHA-384 of its report (what REPORT_DATA
    commits to) and, when its collateral was unavailable, the error code (the component is then never affirming)."""

    name: str
    appraisal: Appraisal
    evidence_sha384: str
    incomplete: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """Steps 2-8 of one request: everything but its challenge (step 7a) and its status (step 9). The findings are
    `leading`, then the challenge's, then `trailing`; `complete` describes every workload version matched completely
    (the first is the result's workload)."""

    scheme: Scheme
    verified: Verified
    policy: Policy  # the policy the result is appraised under
    baseline: Mapping[Claim, int]
    matched: tuple[ReferenceValue, ...]
    leading: tuple[Finding, ...]
    trailing: tuple[Finding, ...] = ()
    complete: tuple[dict[str, Any], ...] = ()
    components: tuple[Component, ...] = ()  # the GPUs of a composite request, appraised under `policy`

    @property
    def workload(self) -> dict[str, Any] | None:
        return self.complete[0] if self.complete else None


def conclude(evaluation: Evaluation, challenge: Sequence[Finding]) -> tuple[Appraisal, list[Finding]]:
    """Step 9: the appraisal of `evaluation` with the findings of its challenge (step 7a); its status is the
    worst tier of the AR4SI trust vector (`combine`). Returns it with its findings in order."""
    findings = [*evaluation.leading, *challenge, *evaluation.trailing]
    vector = combine(dict(evaluation.baseline), findings)
    verified, workload, complete = evaluation.verified, evaluation.workload, evaluation.complete
    appraisal = Appraisal(
        tee=verified.tee,
        status=vector.status,
        trust_vector=vector,
        claims=verified.claims,
        findings=tuple(findings),
        policy_id=evaluation.policy.policy_id,
        matched_reference_values=tuple(f"{r.kind}:{r.label}:{r.id}" for r in evaluation.matched),
        matched_labels=(workload["name"],) if workload is not None else (),
        collateral=tuple(item.to_json() for item in verified.collateral),
        revocation=verified.revocation,
        workload=workload,
        workloads=complete,
    )
    return appraisal, findings


# Composite status: a component that affirms nothing (none) is no better than one that warns, so the whole is never
# better than its least trusted part (a relying party reads none as not trustworthy, verifier.client STATUS_RANK).
_OVERALL_RANK = {Tier.AFFIRMING: 0, Tier.WARNING: 1, Tier.NONE: 2, Tier.CONTRAINDICATED: 3}


def overall(appraisal: Appraisal, components: Sequence[Component]) -> Appraisal:
    """`appraisal` (the CPU TEE's) with the status of the whole composite: the worst of its own and every component's
    (draft-ietf-rats-ear-04 s3: the top-level status is no better than the worst submodule; none counts as worse than
    warning). Its trust vector and findings stay its own. Never raises."""
    worst = overall_status([appraisal.status, *(c.appraisal.status for c in components)])
    return appraisal if worst is appraisal.status else replace(appraisal, status=worst)


def overall_status(statuses: Sequence[Tier]) -> Tier:
    """The worst of `statuses` in the composite order (`overall`); NONE for none. Never raises."""
    return max(statuses, key=_OVERALL_RANK.__getitem__, default=Tier.NONE)
