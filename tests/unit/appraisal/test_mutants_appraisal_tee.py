"""Tests for mutants that survived scripts/mutation.py in the per-TEE appraisal rules (appraisal/references.py,
snp.py, tdx.py): CHIP_ID and MRSEAM allow-lists, the EXECUTABLES and HARDWARE baselines, GUEST_SVN bounds, TCB and
firmware minimums at their boundaries, the AMD CRL facts (superseded, maximum age), the TDX grace period and the
advisory texts. SNP claims come from reports minted by the fake AMD PKI, TDX MRSEAM from a minted quote; the
verification `details` are the documented dicts (tee/sevsnp/evidence.py, tee/tdx/evidence.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_appraisal_tdx import AT as TDX_AT
from tests.unit.appraisal.test_appraisal_tdx import claims as tdx_claims
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Claim, Finding, Tier, combine
from verifier.appraisal.policy import TCB_FIELDS, Policy, SnpRules, TdxRules
from verifier.appraisal.references import check_references
from verifier.appraisal.snp import appraise_snp
from verifier.appraisal.tdx import NO_CLAIM, appraise_tdx
from verifier.reference_values.kinds import normalize_value
from verifier.reference_values.model import ReferenceValue
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.claims import claims as snp_claims_of
from verifier.tee.sevsnp.tcb import Product

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
NO_REQUIRED = Policy(policy_id="nothing-required", required_kinds={})
CHECKED = {"revocation": "checked", "crl": "checked"}


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(f"{kind}={value}", kind, normalize_value(kind, value), "w", AT - dt.timedelta(days=30))


# --- references.py: check_references, a reference of a kind the verifier cannot compare -------------------------
def test_a_reference_of_an_unknown_kind_is_a_mismatch() -> None:
    unknown = ReferenceValue("u", "snp.not_a_kind", b"\xaa", "w", AT)
    findings, matched = check_references("snp", {"snp.not_a_kind": "aa"}, (), [unknown])
    assert matched == []
    assert [(f.code, f.claim, f.value, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES, CONTRAINDICATED, "a known kind", "aa")
    ]
    assert findings[0].message == "snp.not_a_kind is not a kind this verifier can compare"


# --- snp.py: claims of reports minted by the fake AMD PKI -------------------------------------------------------
@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def minted(pki: FakeAmdPki, **overrides: Any) -> dict[str, Any]:
    return snp_claims_of(parse_report(pki.report(**overrides)), pki.product)


def snp(
    claims: dict[str, Any],
    *extra: ReferenceValue,
    rules: SnpRules | None = None,
    details: dict[str, Any] | None = None,
    policy: Policy | None = None,
    measured: bool = True,
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    refs = [ref("snp.measurement", claims["measurement"])] if measured else []
    chosen = policy or Policy(snp=rules or SnpRules())
    return appraise_snp(claims, CHECKED if details is None else details, chosen, [*refs, *extra], at=AT)


def test_snp_allowed_chip_ids_accept_the_reports_chip_and_refuse_another(pki: FakeAmdPki) -> None:
    claims = minted(pki)
    chip = bytes.fromhex(claims["chip_id"])
    assert chip == pki.hwid  # a VCEK report carries the chip's hwID
    baseline, findings, _ = snp(claims, rules=SnpRules(allowed_chip_ids=(chip,)))
    assert findings == [] and combine(baseline, findings).status is Tier.AFFIRMING
    _, findings, _ = snp(claims, rules=SnpRules(allowed_chip_ids=(b"\x01" * 64,)))
    assert [(f.code, f.actual) for f in findings] == [("SNP_CHIP_ID_NOT_ALLOWED", claims["chip_id"])]


@pytest.mark.parametrize(
    ("extra", "policy", "measured", "codes", "affirmed"),
    [
        pytest.param((), None, True, [], True, id="measurement-matched"),
        pytest.param((), NO_REQUIRED, False, [], False, id="nothing-required-nothing-matched"),
        pytest.param(
            (("snp.host_data", "01" * 32),), None, True, [("REFERENCE_VALUE_MISMATCH", Claim.CONFIGURATION)], True,
            id="matched-beside-a-configuration-miss",
        ),
        pytest.param(
            (("snp.id_key_digest", "01" * 48),), None, True, [("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES)], False,
            id="matched-beside-an-executables-miss",
        ),
    ],
)  # fmt: skip
def test_snp_executables_affirmed_only_by_a_match_without_an_executables_finding(
    pki: FakeAmdPki,
    extra: tuple[tuple[str, str], ...],
    policy: Policy | None,
    measured: bool,
    codes: list[tuple[str, Claim]],
    affirmed: bool,
) -> None:
    baseline, findings, matched = snp(minted(pki), *(ref(k, v) for k, v in extra), policy=policy, measured=measured)
    assert [(f.code, f.claim) for f in findings] == codes
    assert bool(matched) is measured
    assert baseline.get(Claim.EXECUTABLES) == (AFFIRMING if affirmed else None)
    executables_missed = any(f.claim is Claim.EXECUTABLES for f in findings)
    shown = CONTRAINDICATED if executables_missed else AFFIRMING if affirmed else None
    assert combine(baseline, findings).to_json().get("executables") == shown


@pytest.mark.parametrize(
    ("svn", "minimum", "codes"),
    [
        pytest.param(0, "00000000", [], id="zero-meets-zero"),
        pytest.param(0, "00000001", ["REFERENCE_VALUE_MISMATCH"], id="zero-below-one"),
        pytest.param((1 << 32) - 1, "ffffffff", [], id="largest-4-byte-svn"),
        pytest.param(1 << 32, "00000000", ["CLAIM_MISSING"], id="too-wide-for-4-bytes"),
        pytest.param(-1, "00000000", ["CLAIM_MISSING"], id="negative"),
    ],
)
def test_snp_guest_svn_range(pki: FakeAmdPki, svn: int, minimum: str, codes: list[str]) -> None:
    if 0 <= svn < 1 << 32:
        claims = minted(pki, guest_svn=svn)
    else:  # GUEST_SVN is 4 bytes in the report: a hand-built claim dict is the only way past that
        claims = minted(pki) | {"guest_svn": svn}
    assert claims["guest_svn"] == svn
    _, findings, matched = snp(claims, ref("snp.min_guest_svn", minimum))
    assert [f.code for f in findings] == codes
    assert ("snp.min_guest_svn" in {r.kind for r in matched}) is (codes == [])


def spl_minimum(pki: FakeAmdPki) -> dict[str, int]:
    s = pki.spl
    return {"bootloader": s["bl"], "tee": s["tee"], "snp": s["snp"], "microcode": s["ucode"]}


@pytest.mark.parametrize("component", [None, "bootloader", "tee", "snp", "microcode"])
def test_snp_tcb_exactly_at_the_minimum_passes_one_above_fails(pki: FakeAmdPki, component: str | None) -> None:
    claims = minted(pki)
    minimum = spl_minimum(pki)
    assert {c: claims["reported_tcb"][c] for c in minimum} == minimum  # the report carries the VCEK's SPLs
    if component is not None:
        minimum[component] += 1
    _, findings, _ = snp(claims, rules=SnpRules(minimum_tcb=minimum, tcb_fields=TCB_FIELDS))
    if component is None:
        assert findings == []
    else:
        assert {f.code for f in findings} == {"SNP_TCB_BELOW_MINIMUM"} and len(findings) == len(TCB_FIELDS)
        assert {f.expected for f in findings} == {f"{component}>={minimum[component]}"}


@pytest.mark.parametrize(
    ("firmware", "build", "codes"),
    [
        pytest.param((1, 55), None, [], id="firmware-equal"),
        pytest.param((1, 54), None, [], id="firmware-newer-minor"),
        pytest.param((0, 99), None, [], id="firmware-newer-major"),
        pytest.param((1, 56), None, ["SNP_FIRMWARE_BELOW_MINIMUM"], id="firmware-older-minor"),
        pytest.param((2, 0), None, ["SNP_FIRMWARE_BELOW_MINIMUM"], id="firmware-older-major"),
        pytest.param(None, 3, [], id="build-equal"),
        pytest.param(None, 4, ["SNP_FIRMWARE_BUILD_BELOW_MINIMUM"], id="build-older"),
        pytest.param((1, 55), 3, [], id="both-equal"),
    ],
)
def test_snp_firmware_minimums_at_the_reports_version(
    pki: FakeAmdPki, firmware: tuple[int, int] | None, build: int | None, codes: list[str]
) -> None:
    claims = minted(pki)
    assert claims["current_build_minor_major"] == [3, 55, 1]  # CURRENT build 3, firmware 1.55
    _, findings, _ = snp(claims, rules=SnpRules(minimum_firmware=firmware, minimum_build=build))
    assert [f.code for f in findings] == codes
    if codes:
        assert findings[0].actual == ("1.55" if firmware else "3")


def _superseded(item: str) -> dict[str, Any]:
    return {
        "item": item,
        "request": {"number": 3, "issued": "2025-05-01T00:00:00Z"},
        "used": {"number": 4, "issued": "2025-05-31T00:00:00Z"},
    }


@pytest.mark.parametrize(
    ("superseded", "codes"),
    [
        pytest.param([_superseded("amd.crl")], ["COLLATERAL_SUPERSEDED"], id="crl"),
        pytest.param([_superseded("amd.vcek")], [], id="another-item"),
        pytest.param(["amd.crl"], [], id="not-a-mapping"),
    ],
)
def test_snp_only_a_superseded_crl_is_reported(pki: FakeAmdPki, superseded: list[Any], codes: list[str]) -> None:
    baseline, findings, _ = snp(minted(pki), details={**CHECKED, "collateral_superseded": superseded})
    assert [(f.code, f.value) for f in findings] == [(c, 0) for c in codes]
    assert combine(baseline, findings).status is Tier.AFFIRMING


def _used(item: str, issued: str) -> dict[str, Any]:
    return {"item": item, "number": None, "issued": issued, "next_update": "2032-06-01T00:00:00Z", "source": "vendor"}


FRESH_CRL = _used("amd.crl", "2025-06-01T00:00:00Z") | {"number": 4}


@pytest.mark.parametrize(
    ("collateral", "codes"),
    [
        pytest.param([FRESH_CRL], [], id="fresh-crl"),
        pytest.param([_used("amd.crl", "2025-05-01T00:00:00Z")], ["COLLATERAL_TOO_OLD"], id="old-crl"),
        pytest.param(
            [_used("amd.vcek", "2025-05-31T00:00:00Z"), _used("amd.cert_chain", "2024-06-01T00:00:00Z"), FRESH_CRL],
            [],
            id="old-certificates-beside-a-fresh-crl",
        ),
        pytest.param([_used("amd.vcek", "2025-05-31T00:00:00Z")], [], id="no-crl-used"),
        pytest.param(["amd.crl", FRESH_CRL], [], id="not-a-mapping-before-the-crl"),
    ],
)
def test_snp_maximum_collateral_age_bounds_the_crl_only(
    pki: FakeAmdPki, collateral: list[Any], codes: list[str]
) -> None:
    _, findings, _ = snp(
        minted(pki), rules=SnpRules(max_collateral_age_hours=24), details={**CHECKED, "collateral": collateral}
    )
    assert [f.code for f in findings] == codes


# --- tdx.py: appraise_tdx -----------------------------------------------------------------------------------------


def tdx_details(
    status: str = "UpToDate", advisories: tuple[str, ...] = (), date: str | None = "2025-05-14T00:00:00Z"
) -> dict[str, Any]:
    tcb: dict[str, Any] = {"status": status, "advisory_ids": list(advisories)}
    if date is not None:
        tcb["tcb_date"] = date
    return {"tcb": tcb}


def tdx(
    claims: dict[str, Any], details: dict[str, Any], rules: TdxRules | None = None
) -> tuple[dict[Claim, int], list[Finding]]:
    baseline, findings, _ = appraise_tdx(
        claims, details, Policy(tdx=rules or TdxRules()), [ref("tdx.mr_td", claims["mr_td"])], TDX_AT
    )
    return baseline, findings


@pytest.mark.parametrize(
    ("details", "value"),
    [
        pytest.param(tdx_details(), None, id="up-to-date"),
        pytest.param(
            tdx_details() | {"collateral_superseded": [{"item": "tdx.tcb_info", "request": {}, "used": {}}]},
            NO_CLAIM,
            id="up-to-date-with-an-informational-finding",
        ),
        pytest.param(tdx_details("SWHardeningNeeded"), WARNING_UNSAFE, id="warning-exactly"),
        pytest.param(tdx_details("OutOfDate"), CONTRAINDICATED, id="contraindicated"),
        pytest.param({}, CONTRAINDICATED, id="no-tcb"),
    ],
)
def test_tdx_hardware_baseline_is_affirming_only_without_a_warning_or_worse(
    details: dict[str, Any], value: int | None
) -> None:
    baseline, findings = tdx(tdx_claims(), details)
    hardware = [f.value for f in findings if f.claim is Claim.HARDWARE]
    affirmed = value in (None, NO_CLAIM)
    assert hardware == ([] if value is None else [value])
    assert baseline.get(Claim.HARDWARE) == (AFFIRMING if affirmed else None)
    assert combine(baseline, findings).get(Claim.HARDWARE) == (AFFIRMING if affirmed else value)


def test_tdx_allowed_mr_seam_accepts_the_minted_quotes_module() -> None:
    from tests.fakes.intel_pki import FakeIntelPki
    from verifier.tee.tdx.claims import claims as claims_of
    from verifier.tee.tdx.quote import parse_quote

    claims = claims_of(parse_quote(FakeIntelPki().quote(td_attributes=bytes.fromhex("0000001000000000"))), None)
    seam = bytes.fromhex(str(claims["mr_seam"]))
    _, findings = tdx(claims, tdx_details(), TdxRules(allowed_mr_seams=(seam,)))
    assert findings == []
    _, findings = tdx(claims, tdx_details(), TdxRules(allowed_mr_seams=(b"\x01" * 48,)))
    assert [(f.code, f.actual) for f in findings] == [("TDX_MR_SEAM_NOT_ALLOWED", claims["mr_seam"])]


GRACE = 90
EDGE = TDX_AT - dt.timedelta(days=GRACE)


def _rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("status", "date", "grace", "value"),
    [
        pytest.param("OutOfDate", "2025-05-01T00:00:00Z", GRACE, WARNING_UNSAFE, id="recent-within-grace"),
        pytest.param("OutOfDate", "2024-01-01T00:00:00Z", GRACE, CONTRAINDICATED, id="old-beyond-grace"),
        pytest.param("OutOfDate", _rfc3339(EDGE), GRACE, CONTRAINDICATED, id="exactly-at-the-grace-edge"),
        pytest.param(
            "OutOfDate", _rfc3339(EDGE + dt.timedelta(seconds=1)), GRACE, WARNING_UNSAFE, id="one-second-inside"
        ),
        pytest.param("OutOfDate", "2025-05-01T00:00:00Z", None, CONTRAINDICATED, id="no-grace-configured"),
        pytest.param("OutOfDate", None, GRACE, CONTRAINDICATED, id="no-tcb-date"),
        pytest.param("Revoked", "2025-05-01T00:00:00Z", GRACE, CONTRAINDICATED, id="revoked-never-has-grace"),
    ],
)
def test_tdx_grace_period(status: str, date: str | None, grace: int | None, value: int) -> None:
    baseline, findings = tdx(tdx_claims(), tdx_details(status, date=date), TdxRules(grace_days=grace))
    assert [(f.code, f.value) for f in findings] == [("TDX_TCB_STATUS_NOT_ACCEPTED", value)]
    assert combine(baseline, findings).status is Tier.of(value)


@pytest.mark.parametrize(
    ("advisories", "shown"),
    [
        pytest.param(("INTEL-SA-00837", "INTEL-SA-00615"), "(INTEL-SA-00837, INTEL-SA-00615)", id="listed"),
        pytest.param((), "(no advisory IDs)", id="none"),
    ],
)
def test_tdx_warning_status_names_its_advisories(advisories: tuple[str, ...], shown: str) -> None:
    _, findings = tdx(tdx_claims(), tdx_details("SWHardeningNeeded", advisories))
    (finding,) = findings
    assert finding.code == "TDX_TCB_STATUS_WARNING"
    assert finding.message == f"Intel TCB status SWHardeningNeeded: genuine, with known issues {shown}"


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        pytest.param(("INTEL-SA-00615", "INTEL-SA-00657"), "INTEL-SA-00615, INTEL-SA-00657", id="listed"),
        pytest.param((), "none", id="empty-allow-list"),
    ],
)
def test_tdx_advisory_not_allowed_shows_the_allow_list(allow: tuple[str, ...], expected: str) -> None:
    _, findings = tdx(tdx_claims(), tdx_details(advisories=("INTEL-SA-00837",)), TdxRules(advisory_allow=allow))
    assert [(f.code, f.expected, f.actual) for f in findings] == [
        ("TDX_ADVISORY_NOT_ALLOWED", expected, "INTEL-SA-00837")
    ]
