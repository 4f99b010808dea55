"""Appraisal of a verified TDX quote (steps 7-8), read typed: the quote (`VerifiedEvidence.parsed`, tee/tdx/quote.py)
and its `TdxFacts` (`VerifiedEvidence.facts`, tee/tdx/facts.py), never the claim dict. Intel TCB status against the
policy's accepted statuses, advisories, grace period, the collateral that decided (superseded request items,
minimum tcbEvaluationDataNumber, maximum age), TD_ATTRIBUTES (TUD incl. DEBUG, SEPT_VE_DISABLE), MRSEAM, non-zero
trailing data, and reference values of kinds tdx.mr_td (required by default), tdx.mr_config_id, tdx.mr_owner,
tdx.mr_owner_config, tdx.rtmr0..3, tdx.mr_seam and tdx.mr_servicetd (matched by kind, from the TD report's fields).

MRSERVICETD (TD report 1.5, v5 quote body type 3; Intel TDX Module 1.5 ABI, TDREPORT_STRUCT / TDINFO_STRUCT) is the
SHA-384 measurement of the service TDs bound to the TD (a vTPM TD, a migration TD, ...), zero when none is bound. A
bound service TD can read or change the TD's state (a migration TD exports it), so a non-zero MRSERVICETD must be
approved: the reference values appraised must include a tdx.mr_servicetd value (which must then equal it), else
TDX_SERVICE_TD_NOT_APPROVED. A zero or absent (TD 1.0) MRSERVICETD needs no value; a pinned value must match, and a
TD 1.0 report cannot match a workload that pins one (CLAIM_MISSING)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..clock import to_rfc3339
from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from ..tee.tdx.attributes import sept_ve_disable, td_under_debug
from ..tee.tdx.facts import TdxFacts
from ..tee.tdx.freshness import TCB_INFO, ItemFacts
from ..tee.tdx.quote import Quote, TdReport
from .model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Claim, Finding
from .policy import Policy, TdxRules
from .references import check_references

REFERENCE_CLAIMS: dict[str, Claim] = {
    **{f"tdx.{n}": Claim.EXECUTABLES for n in ("mr_td", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_seam", "mr_servicetd")},
    **{f"tdx.{n}": Claim.CONFIGURATION for n in ("mr_config_id", "mr_owner", "mr_owner_config")},
}
NO_CLAIM = 0  # AR4SI: the finding informs and changes no trustworthiness claim


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """The scheme's appraiser (verifier/appraisal/registry.py): (baseline, findings, matched reference values) of a
    verified TDX quote (`verified.parsed`, tee/tdx/quote.py) and its `TdxFacts` (`verified.facts`,
    tee/tdx/facts.py) under `policy` at `at`: TCB status and collateral (Intel PCS v4 "TDX TCB Info"),
    TD_ATTRIBUTES, MRSEAM, trailing data and reference values (module docstring). Evidence that failed
    verification, or lacks its quote or facts, is never affirmed: an empty baseline and TDX_NOT_APPRAISABLE.
    Evidence problems are Findings (TDX_* codes), not exceptions; never raises for a quote `parse_quote` returned."""
    quote, facts = verified.parsed, verified.facts
    if verified.failure is not None or not isinstance(quote, Quote) or not isinstance(facts, TdxFacts):
        return {}, [_not_appraisable(verified)], []
    rules = policy.tdx
    baseline = {Claim.INSTANCE_IDENTITY: AFFIRMING, Claim.CONFIGURATION: AFFIRMING, Claim.RUNTIME_OPAQUE: AFFIRMING}
    findings = [*_tcb_findings(facts, rules, at), *_collateral_findings(facts, rules, at)]
    if facts.tcb is not None and not any(f.claim is Claim.HARDWARE and f.value >= WARNING_UNSAFE for f in findings):
        baseline[Claim.HARDWARE] = AFFIRMING
    findings.extend(_quote_findings(quote, policy))
    ref_findings, matched = _reference_findings(quote.body, policy, references)
    findings.extend(ref_findings)
    if matched and not any(f.claim is Claim.EXECUTABLES for f in ref_findings):
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _not_appraisable(verified: VerifiedEvidence) -> Finding:
    """The fail-closed finding for evidence the appraiser cannot read (a wiring error: the service appraises only
    verified evidence, and TdxVerifier always returns the quote and its facts then)."""
    failure = verified.failure.code if verified.failure is not None else None
    return _f(
        "TDX_NOT_APPRAISABLE",
        Claim.HARDWARE,
        "the TDX appraiser was not given a verified quote with its TdxFacts: nothing is affirmed",
        "verified evidence with a parsed quote and TdxFacts",
        failure or f"parsed {type(verified.parsed).__name__}, facts {type(verified.facts).__name__}",
    )


def _quote_findings(quote: Quote, policy: Policy) -> list[Finding]:
    """TD_ATTRIBUTES (TUD, SEPT_VE_DISABLE), MRSEAM against the allowed TDX modules, and non-zero trailing data."""
    rules, body = policy.tdx, quote.body
    findings: list[Finding] = []
    # TD_ATTRIBUTES bits 7:0 are the "TD under debug" group (TUD): DEBUG is bit 0 and the others are reserved for
    # debug features, so any of them set makes the TD untrusted (as dcap-qvl does).
    if td_under_debug(body.td_attributes) and not policy.allow_debug:
        findings.append(
            _f(
                "TDX_DEBUG_TD",
                Claim.CONFIGURATION,
                "TD_ATTRIBUTES.TUD (bits 7:0, DEBUG is bit 0) is set: the host VMM can read and write TD memory",
                "TUD 0",
                f"td_attributes {body.td_attributes.hex()}",
            )
        )
    if rules.require_sept_ve_disable and not sept_ve_disable(body.td_attributes):
        findings.append(
            _f(
                "TDX_SEPT_VE_NOT_DISABLED",
                Claim.CONFIGURATION,
                "TD_ATTRIBUTES.SEPT_VE_DISABLE (bit 28) is clear: the host can inject EPT-violation #VE into the TD",
                "SEPT_VE_DISABLE 1",
                f"td_attributes {body.td_attributes.hex()}",
            )
        )
    if rules.allowed_mr_seams is not None and body.mr_seam not in rules.allowed_mr_seams:
        findings.append(
            _f(
                "TDX_MR_SEAM_NOT_ALLOWED",
                Claim.HARDWARE,
                "the TDX module (MRSEAM) is not allowed",
                " | ".join(m.hex() for m in rules.allowed_mr_seams),
                body.mr_seam.hex(),
            )
        )
    if quote.trailing_nonzero:
        findings.append(
            Finding(
                code="TDX_TRAILING_DATA",
                claim=Claim.CONFIGURATION,
                value=WARNING_UNSAFE,
                message="non-zero, unsigned bytes follow the quote's signature data (ignored)",
                expected="zero padding",
                actual=f"{quote.trailing_bytes} bytes",
            )
        )
    return findings


def _reference_findings(
    body: TdReport, policy: Policy, references: Sequence[ReferenceValue]
) -> tuple[list[Finding], list[ReferenceValue]]:
    """The TD report's measurements (lowercase hex, by reference-value kind; MRSERVICETD only in a TD 1.5 report)
    against the reference values, then the service TD approval."""
    measured = {kind: getattr(body, kind.removeprefix("tdx.")) for kind in REFERENCE_CLAIMS}
    actual = {kind: value.hex() for kind, value in measured.items() if value is not None}
    findings, matched = check_references("tdx", actual, policy.required("tdx"), references, REFERENCE_CLAIMS)
    findings.extend(_service_td_findings(body.mr_servicetd, references))
    return findings, matched


def _service_td_findings(servicetd: bytes | None, references: Sequence[ReferenceValue]) -> list[Finding]:
    """TDX_SERVICE_TD_NOT_APPROVED when MRSERVICETD is non-zero and no tdx.mr_servicetd value is given (a given
    value is compared by check_references). Any non-zero byte counts (fails closed)."""
    if servicetd is None or not any(servicetd):
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
            servicetd.hex(),
        )
    ]


def _seconds(t: dt.datetime) -> dt.datetime:
    """`t` at whole seconds, as RFC 3339 reports it (tcbDate, issueDate and CRL times are compared as shown)."""
    return t.replace(microsecond=0)


def _tcb_findings(facts: TdxFacts, rules: TdxRules, at: dt.datetime) -> list[Finding]:
    """The TCB evaluation (`facts.tcb`, tee/tdx/tcb.py) under the policy: TDX_TCB_UNKNOWN without one, the status
    against the accepted statuses and the grace period, then the advisory deny and allow lists."""
    tcb = facts.tcb
    if tcb is None:
        reason = facts.collateral_error or "no collateral"
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
    status_finding = _status_finding(tcb.status, tcb.tcb_date, tcb.advisory_ids, rules, at)
    return [*([status_finding] if status_finding else []), *_advisory_findings(tcb.advisory_ids, rules)]


def _status_finding(
    status: str, tcb_date: dt.datetime | None, advisories: tuple[str, ...], rules: TdxRules, at: dt.datetime
) -> Finding | None:
    """TDX_TCB_STATUS_NOT_ACCEPTED (contraindicated; a warning while the TCB level's tcbDate is within the policy's
    grace period, never for Revoked) or TDX_TCB_STATUS_WARNING for a status the policy accepts as a warning."""
    tier = rules.accepted_statuses.get(status) if status != "Revoked" else None
    if tier is None:
        value = CONTRAINDICATED
        if (
            rules.grace_days is not None
            and status != "Revoked"
            and tcb_date is not None
            and _seconds(tcb_date) > at - dt.timedelta(days=rules.grace_days)
        ):
            value = WARNING_UNSAFE
        return Finding(
            code="TDX_TCB_STATUS_NOT_ACCEPTED",
            claim=Claim.HARDWARE,
            value=value,
            message=f"Intel TCB status {status} is not accepted by the policy"
            + (" (within the grace period)" if value == WARNING_UNSAFE else ""),
            expected=" | ".join(rules.accepted_statuses),
            actual=status,
        )
    if tier == "warning":
        return Finding(
            code="TDX_TCB_STATUS_WARNING",
            claim=Claim.HARDWARE,
            value=WARNING_UNSAFE,
            message=f"Intel TCB status {status}: genuine, with known issues "
            f"({', '.join(advisories) or 'no advisory IDs'})",
            expected="UpToDate",
            actual=status,
        )
    return None


def _advisory_findings(advisories: tuple[str, ...], rules: TdxRules) -> list[Finding]:
    """TDX_ADVISORY_DENIED for a denied advisory, TDX_ADVISORY_NOT_ALLOWED for one outside the allow list."""
    findings = []
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


def _item_version(item: ItemFacts) -> str:
    return f"number {item.number}, issued {to_rfc3339(item.issued)}"


def _collateral_findings(facts: TdxFacts, rules: TdxRules, at: dt.datetime) -> list[Finding]:
    """The collateral used (`facts.collateral` and `facts.superseded`, tee/tdx/freshness.py): superseded request
    items (informational), the policy's minimum TCB evaluation data number and maximum collateral age."""
    findings = [
        Finding(
            code="COLLATERAL_SUPERSEDED",
            claim=Claim.HARDWARE,
            value=NO_CLAIM,
            message=f"the request's {old.used.item} is older than the verifier's copy, which decided",
            expected=_item_version(old.used),
            actual=_item_version(old.request),
        )
        for old in facts.superseded
    ]
    minimum = rules.minimum_tcb_evaluation_data_number
    tcb_info = facts.item(TCB_INFO)
    if minimum is not None and tcb_info is not None and (tcb_info.number is None or tcb_info.number < minimum):
        findings.append(
            _f(
                "TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM",
                Claim.HARDWARE,
                f"the TCB info used has tcbEvaluationDataNumber {tcb_info.number}, below the policy's minimum "
                "(it predates a TCB recovery the policy requires)",
                f">= {minimum}",
                str(tcb_info.number),
            )
        )
    if rules.max_collateral_age_hours is not None:
        oldest = at - dt.timedelta(hours=rules.max_collateral_age_hours)
        findings.extend(
            _f(
                "COLLATERAL_TOO_OLD",
                Claim.HARDWARE,
                f"{used.item} was issued more than {rules.max_collateral_age_hours} hours before the appraisal",
                f"issued at or after {to_rfc3339(oldest)}",
                to_rfc3339(used.issued),
            )
            for used in facts.collateral
            if _seconds(used.issued) < oldest
        )
    return findings


def _f(code: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(code=code, claim=claim, value=CONTRAINDICATED, message=message, expected=expected, actual=actual)
