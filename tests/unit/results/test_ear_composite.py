"""Composite EARs (issue 15 item 4): one submodule per component (the CPU TEE's, then gpu0..gpu7), the top-level
status the worst of all, and every token under 8 KB with eight GPUs even when every one of them fails every
measurement block (ear_size rule 3)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.integration.composite_helpers import snp_files
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Appraisal, Claim, Finding, combine
from verifier.appraisal.registry import get_scheme
from verifier.client import verify_result
from verifier.evaluation import Component
from verifier.results.ear import encode_ear
from verifier.results.ear_size import MAX_PAYLOAD, TOKEN_LIMIT, payload_size, structure_digest
from verifier.results.keys import claims_json, ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.tee.base import VerifyContext
from verifier.tee.sevsnp.tcb import Product

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
JWK = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x" * 43}
SIGNER = ResultSigner([ephemeral_key()])
WORKLOAD = {"name": "inference", "version": "2026.06", "id": "0" * 36, "policy": "default", "status": "affirming"}


def _hex(label: str, size: int) -> str:
    return hashlib.shake_256(label.encode()).hexdigest(size)


def gpu_claims(index: int) -> dict[str, Any]:
    """Claims shaped as the real GPU verifier's on the NVIDIA 2025 sample (tee/gpu/claims.py), values made up."""
    return {
        "nonce": _hex("nonce", 32), "response_nonce": _hex(f"r{index}", 32), "spdm_version": "1.1",
        "number_of_blocks": 64, "vbios_version": "96.00.9f.00.01", "board_id": "b1030000", "chip_sku": "882",
        "chip_sku_mod": "0", "project": "1010", "project_sku": "0200", "project_sku_mod": "",
        "driver_version": "550.90.07", "gpu_info": "8001000000000000", "measurement_counts": [1] * 64,
        "cpr_info": "00c00100", "nvdec0_status": "55", "fwid": _hex(f"fwid{index}", 48),
        "protected_pcie_status": "55", "architecture": "hopper", "gpu_arch": "hopper",
        "ueid": str(478176379286082186618948445787393647364802107249 + index), "chip": "GH100",
        "hwmodel": "GH100 A01 GSP BROM", "measurements": {str(i): _hex(f"m{index}.{i}", 48) for i in range(1, 65)},
    }  # fmt: skip


def _mismatch(block: int) -> Finding:
    return Finding(
        "GPU_MEASUREMENT_MISMATCH",
        Claim.EXECUTABLES,
        CONTRAINDICATED,
        f"SPDM block {block} (RIM index {block - 1}) is none of the RIM's alternatives",
        " | ".join(_hex(f"alt{block}.{k}", 48) for k in range(3)),
        _hex(f"actual{block}", 48),
    )


def component(index: int, findings: list[Finding] | None = None, baseline_value: int = AFFIRMING) -> Component:
    baseline = {c: baseline_value for c in (Claim.INSTANCE_IDENTITY, Claim.HARDWARE, Claim.EXECUTABLES)}
    vector = combine(baseline, findings or [])
    collateral = tuple(
        {"item": item, "number": None, "issued": "2025-01-01T00:00:00Z", "next_update": None, "source": "request"}
        for item in ("nvidia.cert_chain", "nvidia.driver_rim", "nvidia.vbios_rim", "nvidia.ocsp")
    )
    appraisal = Appraisal(
        "gpu", vector.status, vector, gpu_claims(index), tuple(findings or ()), "default", (), (), collateral, "checked"
    )
    return Component(f"gpu{index}", appraisal, _hex(f"report{index}", 48))


@pytest.fixture(scope="module")
def snp_claims() -> dict[str, Any]:
    pki = FakeAmdPki(Product.GENOA)
    context = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=snp_files(pki), check_crl=False)
    verified = get_scheme("snp").verifier.verify(pki.report(report_data=b"\x5a" * 64), context)
    assert verified.failure is None
    return dict(verified.claims)


def cpu(claims: dict[str, Any], findings: tuple[Finding, ...] = ()) -> Appraisal:
    baseline = {c: AFFIRMING for c in (Claim.INSTANCE_IDENTITY, Claim.HARDWARE, Claim.CONFIGURATION, Claim.EXECUTABLES)}
    vector = combine(baseline, list(findings))
    matched = tuple(f"snp.measurement:inference:{_hex(str(i), 18)}" for i in range(2))
    collateral = tuple({"item": f"amd.{n}", "source": "request"} for n in ("vcek", "cert_chain", "crl"))
    return Appraisal("snp", vector.status, vector, claims, findings, "default", matched, ("inference",), collateral,
                     "checked", WORKLOAD, (WORKLOAD,))  # fmt: skip


def token(appraisal: Appraisal, components: list[Component]) -> tuple[str, dict[str, Any]]:
    """Signed as the service signs (the JSON `encode_ear` measured last); it must be the claims' JSON, cuts and all."""
    encoded = encode_ear(
        appraisal,
        issuer="tee-verifier",
        issued_at=AT,
        lifetime=dt.timedelta(minutes=5),
        nonce=b"\x07" * 32,
        token_id="t" * 32,
        verifier_build="0.1.0",
        cnf_jwk=JWK,
        policy_sha256=_hex("policy", 32),
        reference_set_version=12,
        components=components,
    )
    assert encoded.payload == claims_json(encoded.claims)
    signed = SIGNER.sign(encoded.claims, payload=encoded.payload)
    assert signed.split(".")[:2] == SIGNER.sign(encoded.claims).split(".")[:2]
    return signed, encoded.claims


def test_eight_affirming_gpus_fit_and_keep_their_status(snp_claims: dict[str, Any]) -> None:
    signed, claims = token(cpu(snp_claims), [component(i) for i in range(8)])
    assert len(signed) < TOKEN_LIMIT and payload_size(claims) <= MAX_PAYLOAD
    assert list(claims["submods"]) == ["snp", *(f"gpu{i}" for i in range(8))]
    assert claims["ear_status"] == "affirming" and claims["cnf"]["jwk"] == JWK
    snp = claims["submods"]["snp"]["ear_verifier_claims"]
    assert snp["workload"] == WORKLOAD and snp["policy_sha256"] == _hex("policy", 32)
    for i in range(8):
        gpu = claims["submods"][f"gpu{i}"]
        assert gpu["ear_status"] == "affirming" and gpu["ear_trustworthiness_vector"]["executables"] == AFFIRMING
        assert gpu["ear_verifier_claims"]["evidence_sha384"] == _hex(f"report{i}", 48)
        assert gpu["ear_appraisal_policy_ids"] == ["default"]
    result = verify_result(signed, SIGNER.jwks(), now=AT, min_gpus=8)
    assert result.raw == json.loads(json.dumps(claims)) and len(result.components) == 8


def test_eight_failing_gpus_fit_with_the_statuses_intact(snp_claims: dict[str, Any]) -> None:
    findings = tuple(_mismatch(b) for b in range(1, 21))
    components = [component(i, [_mismatch(b) for b in range(1, 65)]) for i in range(8)]
    signed, claims = token(cpu(snp_claims, findings), components)
    assert len(signed) < TOKEN_LIMIT and payload_size(claims) <= MAX_PAYLOAD, len(signed)
    assert claims["ear_status"] == "contraindicated"
    for name, submod in claims["submods"].items():
        assert submod["ear_status"] == "contraindicated", name
        extra = submod["ear_verifier_claims"]
        assert extra["findings"][0]["code"] == "GPU_MEASUREMENT_MISMATCH"
        assert extra["findings_omitted"] == (20 if name == "snp" else 64) - len(extra["findings"])
        assert "findings" in extra["abridged"]
    assert claims["submods"]["snp"]["ear_verifier_claims"]["workload"] == WORKLOAD  # never cut


def test_one_gpu_keeps_its_claims_with_the_measurements_as_a_digest(snp_claims: dict[str, Any]) -> None:
    one = component(0)
    _, claims = token(cpu(snp_claims), [one])
    gpu = claims["submods"]["gpu0"]
    assert gpu["ear_attester_claims"]["driver_version"] == "550.90.07"
    assert "measurements" not in gpu["ear_attester_claims"]
    assert gpu["ear_attester_claims"]["measurements_sha256"] == structure_digest(one.appraisal.claims["measurements"])
    assert gpu["ear_verifier_claims"]["abridged"] == ["large_attester_claims"]
    assert claims["submods"]["snp"]["ear_attester_claims"]["measurement"] == snp_claims["measurement"]
    assert "abridged" not in claims["submods"]["snp"]["ear_verifier_claims"]


@pytest.mark.parametrize(("gpu_value", "status"), [(WARNING_UNSAFE, "warning"), (0, "none"), (99, "contraindicated")])
def test_the_top_level_status_is_the_worst(snp_claims: dict[str, Any], gpu_value: int, status: str) -> None:
    _, claims = token(cpu(snp_claims), [component(0), component(1, baseline_value=gpu_value)])
    assert claims["ear_status"] == status
    assert claims["submods"]["snp"]["ear_status"] == claims["submods"]["gpu0"]["ear_status"] == "affirming"
    assert claims["submods"]["gpu1"]["ear_status"] == status
