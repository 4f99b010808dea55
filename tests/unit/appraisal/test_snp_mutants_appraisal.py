"""Tests for mutants that survived scripts/mutation.py in the SNP appraisal rules (appraisal/snp.py): the CHIP_ID
allow-list, the EXECUTABLES baseline, GUEST_SVN bounds, TCB and firmware minimums at their boundaries, the AMD CRL
facts (superseded, maximum age). Moved here from tests/unit/appraisal/test_mutants_appraisal_tee.py when the
appraiser moved to the typed seam: reports are minted by the fake AMD PKI and verified by the SnpVerifier; facts
and report fields the fakes cannot produce are set by hand (`with_facts`, `with_report`)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_snp_appraise_seam import Verified, minted, ref, with_facts, with_report
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, Claim, Finding, Tier, combine
from verifier.appraisal.policy import TCB_FIELDS, Policy, SnpRules
from verifier.appraisal.snp import appraise
from verifier.collateral.ordering import ItemVersion
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import CollateralUsed
from verifier.tee.sevsnp.facts import SupersededCrl
from verifier.tee.sevsnp.tcb import Product

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
NO_REQUIRED = Policy(policy_id="nothing-required", required_kinds={})


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


@pytest.fixture(scope="module")
def verified(pki: FakeAmdPki) -> Verified:
    """A report of the fake PKI, verified with a request CRL (revocation "checked")."""
    return minted(pki)


def snp(
    verified: Verified,
    *extra: ReferenceValue,
    rules: SnpRules | None = None,
    policy: Policy | None = None,
    measured: bool = True,
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    assert verified.parsed is not None
    refs = [ref("snp.measurement", verified.parsed.measurement.hex())] if measured else []
    chosen = policy or Policy(snp=rules or SnpRules())
    return appraise(verified, chosen, [*refs, *extra], AT)


def test_snp_allowed_chip_ids_accept_the_reports_chip_and_refuse_another(pki: FakeAmdPki, verified: Verified) -> None:
    assert verified.parsed is not None
    chip = verified.parsed.chip_id
    assert chip == pki.hwid  # a VCEK report carries the chip's hwID
    baseline, findings, _ = snp(verified, rules=SnpRules(allowed_chip_ids=(chip,)))
    assert findings == [] and combine(baseline, findings).status is Tier.AFFIRMING
    _, findings, _ = snp(verified, rules=SnpRules(allowed_chip_ids=(b"\x01" * 64,)))
    assert [(f.code, f.actual) for f in findings] == [("SNP_CHIP_ID_NOT_ALLOWED", verified.claims["chip_id"])]


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
    verified: Verified,
    extra: tuple[tuple[str, str], ...],
    policy: Policy | None,
    measured: bool,
    codes: list[tuple[str, Claim]],
    affirmed: bool,
) -> None:
    baseline, findings, matched = snp(verified, *(ref(k, v) for k, v in extra), policy=policy, measured=measured)
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
def test_snp_guest_svn_range(pki: FakeAmdPki, verified: Verified, svn: int, minimum: str, codes: list[str]) -> None:
    if 0 <= svn < 1 << 32:
        report = minted(pki, guest_svn=svn)
    else:  # GUEST_SVN is 4 bytes in the report: a hand-built report is the only way past that
        report = with_report(verified, guest_svn=svn)
    assert report.parsed is not None and report.parsed.guest_svn == svn
    _, findings, matched = snp(report, ref("snp.min_guest_svn", minimum))
    assert [f.code for f in findings] == codes
    assert ("snp.min_guest_svn" in {r.kind for r in matched}) is (codes == [])


def spl_minimum(pki: FakeAmdPki) -> dict[str, int]:
    s = pki.spl
    return {"bootloader": s["bl"], "tee": s["tee"], "snp": s["snp"], "microcode": s["ucode"]}


@pytest.mark.parametrize("component", [None, "bootloader", "tee", "snp", "microcode"])
def test_snp_tcb_exactly_at_the_minimum_passes_one_above_fails(
    pki: FakeAmdPki, verified: Verified, component: str | None
) -> None:
    minimum = spl_minimum(pki)
    assert {c: verified.claims["reported_tcb"][c] for c in minimum} == minimum  # the report carries the VCEK's SPLs
    if component is not None:
        minimum[component] += 1
    _, findings, _ = snp(verified, rules=SnpRules(minimum_tcb=minimum, tcb_fields=TCB_FIELDS))
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
    verified: Verified, firmware: tuple[int, int] | None, build: int | None, codes: list[str]
) -> None:
    assert verified.claims["current_build_minor_major"] == [3, 55, 1]  # CURRENT build 3, firmware 1.55
    _, findings, _ = snp(verified, rules=SnpRules(minimum_firmware=firmware, minimum_build=build))
    assert [f.code for f in findings] == codes
    if codes:
        assert findings[0].actual == ("1.55" if firmware else "3")


def test_snp_a_superseded_crl_is_reported_and_changes_no_status(verified: Verified) -> None:
    """Only a CRL can be superseded (the facts hold nothing else): reported at AR4SI 0, with both versions."""
    lost = SupersededCrl(
        request=ItemVersion(3, dt.datetime(2025, 5, 1, tzinfo=dt.UTC)),
        used=ItemVersion(4, dt.datetime(2025, 5, 31, tzinfo=dt.UTC)),
    )
    baseline, findings, _ = snp(with_facts(verified, crl_superseded=lost))
    assert [(f.code, f.value) for f in findings] == [("COLLATERAL_SUPERSEDED", 0)]
    assert (findings[0].expected, findings[0].actual) == (
        "number 4, thisUpdate 2025-05-31T00:00:00Z",
        "number 3, thisUpdate 2025-05-01T00:00:00Z",
    )
    assert combine(baseline, findings).status is Tier.AFFIRMING
    baseline, findings, _ = snp(with_facts(verified, crl_superseded=None))
    assert findings == [] and combine(baseline, findings).status is Tier.AFFIRMING


def _crl(issued: str) -> CollateralUsed:
    return CollateralUsed(item="amd.crl", number=4, issued=issued, next_update="2032-06-01T00:00:00Z", source="vendor")


@pytest.mark.parametrize(
    ("crl", "codes"),
    [
        pytest.param(_crl("2025-06-01T00:00:00Z"), [], id="fresh-crl"),
        pytest.param(_crl("2025-05-31T12:00:00Z"), [], id="exactly-the-limit"),
        pytest.param(_crl("2025-05-31T11:59:59Z"), ["COLLATERAL_TOO_OLD"], id="one-second-past"),
        pytest.param(_crl("2025-05-01T00:00:00Z"), ["COLLATERAL_TOO_OLD"], id="old-crl"),
        pytest.param(None, [], id="no-crl-used"),
    ],
)
def test_snp_maximum_collateral_age_bounds_the_crl_only(
    verified: Verified, crl: CollateralUsed | None, codes: list[str]
) -> None:
    """The deciding CRL's thisUpdate against `at` - 24 h; the certificates (a year older) are not bounded."""
    assert [c.item for c in verified.collateral] == ["amd.vcek", "amd.cert_chain", "amd.crl"]
    assert verified.collateral[1].issued < "2025-01-01"  # the ASK
    _, findings, _ = snp(with_facts(verified, crl=crl), rules=SnpRules(max_collateral_age_hours=24))
    assert [f.code for f in findings] == codes
