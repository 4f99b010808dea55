"""Appraisal of a verified NVIDIA GPU report against its RIMs, policy and reference values (steps 7-8), read typed:
the parsed report (`VerifiedEvidence.parsed`, tee/gpu/spdm.py `SpdmReport`) and the verification facts
(`VerifiedEvidence.facts`, tee/gpu/facts.py `GpuFacts`: the verified chain, the RIMs and why one is missing or bad,
revocation). Anything else (a failed verification, no report or facts) is never affirmed: one contraindicated
GPU_EVIDENCE_UNVERIFIED finding.

Findings (claim executables unless said; contraindicated unless said):
- GPU_RIM_MISSING: no driver or VBIOS RIM could be had (nothing recognizes the firmware: never affirming);
- the RIM's own code when a RIM did not verify (GPU_RIM_SIGNATURE_INVALID, GPU_RIM_CHAIN_INVALID,
  GPU_RIM_MALFORMED, GPU_RIM_TOO_LARGE) or a certificate of its signing chain is revoked (GPU_CERT_REVOKED);
- GPU_RIM_VERSION_MISMATCH: a RIM for another driver or VBIOS version (its measurements are then not compared);
- GPU_RIM_INDEX_CONFLICT: an index active in both RIMs; GPU_RIM_TOO_MANY_MEASUREMENTS: more active golden entries
  than blocks in the report (NVIDIA fails the comparison for either);
- GPU_MEASUREMENT_MISMATCH, one per SPDM block whose value is none of the RIM's alternatives (or is absent, or of
  another size), naming the block and the RIM index (`verifier.appraisal.gpu_rim.compare_rims`, NVIDIA's rules);
- revocation (hardware): an OCSP status that could not be had is GPU_OCSP_UNAVAILABLE under the policy's
  `gpu.ocsp` "require" (the default), and GPU_REVOCATION_UNCHECKED (no claim: no status change; the token also
  says `revocation: unavailable`) under "best-effort". A revoked device certificate never gets here: it is the
  verification failure GPU_CERT_REVOKED.
Executables are affirmed only when both RIMs verified, are for the reported versions and every active entry
matched. Reference values of kinds gpu.* are compared as for the other TEEs (`check_references`).

The nonce binding (`SpdmNonceBinding`): the report's request nonce (bytes 4..35, signed) must equal the request's
nonce; the report carries no other data, so runtime data can never be bound (RUNTIME_DATA_NOT_BOUND) and no `cnf`
is ever issued for a GPU report alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from ..tee.gpu.facts import GpuFacts, RimOutcome
from ..tee.gpu.spdm import NONCE_LENGTH, SpdmReport
from .binding import identity_finding
from .gpu_rim import IndexResult, ReportValues, RimComparison, compare_rims
from .model import AFFIRMING, CONTRAINDICATED, Claim, Finding
from .policy import Policy
from .references import check_references

NO_CLAIM = 0  # AR4SI "no claim": an informational finding that changes no status
Appraised = tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> Appraised:
    """The scheme's appraiser (appraisal/registry.py): (baseline, findings, matched reference values) for the
    verified report and its `GpuFacts` under `policy` (module docstring). Never raises for evidence values; a result
    without an SpdmReport and GpuFacts, or with a failure, is one contraindicated GPU_EVIDENCE_UNVERIFIED finding."""
    report, facts = verified.parsed, verified.facts
    if verified.failure is not None or not isinstance(report, SpdmReport) or not isinstance(facts, GpuFacts):
        return {}, [_unverified(verified)], []
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.HARDWARE: AFFIRMING}
    opaque = report.response.opaque
    values = ReportValues(report.measurements, opaque.driver_version, opaque.vbios_version)
    comparison = compare_rims(facts.driver.rim, facts.vbios.rim, values)
    rim_findings = [*_rim_findings(facts.driver), *_rim_findings(facts.vbios), *_comparison_findings(comparison)]
    findings = [*_revocation_findings(facts, policy), *_pin_findings(verified.claims, policy), *rim_findings]
    actual = {"gpu.fwid": opaque.fwid.hex()} if opaque.fwid is not None else {}
    ref_findings, matched = check_references("gpu", actual, policy.required("gpu"), references)
    findings.extend(ref_findings)
    if comparison.ok and not rim_findings and not ref_findings:
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _pin_findings(claims: Mapping[str, object], policy: Policy) -> list[Finding]:
    """The policy's GPU pins (`gpu.allowed_driver_versions`, `allowed_vbios_versions` ignoring case,
    `allowed_architectures`): GPU_DRIVER_VERSION_NOT_ALLOWED, GPU_VBIOS_VERSION_NOT_ALLOWED (executables) and
    GPU_ARCHITECTURE_NOT_ALLOWED (hardware), each contraindicated. Never raises."""
    rules, out = policy.gpu, []
    for code, claim_name, allowed, fold, claim in (
        ("GPU_DRIVER_VERSION_NOT_ALLOWED", "driver_version", rules.allowed_driver_versions, False, Claim.EXECUTABLES),
        ("GPU_VBIOS_VERSION_NOT_ALLOWED", "vbios_version", rules.allowed_vbios_versions, True, Claim.EXECUTABLES),
        ("GPU_ARCHITECTURE_NOT_ALLOWED", "architecture", rules.allowed_architectures, True, Claim.HARDWARE),
    ):
        if allowed is None:
            continue
        actual = str(claims.get(claim_name) or "")
        accepted = {a.lower() for a in allowed} if fold else set(allowed)
        if (actual.lower() if fold else actual) not in accepted:
            message = f"the policy does not allow this GPU's {claim_name.replace('_', ' ')}"
            out.append(_f(code, message, " | ".join(sorted(allowed)), actual or "absent", claim))
    return out


def _f(code: str, message: str, expected: str, actual: str, claim: Claim = Claim.EXECUTABLES) -> Finding:
    return Finding(code=code, claim=claim, value=CONTRAINDICATED, message=message, expected=expected, actual=actual)


def _unverified(verified: VerifiedEvidence) -> Finding:
    why = verified.failure.code if verified.failure is not None else "no report and facts"
    return _f(
        "GPU_EVIDENCE_UNVERIFIED",
        "the GPU appraiser was given no verified report: nothing can be affirmed",
        "a verified SpdmReport with GpuFacts (tee/gpu/verify.py)",
        f"{type(verified.parsed).__name__} with {type(verified.facts).__name__} ({why})",
        Claim.INSTANCE_IDENTITY,
    )


def _rim_findings(outcome: RimOutcome) -> list[Finding]:
    """A RIM that is missing or did not verify (module docstring)."""
    if outcome.rim is not None:
        return []
    if outcome.error is not None:
        error = outcome.error
        return [_f(error.code, f"the {outcome.kind} RIM cannot be used: {error.message}", error.expected, error.actual)]
    return [
        _f(
            "GPU_RIM_MISSING",
            f"no {outcome.kind} RIM: the GPU's {outcome.kind} measurements cannot be recognized",
            outcome.rim_id or f"a {outcome.kind} RIM (the report does not name one)",
            outcome.unavailable or "absent",
        )
    ]


def _comparison_findings(comparison: RimComparison) -> list[Finding]:
    """Version checks, conflicts, the count rule and each block that did not match (module docstring)."""
    findings = [
        _f(
            "GPU_RIM_VERSION_MISMATCH",
            f"the {check.kind} RIM is for another version; its measurements are not compared",
            check.rim_version,
            check.report_version or "absent",
        )
        for check in comparison.versions
        if not check.ok
    ]
    if comparison.conflicts:
        findings.append(
            _f(
                "GPU_RIM_INDEX_CONFLICT",
                "the driver and VBIOS RIMs both have active entries for the same indices",
                "disjoint active indices",
                ", ".join(map(str, comparison.conflicts)),
            )
        )
    if comparison.too_many_golden:
        findings.append(
            _f(
                "GPU_RIM_TOO_MANY_MEASUREMENTS",
                "the RIMs have more active entries than the report has measurement blocks",
                f"<= {comparison.report_count}",
                str(comparison.golden_count),
            )
        )
    wrong_version = {check.kind for check in comparison.versions if not check.ok}
    findings.extend(_mismatch(result) for result in comparison.failed if result.source not in wrong_version)
    return findings


def _mismatch(result: IndexResult) -> Finding:
    shown = "absent" if result.actual is None else result.actual.hex()
    why = {"missing": "is absent", "size": f"is not {result.size} bytes"}.get(result.outcome, "matches no alternative")
    return _f(
        "GPU_MEASUREMENT_MISMATCH",
        f"measurement block {result.spdm_index} (RIM index {result.rim_index}, {result.source} RIM) {why}",
        " | ".join(value.hex() for value in result.expected),
        shown,
    )


def _revocation_findings(facts: GpuFacts, policy: Policy) -> list[Finding]:
    """OCSP that could not be checked: contraindicated under `gpu.ocsp` "require", a no-claim note otherwise."""
    if facts.revocation == "checked":
        return []
    detail = facts.revocation_detail or "no OCSP response"
    if policy.gpu.ocsp == "require":
        return [
            _f(
                "GPU_OCSP_UNAVAILABLE",
                f"the OCSP status of the GPU's certificates could not be had ({detail}); the policy requires it",
                "a good OCSP status for every certificate",
                facts.revocation,
                Claim.HARDWARE,
            )
        ]
    return [
        Finding(
            code="GPU_REVOCATION_UNCHECKED",
            claim=Claim.HARDWARE,
            value=NO_CLAIM,
            message=f"revocation went unchecked ({detail}); the policy's gpu.ocsp is best-effort",
            expected="a good OCSP status for every certificate",
            actual=facts.revocation,
        )
    ]


class SpdmNonceBinding:
    """The GPU report's binding rule (module docstring); `mode` (the REPORT_DATA binding) does not apply."""

    def check(
        self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes | None, mode: str
    ) -> list[Finding]:
        """NONCE_MISMATCH when the report's request nonce is not the request's nonce (a nonce of other than 32
        bytes never is), RUNTIME_DATA_NOT_BOUND when runtime data is given. Never raises."""
        findings: list[Finding] = []
        carried = claims.get("nonce")
        if nonce is not None and (len(nonce) != NONCE_LENGTH or carried != nonce.hex()):
            findings.append(
                identity_finding(
                    "NONCE_MISMATCH",
                    "the GPU report's request nonce is not the request's nonce",
                    nonce.hex() if len(nonce) == NONCE_LENGTH else f"a {NONCE_LENGTH}-byte nonce",
                    str(carried or "absent"),
                )
            )
        if runtime_data is not None:
            findings.append(
                identity_finding(
                    "RUNTIME_DATA_NOT_BOUND",
                    "a GPU report carries only the nonce; the runtime data cannot be bound",
                    "no runtime data",
                    runtime_data.hex(),
                )
            )
        return findings

    def covers_key(self, claims: Mapping[str, object], nonce: bytes | None, runtime_data: bytes, mode: str) -> bool:
        """Always False: the report covers no key. Never raises."""
        return False

    def evidence_key(self, claims: Mapping[str, object]) -> bytes | None:
        """Always None: the report carries no key of its own. Never raises."""
        return None
