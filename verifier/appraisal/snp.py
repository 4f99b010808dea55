"""Appraisal of verified SEV-SNP claims against policy and reference values (steps 7-8).

Checks follow the AMD SEV-SNP Firmware ABI specification: GUEST_POLICY (DEBUG bit 19, MIGRATE_MA bit 18), VMPL,
TCB_VERSION per component, the CURRENT firmware version and build, and CHIP_ID; reference values of kinds
snp.measurement (required by default), snp.host_data, snp.id_key_digest, snp.author_key_digest, snp.family_id and
snp.image_id (checked when registered or required by the policy). Every failed check is a finding.

Two constraint kinds (reference_values/kinds.py; every value of the kind must hold): snp.min_guest_svn, a 4-byte
big-endian minimum of GUEST_SVN (report offset 0x04, the guest's security version from its ID block), and
snp.platform_info, an 8-byte mask then an 8-byte value pinning PLATFORM_INFO bits (offset 0x40: SMT_EN, TSME_EN,
ECC_EN, RAPL_DIS, CIPHERTEXT_HIDING_EN, ...): (PLATFORM_INFO & mask) == value."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ..clock import parse_rfc3339, to_rfc3339
from ..reference_values.kinds import spec as kind_spec
from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from .model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Claim, Finding
from .policy import Policy, SnpRules
from .references import check_references

NO_CLAIM = 0  # AR4SI "no claim": an informational finding that changes no status

REFERENCE_CLAIMS: dict[str, Claim] = {
    "snp.measurement": Claim.EXECUTABLES,
    "snp.host_data": Claim.CONFIGURATION,
    "snp.id_key_digest": Claim.EXECUTABLES,
    "snp.author_key_digest": Claim.EXECUTABLES,
    "snp.family_id": Claim.EXECUTABLES,
    "snp.image_id": Claim.EXECUTABLES,
    "snp.min_guest_svn": Claim.EXECUTABLES,
    "snp.platform_info": Claim.CONFIGURATION,
}


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """The scheme's appraiser (verifier/tee/registry.py): `appraise_snp` of the verified claims and details at `at`."""
    return appraise_snp(verified.claims, verified.details, policy, references, at)


def appraise_snp(
    claims: Mapping[str, Any],
    details: Mapping[str, Any],
    policy: Policy,
    references: Sequence[ReferenceValue],
    at: dt.datetime | None = None,
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    """Findings for verified SNP claims and verification `details` (tee/sevsnp/evidence.py) under `policy`;
    `at` is the appraisal time (default: details["appraised_at"]) for the collateral age rule."""
    rules = policy.snp
    baseline = {
        Claim.INSTANCE_IDENTITY: AFFIRMING,
        Claim.HARDWARE: AFFIRMING,
        Claim.CONFIGURATION: AFFIRMING,
        Claim.RUNTIME_OPAQUE: AFFIRMING,
    }
    findings: list[Finding] = []
    decoded = claims.get("policy_decoded") or {}
    if decoded.get("debug") and not policy.allow_debug:
        findings.append(
            _f(
                "SNP_DEBUG_ALLOWED",
                Claim.CONFIGURATION,
                "GUEST_POLICY.DEBUG (bit 19) is set: the hypervisor can read and write guest memory",
                "debug 0",
                f"debug 1 (policy {claims.get('policy')})",
            )
        )
    if decoded.get("migrate_ma") and not rules.allow_migrate_ma:
        findings.append(
            _f(
                "SNP_MIGRATE_MA_ALLOWED",
                Claim.CONFIGURATION,
                "GUEST_POLICY.MIGRATE_MA (bit 18) is set: a migration agent may be associated",
                "migrate_ma 0",
                f"migrate_ma 1 (policy {claims.get('policy')})",
            )
        )
    vmpl = claims.get("vmpl")
    if rules.allowed_vmpls is not None and vmpl not in rules.allowed_vmpls:
        findings.append(
            _f(
                "SNP_VMPL_NOT_ALLOWED",
                Claim.CONFIGURATION,
                "the report was requested at a VMPL the policy does not allow",
                ",".join(map(str, rules.allowed_vmpls)),
                str(vmpl),
            )
        )
    findings.extend(_tcb_findings(claims, rules.minimum_tcb, rules.tcb_fields))
    findings.extend(_firmware_findings(claims, rules.minimum_firmware, rules.minimum_build))
    chip = str(claims.get("chip_id") or "")
    if rules.allowed_chip_ids is not None and chip not in {c.hex() for c in rules.allowed_chip_ids}:
        findings.append(
            _f(
                "SNP_CHIP_ID_NOT_ALLOWED",
                Claim.INSTANCE_IDENTITY,
                "CHIP_ID is not an allowed chip",
                " | ".join(c.hex() for c in rules.allowed_chip_ids),
                chip,
            )
        )
    findings.extend(_revocation_findings(details, rules, _appraisal_time(details, at)))
    ref_findings, matched = check_references(
        "snp", _reference_actual(claims), policy.required("snp"), references, REFERENCE_CLAIMS
    )
    findings.extend(ref_findings)
    if matched and not any(f.claim is Claim.EXECUTABLES for f in ref_findings):
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _reference_actual(claims: Mapping[str, Any]) -> dict[str, str]:
    """The claims check_references compares, by kind: hex byte fields as they are, GUEST_SVN as 4-byte big-endian
    hex and PLATFORM_INFO as 8-byte big-endian hex (the "at_least" and "masked" kinds compare integers). A claim
    of the wrong type or range is left out (CLAIM_MISSING when a value pins it)."""
    actual: dict[str, str] = {}
    for kind in REFERENCE_CLAIMS:
        value = claims.get(kind_spec(kind).claim_name)
        if kind == "snp.min_guest_svn":
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 32:
                actual[kind] = f"{value:08x}"
        elif kind == "snp.platform_info":
            text = str(value).lower() if isinstance(value, str) else ""
            text = text[2:] if text.startswith("0x") else text
            if len(text) == 16:
                actual[kind] = text
        elif value is not None:
            actual[kind] = str(value)
    return actual


def _tcb_findings(claims: Mapping[str, Any], minimum: Mapping[str, int], fields: Sequence[str]) -> list[Finding]:
    """Each component of each configured TCB_VERSION field must be >= its minimum (fmc exists on Turin only)."""
    findings = []
    for name in fields if minimum else ():
        tcb = claims.get(f"{name}_tcb") or {}
        if "snp" not in tcb:  # the product, and so the layout, is unknown: the TCB cannot be compared
            findings.append(
                _f(
                    "SNP_TCB_BELOW_MINIMUM",
                    Claim.HARDWARE,
                    f"{name.upper()}_TCB cannot be decoded without the product",
                    str(dict(minimum)),
                    str(tcb.get("raw")),
                )
            )
            continue
        low = [(c, int(tcb[c]), want) for c, want in minimum.items() if c in tcb and int(tcb[c]) < want]
        if low:
            findings.append(
                _f(
                    "SNP_TCB_BELOW_MINIMUM",
                    Claim.HARDWARE,
                    f"{name.upper()}_TCB is below the policy minimum",
                    ", ".join(f"{c}>={w}" for c, _, w in low),
                    ", ".join(f"{c}={v}" for c, v, _ in low),
                )
            )
    return findings


def _firmware_findings(claims: Mapping[str, Any], minimum: tuple[int, int] | None, build: int | None) -> list[Finding]:
    current = claims.get("current_build_minor_major") or [0, 0, 0]
    cur_build, cur_minor, cur_major = (int(x) for x in current)
    findings = []
    if minimum is not None and (cur_major, cur_minor) < minimum:
        findings.append(
            _f(
                "SNP_FIRMWARE_BELOW_MINIMUM",
                Claim.HARDWARE,
                "the SNP firmware is older than the policy allows",
                f"{minimum[0]}.{minimum[1]}",
                f"{cur_major}.{cur_minor}",
            )
        )
    if build is not None and cur_build < build:
        findings.append(
            _f(
                "SNP_FIRMWARE_BUILD_BELOW_MINIMUM",
                Claim.HARDWARE,
                "the SNP firmware build is older than the policy allows",
                str(build),
                str(cur_build),
            )
        )
    return findings


def _revocation_findings(details: Mapping[str, Any], rules: SnpRules, at: dt.datetime | None) -> list[Finding]:
    """Revocation: unavailable is fail-closed unless `crl_fail_open` (warning); an older request CRL that lost to
    the verifier's is reported (AR4SI 0: no status change); `max_collateral_age_hours` bounds the CRL's age."""
    findings: list[Finding] = []
    state = details.get("revocation", details.get("crl"))
    if state not in (None, "checked", "off"):
        value = WARNING_UNSAFE if rules.crl_fail_open else CONTRAINDICATED
        findings.append(
            Finding(
                code="SNP_CRL_UNAVAILABLE",
                claim=Claim.HARDWARE,
                value=value,
                message=f"revocation could not be checked ({details.get('crl_reason', state)}); "
                f"the policy {'allows' if rules.crl_fail_open else 'forbids'} that",
                expected="a valid AMD CRL",
                actual=str(state),
            )
        )
    for lost in details.get("collateral_superseded") or ():
        if isinstance(lost, Mapping) and lost.get("item") == "amd.crl":
            findings.append(
                Finding(
                    code="COLLATERAL_SUPERSEDED",
                    claim=Claim.HARDWARE,
                    value=NO_CLAIM,
                    message="the request's AMD CRL is older than the verifier's; the newer decided",
                    expected=_version(lost.get("used")),
                    actual=_version(lost.get("request")),
                )
            )
    limit = rules.max_collateral_age_hours
    crl = next(
        (c for c in details.get("collateral") or () if isinstance(c, Mapping) and c.get("item") == "amd.crl"), None
    )
    if limit is not None and crl is not None:
        oldest = at - dt.timedelta(hours=limit) if at is not None else None
        issued = _time(crl.get("issued"))
        if oldest is None or issued is None or issued < oldest:  # an age that cannot be computed fails closed
            findings.append(
                _f(
                    "COLLATERAL_TOO_OLD",
                    Claim.HARDWARE,
                    f"the AMD CRL used was issued more than {limit} h before the appraisal",
                    f"thisUpdate >= {to_rfc3339(oldest) if oldest else 'unknown'} (at most {limit} h old)",
                    f"thisUpdate {crl.get('issued')} (number {crl.get('number')}, {crl.get('source')})",
                )
            )
    return findings


def _appraisal_time(details: Mapping[str, Any], at: dt.datetime | None) -> dt.datetime | None:
    return at if at is not None else _time(details.get("appraised_at"))


def _time(value: Any) -> dt.datetime | None:
    try:
        return parse_rfc3339(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _version(value: Any) -> str:
    if not isinstance(value, Mapping):
        return "unknown"
    return f"number {value.get('number')}, thisUpdate {value.get('issued')}"


def _f(code: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(code=code, claim=claim, value=CONTRAINDICATED, message=message, expected=expected, actual=actual)
