"""Appraisal of a verified Nitro attestation document against policy and reference values (steps 7-8), read typed:
the parsed document (`VerifiedEvidence.parsed`, tee/nitro/parse.py `NitroEvidence`), never the claim dict.

Debug mode: a debug-mode enclave reports PCR0, PCR1 and PCR2 as zeros (AWS Nitro Enclaves user guide,
"Where to get an enclave's measurements"); the default policy forbids it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from ..tee.nitro.claims import is_debug_mode
from ..tee.nitro.document import MAX_PCR_INDEX
from ..tee.nitro.parse import NitroEvidence
from .model import AFFIRMING, CONTRAINDICATED, Claim, Finding
from .policy import Policy
from .references import check_references

ZERO_PCR = "00" * 48
_KINDS = {str(index): f"nitro.pcr{index}" for index in range(MAX_PCR_INDEX + 1)}  # the kind of each PCR index


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """The scheme's appraiser (appraisal/registry.py): the baseline trust vector, the findings and the reference
    values that matched, for the verified document's PCRs (aws-nitro-enclaves-nsm-api attestation_process.md
    section 3.1) and debug mode. Evidence that failed verification or lacks its parsed document is never affirmed:
    an empty baseline and NITRO_NOT_APPRAISABLE. Never raises for a document `parse` returned."""
    parsed = verified.parsed
    if verified.failure is not None or not isinstance(parsed, NitroEvidence):
        return {}, [_not_appraisable(verified)], []
    doc = parsed.document
    pcrs = doc.pcr_hex
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.HARDWARE: AFFIRMING, Claim.CONFIGURATION: AFFIRMING}
    findings: list[Finding] = []
    if is_debug_mode(doc) and not policy.allow_debug:
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
    actual = {_KINDS.get(index) or f"nitro.pcr{index}": value for index, value in pcrs.items()}
    ref_findings, matched = check_references("nitro", actual, policy.required("nitro"), references)
    findings.extend(ref_findings)
    if matched and not ref_findings:
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _not_appraisable(verified: VerifiedEvidence) -> Finding:
    """The fail-closed finding for evidence the appraiser cannot read (a wiring error: the service appraises only
    verified evidence, whose `parsed` is the NitroEvidence)."""
    failure = verified.failure.code if verified.failure is not None else None
    return Finding(
        code="NITRO_NOT_APPRAISABLE",
        claim=Claim.HARDWARE,
        value=CONTRAINDICATED,
        message="the Nitro appraiser was not given a verified, parsed attestation document: nothing is affirmed",
        expected="verified evidence with a parsed attestation document",
        actual=failure or f"parsed {type(verified.parsed).__name__}",
    )
