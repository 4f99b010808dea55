"""Named policies, the JSON policy file, REPORT_DATA binding, and the SNP appraisal checks on claim dicts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal.binding import check_binding, expected_report_data
from verifier.appraisal.model import Claim, Tier, combine
from verifier.appraisal.policy import Policy, PolicySet, SnpRules
from verifier.appraisal.snp import appraise_snp
from verifier.errors import ConfigError, RequestError
from verifier.reference_values.model import ReferenceValue

MEASUREMENT = "11" * 48


def snp_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "policy": "0x0000000000030000",
        "policy_decoded": {"debug": False, "migrate_ma": False, "smt": True},
        "vmpl": 0,
        "measurement": MEASUREMENT,
        "host_data": "00" * 32,
        "id_key_digest": "00" * 48,
        "author_key_digest": "00" * 48,
        "family_id": "00" * 16,
        "image_id": "00" * 16,
        "chip_id": "ab" * 64,
        "reported_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "raw": "03000000000008" + "73"},
        "committed_tcb": {"bootloader": 2, "tee": 0, "snp": 8, "microcode": 115, "raw": "02000000000008" + "73"},
        "current_build_minor_major": [3, 55, 1],
    }
    claims.update(overrides)
    return claims


def ref(kind: str, value: str) -> ReferenceValue:
    import datetime as dt

    return ReferenceValue(
        id=kind, kind=kind, value=bytes.fromhex(value), label="x", created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )


def run(
    claims: dict[str, Any],
    policy: Policy | None = None,
    refs: list[ReferenceValue] | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[Tier, list[str]]:
    baseline, findings, _ = appraise_snp(
        claims,
        details or {"crl": "off"},
        policy or Policy(),
        refs if refs is not None else [ref("snp.measurement", MEASUREMENT)],
    )
    return combine(baseline, findings).status, [f.code for f in findings]


def test_default_policy_affirms_an_approved_measurement() -> None:
    status, codes = run(snp_claims())
    assert (status, codes) == (Tier.AFFIRMING, [])


def test_unregistered_measurement_is_contraindicated_on_executables() -> None:
    baseline, findings, _ = appraise_snp(snp_claims(), {}, Policy(), [])
    assert [f.code for f in findings] == ["REFERENCE_VALUE_MISSING"]
    assert combine(baseline, findings).to_json()["executables"] == 96


def test_debug_and_migration_agent_are_forbidden() -> None:
    decoded = {"debug": True, "migrate_ma": True}
    status, codes = run(snp_claims(policy_decoded=decoded))
    assert status is Tier.CONTRAINDICATED
    assert codes == ["SNP_DEBUG_ALLOWED", "SNP_MIGRATE_MA_ALLOWED"]
    _, codes = run(snp_claims(policy_decoded=decoded), Policy(snp=SnpRules(allow_migrate_ma=True)))
    assert codes == ["SNP_DEBUG_ALLOWED"]


def test_vmpl_tcb_firmware_and_chip_rules() -> None:
    rules = SnpRules(
        allowed_vmpls=(0,),
        minimum_tcb={"bootloader": 3, "snp": 9, "fmc": 1},
        tcb_fields=("reported", "committed"),
        minimum_firmware=(1, 56),
        minimum_build=4,
        allowed_chip_ids=(bytes.fromhex("cd" * 64),),
    )
    status, codes = run(snp_claims(vmpl=2), Policy(snp=rules))
    assert status is Tier.CONTRAINDICATED
    assert codes == [
        "SNP_VMPL_NOT_ALLOWED",
        "SNP_TCB_BELOW_MINIMUM",
        "SNP_TCB_BELOW_MINIMUM",
        "SNP_FIRMWARE_BELOW_MINIMUM",
        "SNP_FIRMWARE_BUILD_BELOW_MINIMUM",
        "SNP_CHIP_ID_NOT_ALLOWED",
    ]
    _, findings = appraise_snp(snp_claims(), {}, Policy(snp=rules), [ref("snp.measurement", MEASUREMENT)])[:2]
    committed = [f for f in findings if f.code == "SNP_TCB_BELOW_MINIMUM"][1]
    assert committed.expected == "bootloader>=3, snp>=9" and committed.actual == "bootloader=2, snp=8"


def test_tcb_minimum_on_an_undecodable_tcb_fails_closed() -> None:
    rules = SnpRules(minimum_tcb={"snp": 1})
    _, codes = run(snp_claims(reported_tcb={"raw": "00" * 8}), Policy(snp=rules))
    assert codes == ["SNP_TCB_BELOW_MINIMUM"]


def test_crl_unavailable_is_fail_closed_by_default_and_warning_when_fail_open() -> None:
    details = {"crl": "unavailable", "crl_reason": "COLLATERAL_OFFLINE"}
    status, codes = run(snp_claims(), details=details)
    assert (status, codes) == (Tier.CONTRAINDICATED, ["SNP_CRL_UNAVAILABLE"])
    status, _ = run(snp_claims(), Policy(snp=SnpRules(crl_fail_open=True)), details=details)
    assert status is Tier.WARNING


def test_optional_reference_kinds_are_checked_when_registered() -> None:
    refs = [ref("snp.measurement", MEASUREMENT), ref("snp.host_data", "ff" * 32)]
    _, findings, _ = appraise_snp(snp_claims(), {}, Policy(), refs)
    assert [(f.code, f.claim) for f in findings] == [("REFERENCE_VALUE_MISMATCH", Claim.CONFIGURATION)]
    assert findings[0].expected == "ff" * 32 and findings[0].actual == "00" * 32


def test_report_data_binding_modes() -> None:
    nonce, key = b"n" * 32, b'{"kty":"EC"}'
    want = hashlib.sha512(nonce + key).hexdigest()
    assert expected_report_data(nonce, key, "sha512").hex() == want
    assert check_binding("snp", {"report_data": want}, nonce, key, "sha512") == []
    (bad,) = check_binding("snp", {"report_data": want}, nonce, b"other", "sha512")
    assert bad.code == "REPORT_DATA_MISMATCH" and bad.actual == want
    raw = nonce.hex() + "00" * 32
    assert check_binding("tdx", {"report_data": raw}, nonce, None, "raw") == []
    assert check_binding("snp", {"report_data": raw}, b"m" * 65, None, "raw")[0].code == "NONCE_MISMATCH"


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
    assert check_binding("snp", {"report_data": want}, None, key, "sha512") == []
    assert check_binding("snp", {"report_data": "00" * 64}, None, key, "sha512")[0].code == "REPORT_DATA_MISMATCH"
    codes = [f.code for f in check_binding("tdx", {"report_data": "00" * 64}, None, key, "raw")]
    assert codes == ["RUNTIME_DATA_NOT_BOUND"]
    assert check_binding("nitro", {"public_key": key.hex()}, None, key, "sha512") == []
    assert check_binding("snp", {}, None, None, "sha512") == []
