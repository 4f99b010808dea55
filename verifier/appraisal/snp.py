"""Appraisal of a verified SEV-SNP report against policy and reference values (steps 7-8).

The appraiser reads the typed result of tee/sevsnp/evidence.py: the parsed ATTESTATION_REPORT
(`VerifiedEvidence.parsed`, an `AttestationReport`) and the verification facts (`VerifiedEvidence.facts`, an
`SnpFacts`: the verified product, revocation, the CRL that decided). Anything else (no report, no facts, a failed
or incomplete verification, e.g. from a plug-in verifier) is never affirmed: one contraindicated
SNP_EVIDENCE_UNVERIFIED finding.

Checks follow the AMD SEV-SNP Firmware ABI specification (pub. 56860): GUEST_POLICY (DEBUG bit 19, MIGRATE_MA
bit 18), VMPL, TCB_VERSION per component (layout per product), the CURRENT firmware version and build, and
CHIP_ID; revocation (AMD pub. 57230 CRL: unavailable is fail-closed unless `crl_fail_open`; a superseded request
CRL is reported; `max_collateral_age_hours` bounds the CRL's age at the appraisal time); reference values of kinds
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
from ..collateral.ordering import ItemVersion
from ..errors import ParseError
from ..reference_values.kinds import spec as kind_spec
from ..reference_values.model import ReferenceValue
from ..tee.base import VerifiedEvidence
from ..tee.sevsnp.abi import AttestationReport
from ..tee.sevsnp.facts import SnpFacts
from ..tee.sevsnp.policy import decode_policy
from ..tee.sevsnp.tcb import Product, TcbVersion, decode_tcb
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

Appraised = tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]


def appraise(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> Appraised:
    """The scheme's appraiser (verifier/appraisal/registry.py): (baseline, findings, matched reference values) for the
    verified report `verified.parsed` and its `SnpFacts` under `policy` at the appraisal time `at` (module
    docstring). Never raises for evidence values; a result without an AttestationReport and SnpFacts, or with a
    failure or `incomplete`, is one contraindicated SNP_EVIDENCE_UNVERIFIED finding and nothing affirmed."""
    report, facts = verified.parsed, verified.facts
    if not isinstance(report, AttestationReport) or not isinstance(facts, SnpFacts):
        return {}, [_unverified(verified, "no verified SEV-SNP report and facts")], []
    if verified.failure is not None or verified.incomplete:
        why = verified.incomplete or (verified.failure.code if verified.failure is not None else "")
        return {}, [_unverified(verified, f"verification did not complete: {why}")], []
    baseline = {
        Claim.INSTANCE_IDENTITY: AFFIRMING,
        Claim.HARDWARE: AFFIRMING,
        Claim.CONFIGURATION: AFFIRMING,
        Claim.RUNTIME_OPAQUE: AFFIRMING,
    }
    rules = policy.snp
    findings = [
        *_guest_policy_findings(report, policy),
        *_vmpl_findings(report, rules),
        *_tcb_findings(report, facts.product, rules.minimum_tcb, rules.tcb_fields),
        *_firmware_findings(report, rules.minimum_firmware, rules.minimum_build),
        *_chip_findings(report, rules),
        *_revocation_findings(facts, rules, at),
    ]
    ref_findings, matched = check_references(
        "snp", _reference_actual(report), policy.required("snp"), references, REFERENCE_CLAIMS
    )
    findings.extend(ref_findings)
    if matched and not any(f.claim is Claim.EXECUTABLES for f in ref_findings):
        baseline[Claim.EXECUTABLES] = AFFIRMING
    return baseline, findings, matched


def _unverified(verified: VerifiedEvidence, why: str) -> Finding:
    return _f(
        "SNP_EVIDENCE_UNVERIFIED",
        Claim.INSTANCE_IDENTITY,
        "the SEV-SNP appraiser was given no verified report: nothing can be affirmed",
        "a verified AttestationReport with SnpFacts (tee/sevsnp/evidence.py)",
        f"{type(verified.parsed).__name__} with {type(verified.facts).__name__} ({why})",
    )


def _guest_policy_findings(report: AttestationReport, policy: Policy) -> list[Finding]:
    """GUEST_POLICY (pub. 56860 "GUEST_POLICY Structure"): DEBUG (bit 19) unless `allow_debug`, MIGRATE_MA (bit 18)
    unless `allow_migrate_ma`; a policy that does not decode (a hand-built report) fails closed."""
    shown = f"policy 0x{report.policy:016x}"
    try:
        guest = decode_policy(report.policy)
    except ParseError as exc:
        return [_f(exc.code, Claim.CONFIGURATION, "GUEST_POLICY does not decode", exc.expected, shown)]
    findings = []
    if guest.debug and not policy.allow_debug:
        findings.append(
            _f(
                "SNP_DEBUG_ALLOWED",
                Claim.CONFIGURATION,
                "GUEST_POLICY.DEBUG (bit 19) is set: the hypervisor can read and write guest memory",
                "debug 0",
                f"debug 1 ({shown})",
            )
        )
    if guest.migrate_ma and not policy.snp.allow_migrate_ma:
        findings.append(
            _f(
                "SNP_MIGRATE_MA_ALLOWED",
                Claim.CONFIGURATION,
                "GUEST_POLICY.MIGRATE_MA (bit 18) is set: a migration agent may be associated",
                "migrate_ma 0",
                f"migrate_ma 1 ({shown})",
            )
        )
    return findings


def _vmpl_findings(report: AttestationReport, rules: SnpRules) -> list[Finding]:
    """VMPL (report offset 0x30): the privilege level the report was requested at must be allowed."""
    if rules.allowed_vmpls is None or report.vmpl in rules.allowed_vmpls:
        return []
    return [
        _f(
            "SNP_VMPL_NOT_ALLOWED",
            Claim.CONFIGURATION,
            "the report was requested at a VMPL the policy does not allow",
            ",".join(map(str, rules.allowed_vmpls)),
            str(report.vmpl),
        )
    ]


def _decoded_tcb(raw: bytes, product: Product | None, field: str) -> TcbVersion | None:
    """The TCB_VERSION `raw` in `product`'s layout (pub. 56860 "TCB_VERSION Structure"); None when the product is
    unknown or the bytes do not fit its layout."""
    if product is None:
        return None
    try:
        return decode_tcb(raw, product, field=field)
    except ParseError:
        return None


def _tcb_findings(
    report: AttestationReport, product: Product | None, minimum: Mapping[str, int], fields: Sequence[str]
) -> list[Finding]:
    """Each component of each configured TCB_VERSION field must be >= its minimum (fmc exists on Turin only); a
    field that cannot be decoded (unknown product, bytes outside the layout) fails closed."""
    findings = []
    for name in fields if minimum else ():
        raw: bytes = getattr(report, f"{name}_tcb", b"")  # a field no report has fails closed (not 8 bytes)
        tcb = _decoded_tcb(raw, product, f"{name.upper()}_TCB")
        if tcb is None:  # the product, and so the layout, is unknown: the TCB cannot be compared
            findings.append(
                _f(
                    "SNP_TCB_BELOW_MINIMUM",
                    Claim.HARDWARE,
                    f"{name.upper()}_TCB cannot be decoded without the product",
                    str(dict(minimum)),
                    raw.hex(),
                )
            )
            continue
        components = tcb.components()
        low = [(c, components[c], want) for c, want in minimum.items() if c in components and components[c] < want]
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


def _firmware_findings(report: AttestationReport, minimum: tuple[int, int] | None, build: int | None) -> list[Finding]:
    """CURRENT_MAJOR.CURRENT_MINOR (offsets 0x1EA, 0x1E9) and CURRENT_BUILD (0x1E8) against the policy minimums."""
    major, minor = report.current_major, report.current_minor
    findings = []
    if minimum is not None and (major, minor) < minimum:
        findings.append(
            _f(
                "SNP_FIRMWARE_BELOW_MINIMUM",
                Claim.HARDWARE,
                "the SNP firmware is older than the policy allows",
                f"{minimum[0]}.{minimum[1]}",
                f"{major}.{minor}",
            )
        )
    if build is not None and report.current_build < build:
        findings.append(
            _f(
                "SNP_FIRMWARE_BUILD_BELOW_MINIMUM",
                Claim.HARDWARE,
                "the SNP firmware build is older than the policy allows",
                str(build),
                str(report.current_build),
            )
        )
    return findings


def _chip_findings(report: AttestationReport, rules: SnpRules) -> list[Finding]:
    """CHIP_ID (offset 0x1A0) must be one of the allowed chips when the policy lists them."""
    if rules.allowed_chip_ids is None or report.chip_id in rules.allowed_chip_ids:
        return []
    return [
        _f(
            "SNP_CHIP_ID_NOT_ALLOWED",
            Claim.INSTANCE_IDENTITY,
            "CHIP_ID is not an allowed chip",
            " | ".join(c.hex() for c in rules.allowed_chip_ids),
            report.chip_id.hex(),
        )
    ]


def _revocation_findings(facts: SnpFacts, rules: SnpRules, at: dt.datetime) -> list[Finding]:
    """Revocation: unavailable is fail-closed unless `crl_fail_open` (warning); an older request CRL that lost to
    the verifier's is reported (AR4SI 0: no status change); `max_collateral_age_hours` bounds the CRL's age."""
    findings: list[Finding] = []
    if facts.revocation not in ("checked", "off"):
        findings.append(
            Finding(
                code="SNP_CRL_UNAVAILABLE",
                claim=Claim.HARDWARE,
                value=WARNING_UNSAFE if rules.crl_fail_open else CONTRAINDICATED,
                message=f"revocation could not be checked ({facts.crl_reason or facts.revocation}); "
                f"the policy {'allows' if rules.crl_fail_open else 'forbids'} that",
                expected="a valid AMD CRL",
                actual=str(facts.revocation),
            )
        )
    lost = facts.crl_superseded
    if lost is not None:
        findings.append(
            Finding(
                code="COLLATERAL_SUPERSEDED",
                claim=Claim.HARDWARE,
                value=NO_CLAIM,
                message="the request's AMD CRL is older than the verifier's; the newer decided",
                expected=_version(lost.used),
                actual=_version(lost.request),
            )
        )
    limit, crl = rules.max_collateral_age_hours, facts.crl
    if limit is not None and crl is not None:
        oldest = at - dt.timedelta(hours=limit)
        issued = _time(crl.issued)
        if issued is None or issued < oldest:  # an age that cannot be computed fails closed
            findings.append(
                _f(
                    "COLLATERAL_TOO_OLD",
                    Claim.HARDWARE,
                    f"the AMD CRL used was issued more than {limit} h before the appraisal",
                    f"thisUpdate >= {to_rfc3339(oldest)} (at most {limit} h old)",
                    f"thisUpdate {crl.issued} (number {crl.number}, {crl.source})",
                )
            )
    return findings


def _reference_actual(report: AttestationReport) -> dict[str, str]:
    """The report fields check_references compares, by kind (each kind's claim name is the report field): byte
    fields as lowercase hex, GUEST_SVN as 4-byte and PLATFORM_INFO as 8-byte big-endian hex (the "at_least" and
    "masked" kinds compare integers). A field of the wrong type or range (a hand-built report) is left out
    (CLAIM_MISSING when a value pins it)."""
    actual: dict[str, str] = {}
    for kind in REFERENCE_CLAIMS:
        value = getattr(report, kind_spec(kind).claim_name, None)
        digits = _INTEGER_HEX_DIGITS.get(kind)
        if digits is None:
            if isinstance(value, bytes):
                actual[kind] = value.hex()
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 4 * digits:
            actual[kind] = f"{value:0{digits}x}"
    return actual


# The integer fields compared as big-endian hex of their width in the report: GUEST_SVN 4 bytes, PLATFORM_INFO 8.
_INTEGER_HEX_DIGITS = {"snp.min_guest_svn": 8, "snp.platform_info": 16}


def _time(value: Any) -> dt.datetime | None:
    try:
        return parse_rfc3339(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _version(value: ItemVersion) -> str:
    return f"number {value.number}, thisUpdate {to_rfc3339(value.issued)}"


def _f(code: str, claim: Claim, message: str, expected: str, actual: str) -> Finding:
    return Finding(code=code, claim=claim, value=CONTRAINDICATED, message=message, expected=expected, actual=actual)
