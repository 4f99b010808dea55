"""The findings the service adds beside the per-TEE appraisers' (steps 6 and 7 of the pipeline,
../shared/ARCHITECTURE.md): the finding of evidence that failed verification, the freshness findings (challenge,
nonce, REPORT_DATA binding, and for composite evidence the binding of the GPU reports: COMPOSITE_BINDING_MISMATCH,
verifier.appraisal.binding) and the RFC 7800 `cnf` key, issued only when the evidence binds it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .appraisal.binding import check_binding, composite_report_data, identity_finding, key_is_bound
from .appraisal.model import CONTRAINDICATED, CRYPTO_FAILED, Appraisal, Claim, Finding
from .appraisal.policy import Policy
from .appraisal.scheme import Scheme, Verified
from .challenges import OUTCOME_NAMES, ConsumeOutcome
from .error_catalog import code_info
from .errors import EvidenceError, RequestError
from .recording import RecordingUnit
from .requests import AppraisalRequest
from .results.cnf import runtime_key_jwk

BINDING_CODES = frozenset(
    {
        "NONCE_MISMATCH",
        "RUNTIME_DATA_MISMATCH",
        "REPORT_DATA_MISMATCH",
        "RUNTIME_DATA_NOT_BOUND",
        "COMPOSITE_BINDING_MISMATCH",
        "GPU_NONCE_MISMATCH",
    }
)
CHALLENGE_CODES = {
    ConsumeOutcome.UNKNOWN: "CHALLENGE_UNKNOWN",
    ConsumeOutcome.EXPIRED: "CHALLENGE_EXPIRED",
    ConsumeOutcome.ALREADY_USED: "CHALLENGE_REPLAYED",
}
_OUTCOME_OF_FINDING = {code: OUTCOME_NAMES[outcome] for outcome, code in CHALLENGE_CODES.items()}


def evidence_finding(scheme: Scheme, error: EvidenceError) -> Finding:
    """The finding for evidence that failed parsing or verification: the claim and value `verifier.error_catalog`
    gives its code (AR4SI 99 = cryptographic validation failed; 97 = not recognized; 96 = recognized but
    contraindicated, e.g. revoked or an unsupported TCB). A code the catalog does not know is hardware 96 when the
    scheme lists it in `contraindicated_codes` (a scheme from outside verifier/), else instance-identity 99. Never
    raises."""
    info = code_info(error.code)
    if info is not None and info.claim is not None and info.value is not None:
        claim, value = Claim(info.claim), info.value
    elif error.code in scheme.contraindicated_codes:
        claim, value = Claim.HARDWARE, CONTRAINDICATED
    else:
        claim, value = Claim.INSTANCE_IDENTITY, CRYPTO_FAILED
    return Finding(
        code=error.code, claim=claim, value=value, message=error.message, expected=error.expected, actual=error.actual
    )


def challenge_findings(outcome: ConsumeOutcome, nonce: bytes) -> list[Finding]:
    """Step 7a's finding: none when the nonce was a live challenge consumed now, else CHALLENGE_UNKNOWN,
    CHALLENGE_EXPIRED or CHALLENGE_REPLAYED (instance identity, contraindicated). Never raises."""
    if outcome is ConsumeOutcome.OK:
        return []
    return [
        identity_finding(
            CHALLENGE_CODES[outcome],
            f"the nonce is not a live challenge of this verifier ({outcome.name})",
            "an unused, unexpired challenge",
            nonce.hex(),
        )
    ]


def policy_freshness(request: AppraisalRequest, scheme: Scheme, verified: Verified, policy: Policy) -> list[Finding]:
    """Step 7c, per policy: a nonce when the policy requires one, and its binding (and the runtime data's) in the
    evidence as the policy's REPORT_DATA binding says (`check_binding` with the scheme's rule; for a composite request
    `composite_binding`). Never raises."""
    findings: list[Finding] = []
    if request.nonce is None and policy.require_nonce:
        findings.append(
            identity_finding("NONCE_MISSING", "the policy requires a nonce and the request has none", "a nonce", "none")
        )
    if verified.parsed is not None and request.gpus:
        findings.extend(composite_binding(request, verified.claims, policy.report_data_binding))
    elif verified.parsed is not None:
        findings.extend(
            check_binding(
                scheme.binding, verified.claims, request.nonce, request.runtime_data, policy.report_data_binding
            )
        )
    return findings


def composite_binding(request: AppraisalRequest, claims: dict[str, Any], mode: str) -> list[Finding]:
    """COMPOSITE_BINDING_MISMATCH (instance identity, contraindicated) unless the CPU report's REPORT_DATA is
    `composite_report_data` of the request (its nonce, runtime data and GPU reports); "raw" binding cannot commit
    the GPU reports and always is one. Never raises."""
    if mode == "raw":
        return [
            identity_finding(
                "COMPOSITE_BINDING_MISMATCH",
                "raw REPORT_DATA binding carries only the nonce: it cannot bind GPU reports to this TEE",
                "report_data_binding sha512",
                "raw",
            )
        ]
    reports = [gpu.evidence for gpu in request.gpus]
    want = composite_report_data(request.nonce, request.runtime_data, reports).hex()
    actual = str(claims.get("report_data") or "")
    if actual == want:
        return []
    return [
        identity_finding(
            "COMPOSITE_BINDING_MISMATCH",
            f"REPORT_DATA is not SHA-512(nonce || runtime_data || SHA-384 of each of the {len(reports)} GPU reports): "
            "the GPU reports are not bound to this TEE",
            want,
            actual or "absent",
        )
    ]


def bound_key(
    request: AppraisalRequest, scheme: Scheme, verified: Verified, findings: list[Finding], policy: Policy
) -> Any:
    """RFC 7800 `cnf` key: issued only when the signed evidence covers the key (the scheme's binding rule,
    `key_is_bound`): the request's runtime data under SHA-512 REPORT_DATA binding (composite: `composite_report_data`)
    or equal to the Nitro document's `public_key`; without runtime data, the key the evidence itself carries (Nitro:
    the NSM-signed `public_key`). Never after a failed verification or any binding finding (`findings`: the CPU
    TEE's and every GPU's). Returns the JWK or None; never raises."""
    if verified.failure is not None or any(f.code in BINDING_CODES for f in findings):
        return None
    if request.runtime_data is not None:
        if request.gpus:
            gpus = [gpu.evidence for gpu in request.gpus]
            want = composite_report_data(request.nonce, request.runtime_data, gpus).hex()
            bound = policy.report_data_binding == "sha512" and verified.claims.get("report_data") == want
        else:
            bound = key_is_bound(
                scheme.binding, verified.claims, request.nonce, request.runtime_data, policy.report_data_binding
            )
        return runtime_key_jwk(request.runtime_data) if bound and request.runtime_data else None
    doc_key = scheme.binding.evidence_key(verified.claims)
    return runtime_key_jwk(doc_key) if doc_key else None


def consume_challenge(unit: RecordingUnit, request: AppraisalRequest, at: dt.datetime, *, store: bool) -> list[Finding]:
    """Step 7a: consume the request's nonce as a live challenge of this verifier (once, atomically) in `unit`, which
    commits it with the recorded appraisal; its findings (none when it was live). `store`: whether the verifier has
    a challenge store. Raises RequestError CHALLENGES_DISABLED without one, UnavailableError (DATABASE_*)."""
    if request.nonce is None:
        return []
    if not store:
        raise RequestError("CHALLENGES_DISABLED", "this verifier has no challenge store")
    return challenge_findings(unit.consume(request.nonce, at=at), request.nonce)


def challenge_outcome(appraisal: Appraisal) -> str:
    """The outcome of the nonce an appraisal consumed, as the challenge metric names it ("consumed" when live)."""
    outcomes = (_OUTCOME_OF_FINDING[f.code] for f in appraisal.findings if f.code in _OUTCOME_OF_FINDING)
    return next(outcomes, "consumed")
