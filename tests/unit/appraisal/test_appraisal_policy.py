"""Named policies, the JSON policy file, REPORT_DATA binding, and the SNP appraisal checks on verified reports
(minted by the fake AMD PKI, verified by the SnpVerifier, appraised by appraisal/snp.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_snp_appraise_seam import (
    Verified,
    measured,
    ref,
    request_files,
    verify,
    with_facts,
    with_report,
)
from verifier.appraisal.binding import BindingRule, check_binding, expected_report_data
from verifier.appraisal.model import Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy, PolicySet, SnpRules
from verifier.appraisal.registry import get_scheme
from verifier.appraisal.snp import appraise
from verifier.errors import ConfigError, RequestError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.sevsnp.tcb import Product, encode_tcb

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)  # the fake PKI's time


def _rule(kind: str) -> BindingRule:
    """The binding rule of evidence kind `kind`'s scheme, as the service passes it (`Scheme.binding`)."""
    return get_scheme(kind).binding


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    """REPORTED_TCB bootloader 3, tee 0, snp 8, microcode 115 (the VCEK's SPLs); CURRENT firmware 1.55 build 3."""
    return FakeAmdPki(Product.MILAN, spl={"bl": 3, "tee": 0, "snp": 8, "ucode": 115})


def snp_report(pki: FakeAmdPki, *, check_crl: bool = False, **overrides: Any) -> Verified:
    """A verified report (revocation "off" unless `check_crl`): COMMITTED_TCB one bootloader SVN below REPORTED."""
    committed = encode_tcb(pki.product, bootloader=2, tee=0, snp=8, microcode=115)
    evidence = pki.report(**{"committed_tcb": committed, **overrides})
    verified = verify(pki, evidence, collateral=request_files(pki), check_crl=check_crl)
    assert verified.failure is None and verified.facts is not None, verified.failure
    return verified


def appraised(
    verified: Verified, policy: Policy | None = None, refs: list[ReferenceValue] | None = None
) -> tuple[dict[Claim, int], list[Finding]]:
    baseline, findings, _ = appraise(
        verified, policy or Policy(), refs if refs is not None else [measured(verified)], AT
    )
    return baseline, findings


def run(
    verified: Verified, policy: Policy | None = None, refs: list[ReferenceValue] | None = None
) -> tuple[Tier, list[str]]:
    baseline, findings = appraised(verified, policy, refs)
    return combine(baseline, findings).status, [f.code for f in findings]


def test_default_policy_affirms_an_approved_measurement(pki: FakeAmdPki) -> None:
    status, codes = run(snp_report(pki))
    assert (status, codes) == (Tier.AFFIRMING, [])


def test_unregistered_measurement_is_contraindicated_on_executables(pki: FakeAmdPki) -> None:
    baseline, findings = appraised(snp_report(pki), refs=[])
    assert [f.code for f in findings] == ["REFERENCE_VALUE_MISSING"]
    assert combine(baseline, findings).to_json()["executables"] == 96


def test_debug_and_migration_agent_are_forbidden(pki: FakeAmdPki) -> None:
    both = snp_report(pki, policy=0x30000 | 1 << 19 | 1 << 18)  # GUEST_POLICY.DEBUG and MIGRATE_MA
    status, codes = run(both)
    assert status is Tier.CONTRAINDICATED
    assert codes == ["SNP_DEBUG_ALLOWED", "SNP_MIGRATE_MA_ALLOWED"]
    _, codes = run(both, Policy(snp=SnpRules(allow_migrate_ma=True)))
    assert codes == ["SNP_DEBUG_ALLOWED"]


def test_vmpl_tcb_firmware_and_chip_rules(pki: FakeAmdPki) -> None:
    rules = SnpRules(
        allowed_vmpls=(0,),
        minimum_tcb={"bootloader": 3, "snp": 9, "fmc": 1},
        tcb_fields=("reported", "committed"),
        minimum_firmware=(1, 56),
        minimum_build=4,
        allowed_chip_ids=(bytes.fromhex("cd" * 64),),
    )
    status, codes = run(snp_report(pki, vmpl=2), Policy(snp=rules))
    assert status is Tier.CONTRAINDICATED
    assert codes == [
        "SNP_VMPL_NOT_ALLOWED",
        "SNP_TCB_BELOW_MINIMUM",
        "SNP_TCB_BELOW_MINIMUM",
        "SNP_FIRMWARE_BELOW_MINIMUM",
        "SNP_FIRMWARE_BUILD_BELOW_MINIMUM",
        "SNP_CHIP_ID_NOT_ALLOWED",
    ]
    _, findings = appraised(snp_report(pki), Policy(snp=rules))
    committed = [f for f in findings if f.code == "SNP_TCB_BELOW_MINIMUM"][1]
    assert committed.expected == "bootloader>=3, snp>=9" and committed.actual == "bootloader=2, snp=8"


def test_tcb_minimum_on_an_undecodable_tcb_fails_closed(pki: FakeAmdPki) -> None:
    """Without the product the TCB_VERSION layout is unknown; a hand-built REPORTED_TCB with a reserved byte set
    does not fit the product's layout: either way the minimum cannot be shown to hold."""
    rules = Policy(snp=SnpRules(minimum_tcb={"snp": 1}))
    verified = snp_report(pki)
    assert run(verified, rules) == (Tier.AFFIRMING, [])
    _, codes = run(with_facts(verified, product=None), rules)
    assert codes == ["SNP_TCB_BELOW_MINIMUM"]
    assert verified.parsed is not None
    reserved = bytearray(verified.parsed.reported_tcb)
    reserved[2] = 1  # reserved in the Milan layout
    _, findings = appraised(with_report(verified, reported_tcb=bytes(reserved)), rules)
    assert [(f.code, f.actual) for f in findings] == [("SNP_TCB_BELOW_MINIMUM", bytes(reserved).hex())]


def test_crl_unavailable_is_fail_closed_by_default_and_warning_when_fail_open(pki: FakeAmdPki) -> None:
    offline = snp_report(pki, check_crl=True)  # no CRL in the request, offline
    assert offline.facts is not None and offline.facts.crl_reason == "COLLATERAL_OFFLINE"
    status, codes = run(offline)
    assert (status, codes) == (Tier.CONTRAINDICATED, ["SNP_CRL_UNAVAILABLE"])
    status, _ = run(offline, Policy(snp=SnpRules(crl_fail_open=True)))
    assert status is Tier.WARNING


def test_optional_reference_kinds_are_checked_when_registered(pki: FakeAmdPki) -> None:
    verified = snp_report(pki)
    _, findings = appraised(verified, refs=[measured(verified), ref("snp.host_data", "ff" * 32)])
    assert [(f.code, f.claim) for f in findings] == [("REFERENCE_VALUE_MISMATCH", Claim.CONFIGURATION)]
    assert findings[0].expected == "ff" * 32 and findings[0].actual == "00" * 32


def test_report_data_binding_modes() -> None:
    nonce, key = b"n" * 32, b'{"kty":"EC"}'
    want = hashlib.sha512(nonce + key).hexdigest()
    assert expected_report_data(nonce, key, "sha512").hex() == want
    assert check_binding(_rule("snp"), {"report_data": want}, nonce, key, "sha512") == []
    (bad,) = check_binding(_rule("snp"), {"report_data": want}, nonce, b"other", "sha512")
    assert bad.code == "REPORT_DATA_MISMATCH" and bad.actual == want
    raw = nonce.hex() + "00" * 32
    assert check_binding(_rule("tdx"), {"report_data": raw}, nonce, None, "raw") == []
    assert check_binding(_rule("snp"), {"report_data": raw}, b"m" * 65, None, "raw")[0].code == "NONCE_MISMATCH"


def test_policy_file_tightens_and_rejects_typos(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(
        json.dumps(
            {
                "policies": [
                    {
                        "id": "prod-snp",
                        "require_nonce": True,
                        "required_kinds": {"snp": ["snp.host_data"]},
                        "snp": {
                            "minimum_tcb": {"bootloader": 3, "snp": 8},
                            "allowed_vmpls": [0],
                            "minimum_firmware": [1, 55],
                            "allowed_chip_ids": ["ab" * 64],
                            "crl_fail_open": False,
                        },
                    }
                ]
            }
        )
    )
    policies = PolicySet.from_file(path)
    policy = policies.get("prod-snp")
    assert policy.required("snp") == ("snp.measurement", "snp.host_data")
    assert policy.snp.minimum_tcb == {"bootloader": 3, "snp": 8} and policy.require_nonce
    assert policies.get(None).policy_id == "default" and not policies.get(None).allow_debug
    with pytest.raises(RequestError):
        policies.get("nope")
    path.write_text(json.dumps({"policies": [{"id": "x", "allow_debug": True}]}))
    with pytest.raises(ConfigError):
        PolicySet.from_file(path)
    path.write_text(json.dumps({"policies": [{"id": "x", "snp": {"minimum_tbc": {}}}]}))
    with pytest.raises(ConfigError):
        PolicySet.from_file(path)


def test_runtime_data_binds_without_a_nonce_and_raw_mode_cannot_bind_it() -> None:
    key = b"der-spki"
    want = hashlib.sha512(key).hexdigest()
    assert check_binding(_rule("snp"), {"report_data": want}, None, key, "sha512") == []
    assert (
        check_binding(_rule("snp"), {"report_data": "00" * 64}, None, key, "sha512")[0].code == "REPORT_DATA_MISMATCH"
    )
    codes = [f.code for f in check_binding(_rule("tdx"), {"report_data": "00" * 64}, None, key, "raw")]
    assert codes == ["RUNTIME_DATA_NOT_BOUND"]
    assert check_binding(_rule("nitro"), {"public_key": key.hex()}, None, key, "sha512") == []
    assert check_binding(_rule("snp"), {}, None, None, "sha512") == []
