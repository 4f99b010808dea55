"""Appraisal of verified TDX claims (steps 7-8): Intel TCB status against the policy's accepted statuses,
advisories, grace period, the collateral that decided (superseded request items, minimum tcbEvaluationDataNumber,
maximum age), TD_ATTRIBUTES (DEBUG, SEPT_VE_DISABLE), MRSEAM, and reference values of kinds tdx.mr_td (required by
default), tdx.mr_config_id, tdx.mr_owner, tdx.mr_owner_config, tdx.rtmr0..3, tdx.mr_seam and tdx.mr_servicetd.

MRSERVICETD (TD report 1.5, v5 quote body type 3; Intel TDX Module 1.5 ABI, TDREPORT_STRUCT / TDINFO_STRUCT) is the
SHA-384 measurement of the service TDs bound to the TD (a vTPM TD, a migration TD, ...), zero when none is bound. A
bound service TD can read or change the TD's state (a migration TD exports it), so a non-zero MRSERVICETD must be
approved: the reference values appraised must include a tdx.mr_servicetd value (which must then equal it), else
TDX_SERVICE_TD_NOT_APPROVED. A zero or absent (TD 1.0) MRSERVICETD needs no value; a pinned value must match, and a
TD 1.0 report cannot match a workload that pins one (CLAIM_MISSING)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ..clock import parse_rfc3339, to_rfc3339
from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from .model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Claim, Finding
from .policy import Policy
from .references import check_references

REFERENCE_CLAIMS: dict[str, Claim] = {
    **{f"tdx.{n}": Claim.EXECUTABLES for n in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_seam", "mr_servicetd")},
    **{f"tdx.{n}": Claim.CONFIGURATION for n in ("mr_config_id", "mr_owner", "mr_owner_config")},
}


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """The scheme's appraiser (verifier/tee/registry.py): `appraise_tdx` of the verified claims and details at `at`."""
    return appraise_tdx(verified.claims, verified.details, policy, references, at)


def appraise_tdx(
    claims: Mapping[str, Any],
    details: Mapping[str, Any],
    policy: Policy,
    references: Sequence[ReferenceValue],
    at: dt.datetime,
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """(baseline, findings, matched reference values) for verified TDX claims and `details` (tee/tdx/evidence.py)
    under `policy` at `at`: TCB status and collateral (Intel PCS v4 "TDX TCB Info"), TD_ATTRIBUTES, MRSEAM and
    reference values. Evidence problems are Findings (TDX_* codes), not exceptions."""
    rules = policy.tdx
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.CONFIGURATION: AFFIRMING, Claim.RUNTIME_OPAQUE: AFFIRMING}
    findings: list[Finding] = []
    findings.extend(_tcb_findings(details, policy, at))
    findings.extend(_collateral_findings(details, policy, at))
    if not any(f.claim is Claim.HARDWARE and f.value >= WARNING_UNSAFE for f in findings) and details.get("tcb"):
        baseline[Claim.HARDWARE] = AFFIRMING
    # TD_ATTRIBUTES bits 7:0 are the "TD under debug" group (TUD): DEBUG is bit 0 and the others are reserved for
    # debug features, so any of them set makes the TD untrusted (as dcap-qvl does).
    tud = (claims.get("td_attributes_decoded") or {}).get("tud") or 0
    if (claims.get("debug") or tud) and not policy.allow_debug:
        findings.append(
            _f(
                "TDX_DEBUG_TD",
                Claim.CONFIGURATION,
                "TD_ATTRIBUTES.TUD (bits 7:0, DEBUG is bit 0) is set: the host VMM can read and write TD memory",
                "TUD 0",
                f"td_attributes {claims.get('td_attributes')}",
            )
        )
    if rules.require_sept_ve_disable and not claims.get("sept_ve_disable"):
        findings.append(
            _f(
                "TDX_SEPT_VE_NOT_DISABLED",
                Claim.CONFIGURATION,
                "TD_ATTRIBUTES.SEPT_VE_DISABLE (bit 28) is clear: the host can inject EPT-violation #VE into the TD",
                "SEPT_VE_DISABLE 1",
                f"td_attributes {claims.get('td_attributes')}",
            )
        )
    seam = str(claims.get("mr_seam") or "")
    if rules.allowed_mr_seams is not None and seam not in {m.hex() for m in rules.allowed_mr_seams}:
        findings.append(
            _f(
                "TDX_MR_SEAM_NOT_ALLOWED",
                Claim.HARDWARE,
                "the TDX module (MRSEAM) is not allowed",
                " | ".join(m.hex() for m in rules.allowed_mr_seams),
                seam,
            )
        )
    if claims.get("trailing_nonzero"):
        findings.append(
            Finding(
                code="TDX_TRAILING_DATA",
                claim=Claim.CONFIGURATION,
                value=WARNING_UNSAFE,
                message="non-zero, unsigned bytes follow the quote's signature data (ignored)",
                expected="zero padding",
                actual=f"{claims.get('trailing_bytes')} bytes",
            )
        )
    actual = {kind: str(claims[kind[4:]]) for kind in REFERENCE_CLAIMS if claims.get(kind[4:]) is not None}
    ref_findings, matched = check_references("tdx", actual, policy.required("tdx"), references, REFERENCE_CLAIMS)
    ref_findings.extend(_service_td_findings(claims, references))
    findings.extend(ref_findings)
    if matched and not any(f.claim is Claim.EXECUTABLES for f in ref_findings):
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _service_td_findings(claims: Mapping[str, Any], references: Sequence[ReferenceValue]) -> list[Finding]:
    """TDX_SERVICE_TD_NOT_APPROVED when MRSERVICETD is non-zero and no tdx.mr_servicetd value is given (a given
    value is compared by check_references). Anything but zero hex counts as non-zero (fails closed)."""
    servicetd = claims.get("mr_servicetd")
    if servicetd is None or not (set(str(servicetd).lower()) - {"0"}):
        return []
    if any(ref.kind == "tdx.mr_servicetd" for ref in references):
        return []
    return [
        _f(
            "TDX_SERVICE_TD_NOT_APPROVED",
            Claim.EXECUTABLES,
            "MRSERVICETD is non-zero: a service TD (e.g. a "
            "vTPM or migration TD) is bound to this TD, and no tdx.mr_servicetd value approves it",
            "MRSERVICETD zero, or an approved tdx.mr_servicetd value",
            str(servicetd),
        )
    ]


def _tcb_findings(details: Mapping[str, Any], policy: Policy, at: dt.datetime) -> list[Finding]:
    rules = policy.tdx
    tcb = details.get("tcb")
    if not tcb:
        reason = details.get("collateral_error", "no collateral")
        return [
            _f(
                "TDX_TCB_UNKNOWN",
                Claim.HARDWARE,
                f"the TCB status could not be computed ({reason}): the quote "
                "is authentic but its platform is not appraised",
                "Intel collateral",
                "unavailable",
            )
        ]
    status = str(tcb["status"])
    advisories = tuple(tcb.get("advisory_ids") or ())
    findings = []
    tier = rules.accepted_statuses.get(status) if status != "Revoked" else None
    if tier is None:
        value = CONTRAINDICATED
        tcb_date = tcb.get("tcb_date")
        if (
            rules.grace_days is not None
            and status != "Revoked"
            and tcb_date
            and parse_rfc3339(tcb_date) > at - dt.timedelta(days=rules.grace_days)
        ):
            value = WARNING_UNSAFE
        findings.append(
            Finding(
                code="TDX_TCB_STATUS_NOT_ACCEPTED",
                claim=Claim.HARDWARE,
                value=value,
                message=f"Intel TCB status {status} is not accepted by the policy"
                + (" (within the grace period)" if value == WARNING_UNSAFE else ""),
                expected=" | ".join(rules.accepted_statuses),
                actual=status,
            )
        )
    elif tier == "warning":
        findings.append(
            Finding(
                code="TDX_TCB_STATUS_WARNING",
                claim=Claim.HARDWARE,
                value=WARNING_UNSAFE,
                message=f"Intel TCB status {status}: genuine, with known issues "
                f"({', '.join(advisories) or 'no advisory IDs'})",
                expected="UpToDate",
                actual=status,
            )
        )
    denied = sorted(set(advisories) & set(rules.advisory_deny))
    if denied:
        findings.append(
            _f(
                "TDX_ADVISORY_DENIED",
                Claim.HARDWARE,
                "the platform is affected by a denied advisory",
                "none of " + ", ".join(rules.advisory_deny),
                ", ".join(denied),
            )
        )
    if rules.advisory_allow is not None:
        unlisted = sorted(set(advisories) - set(rules.advisory_allow))
        if unlisted:
            findings.append(
                _f(
                    "TDX_ADVISORY_NOT_ALLOWED",
                    Claim.HARDWARE,
                    "the platform is affected by advisories the policy does not allow",
                    ", ".join(rules.advisory_allow) or "none",
                    ", ".join(unlisted),
                )
            )
    return findings


NO_CLAIM = 0  # AR4SI: the finding informs and changes no trustworthiness claim


def _item_version(entry: Mapping[str, Any]) -> str:
    return f"number {entry.get('number')}, issued {entry.get('issued')}"


def _collateral_findings(details: Mapping[str, Any], policy: Policy, at: dt.datetime) -> list[Finding]:
    """The collateral used (tee/tdx/evidence.py details "collateral" and "collateral_superseded"): superseded
    request items (informational), the policy's minimum TCB evaluation data number and maximum collateral age."""
    rules = policy.tdx
    findings = [
        Finding(
            code="COLLATERAL_SUPERSEDED",
            claim=Claim.HARDWARE,
            value=NO_CLAIM,
            message=f"the request's {old.get('item')} is older than the verifier's copy, which decided",
            expected=_item_version(old.get("used") or {}),
            actual=_item_version(old.get("request") or {}),
        )
        for old in details.get("collateral_superseded") or ()
    ]
    used: list[Mapping[str, Any]] = list(details.get("collateral") or ())
    minimum = rules.minimum_tcb_evaluation_data_number
    tcb_info = next((entry for entry in used if entry.get("item") == "tdx.tcb_info"), None)
    if minimum is not None and tcb_info is not None:
        number = tcb_info.get("number")
        if not isinstance(number, int) or number < minimum:
            findings.append(
                _f(
                    "TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM",
                    Claim.HARDWARE,
                    f"the TCB info used has tcbEvaluationDataNumber {number}, below the policy's minimum "
                    "(it predates a TCB recovery the policy requires)",
                    f">= {minimum}",
                    str(number),
                )
            )
    if rules.max_collateral_age_hours is not None:
        oldest = at - dt.timedelta(hours=rules.max_collateral_age_hours)
        for entry in used:
            issued = parse_rfc3339(str(entry.get("issued")))
            if issued < oldest:
                findings.append(
                    _f(
                        "COLLATERAL_TOO_OLD",
                        Claim.HARDWARE,
                        f"{entry.get('item')} was issued more than {rules.max_collateral_age_hours} hours "
                        "before the appraisal",
                        f"issued at or after {to_rfc3339(oldest)}",
                        to_rfc3339(issued),
                    )
                )
    return findings


def _f(code: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(code=code, claim=claim, value=CONTRAINDICATED, message=message, expected=expected, actual=actual)
