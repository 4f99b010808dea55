"""Appraisal of verified Nitro claims against policy and reference values (steps 7-8).

Debug mode: a debug-mode enclave reports PCR0, PCR1 and PCR2 as zeros (AWS Nitro Enclaves user guide,
"Where to get an enclave's measurements"); the default policy forbids it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from .model import AFFIRMING, CONTRAINDICATED, Claim, Finding
from .policy import Policy
from .references import check_references

ZERO_PCR = "00" * 48


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """The scheme's appraiser (verifier/tee/registry.py): `appraise_nitro` of the verified claims."""
    return appraise_nitro(verified.claims, policy, references)


def appraise_nitro(
    claims: dict[str, object], policy: Policy, references: Sequence[ReferenceValue]
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """Return the baseline trust vector, the findings and the reference values that matched."""
    pcrs = claims.get("pcrs")
    assert isinstance(pcrs, dict)
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.HARDWARE: AFFIRMING, Claim.CONFIGURATION: AFFIRMING}
    findings: list[Finding] = []
    if claims.get("debug_mode") and not policy.allow_debug:
        findings.append(
            Finding(
                code="NITRO_DEBUG_MODE",
                claim=Claim.CONFIGURATION,
                value=CONTRAINDICATED,
                message="the enclave runs in debug mode (PCR0, PCR1 and PCR2 are all zero); the policy forbids it",
                expected="pcr0..2 not all zero",
                actual=f"pcr0={pcrs.get('0')} pcr1={pcrs.get('1')} pcr2={pcrs.get('2')}",
            )
        )
    actual = {f"nitro.pcr{index}": str(value) for index, value in pcrs.items()}
    ref_findings, matched = check_references("nitro", actual, policy.required("nitro"), references)
    findings.extend(ref_findings)
    if matched and not ref_findings:
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched
