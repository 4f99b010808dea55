"""Steps 2-8's outcome for one request (`Evaluation`) and step 9 (`conclude`): its status is the worst tier of the
AR4SI trust vector (draft-ietf-rats-ar4si section 2.3), with the challenge's findings (step 7a) in place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .appraisal.model import Appraisal, Claim, Finding, combine
from .appraisal.policy import Policy
from .appraisal.scheme import Scheme, Verified
from .reference_values.model import ReferenceValue


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
