"""Every NVIDIA GPU vector of ../shared/vectors (tee "gpu"): parsed to the manifest's facts, verified to its verdict
(`expected.verdict`: parsing, signature, chain, FWID, nonce), appraised against the RIMs it ships
(`expected.rim_results`), and through the `verifier verify` command line as check_vectors.py runs it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import manifest_vectors, vector_ids
from tests.dbfixtures import sqlite_url
from tests.integration.test_cli import Cli
from verifier.appraisal import gpu as gpu_appraisal
from verifier.appraisal.model import Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.policy_model import GpuRules
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.gpu import claims as gpu_claims
from verifier.tee.gpu import fwid, spdm
from verifier.tee.gpu.verify import GpuVerifier
from verifier.trust.anchors import TrustAnchors
from verifier.trust.certs import load_pem_certificates

VECTORS = manifest_vectors("gpu")
IDS = vector_ids("gpu")
EXPECTED_FAILURE = {
    "gpu-hopper-nvidia-sample-2025-chain-root-only": "GPU_CERT_CHAIN_LENGTH",
    "gpu-hopper-nvidia-sample-2025-chain-no-ica": "GPU_CERT_CHAIN_LENGTH",
    "gpu-hopper-nvidia-sample-2025-chain-no-leaf": "GPU_CERT_CHAIN_LENGTH",
    "gpu-hopper-nvidia-sample-2023-tampered": "GPU_SPDM_VERSION_UNSUPPORTED",
    "gpu-hopper-nvidia-sample-2023-chain-no-brom": "GPU_CERT_CHAIN_LENGTH",
}
BEST_EFFORT = Policy(gpu=GpuRules(ocsp="best-effort"))
RIM_FILES = ("driver_rim.xml", "vbios_rim.xml")


def _at(vector: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


def _files(folder: Path, names: tuple[str, ...] = ("cert_chain.pem", *RIM_FILES)) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in names if (folder / name).is_file()}


def _verify(vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path, **replace: bytes) -> VerifiedEvidence:
    folder = vectors_dir / vector["dir"]
    ctx = VerifyContext(
        at=_at(vector),
        anchors=TrustAnchors.from_directory(trust_anchors_dir),
        collateral={**_files(folder), **replace},
    )
    return GpuVerifier().verify((folder / "evidence.bin").read_bytes(), ctx)


def _report_facts(report: spdm.SpdmReport) -> dict[str, Any]:
    request, response = report.request, report.response
    return {
        "request_spdm_version": f"{request.version:02x}",
        "request_code": f"{request.code:02x}",
        "request_param1": request.param1,
        "request_param2": request.param2,
        "slot_id": request.slot_id,
        "response_spdm_version": f"{response.version:02x}",
        "response_code": f"{response.code:02x}",
        "response_param1": response.param1,
        "response_param2": response.param2,
        "measurement_record_length": response.record_length,
        "opaque_length": response.opaque_length,
        "opaque_offset": report.opaque_offset,
        "signature_offset": report.signature_offset,
        "signed_bytes_length": len(report.signed_bytes),
        "report_length": len(report.raw),
        "trailing_bytes_after_signature": 0,
        "signature_r": response.signature[:48].hex(),
        "signature_s": response.signature[48:].hex(),
        "opaque_fields": [f"{f.type}:{f.name}:{len(f.value)}" for f in response.opaque.fields],
        "opaque_values_hex": {str(f.type): f.value.hex() for f in response.opaque.fields},
        "vbios_version_raw": (response.opaque.get(6) or b"").hex(),
        "measurement_dmtf_value_types": sorted({b.value_type for b in response.blocks}),
    }


def _chain_facts(folder: Path) -> dict[str, Any]:
    chain = load_pem_certificates((folder / "cert_chain.pem").read_bytes(), "chain", max_count=8)
    found = fwid.leaf_fwid(chain[0])
    return {
        "cert_chain_length": len(chain),
        "cert_chain_root_sha256": hashlib.sha256(chain[-1].public_bytes(Encoding.DER)).hexdigest(),
        "leaf_serial_decimal": str(chain[0].serial_number),
        "hwmodel": gpu_claims.common_name(chain[1]) if len(chain) > 1 else None,
        "leaf_fwid_extension_oid": found.oid if found else None,
        "leaf_fwid": found.fwid.hex() if found else None,
    }


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_vector_parses_to_its_facts(vector: dict[str, Any], vectors_dir: Path) -> None:
    folder = vectors_dir / vector["dir"]
    raw = (folder / "evidence.bin").read_bytes()
    report = spdm.decode(raw)
    assert spdm.encode(report) == raw
    chain = load_pem_certificates((folder / "cert_chain.pem").read_bytes(), "chain", max_count=8)
    claims = json.loads(json.dumps(gpu_claims.claims(report, chain)))
    derived = {**_report_facts(report), **_chain_facts(folder), **claims}
    facts = vector["facts"]
    compared = [name for name in facts if name in derived]
    assert {name: derived[name] for name in compared} == {name: facts[name] for name in compared}
    assert len(compared) >= 45, sorted(set(facts) - set(compared))
    assert claims["architecture"] == facts["gpu_arch"] and ("fwid" in claims) == ("fwid" in facts)


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_vector_gets_its_verdict(vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path) -> None:
    verified = _verify(vector, vectors_dir, trust_anchors_dir)
    if vector["expected"]["verdict"] == "valid":
        assert verified.failure is None
        nonce = bytes.fromhex(vector["expected"]["expected_nonce"])
        binding = gpu_appraisal.SpdmNonceBinding()
        assert binding.check(verified.claims, nonce, None, "sha512") == []
        other = [f.code for f in binding.check(verified.claims, bytes(32), None, "sha512")]
        assert other == ["NONCE_MISMATCH"]  # any other expected nonce is invalid (expected.also)
    else:
        assert verified.failure is not None and verified.failure.code == EXPECTED_FAILURE[vector["id"]]
        baseline, findings, _ = gpu_appraisal.appraise(verified, BEST_EFFORT, [], _at(vector))
        assert baseline == {} and [f.code for f in findings] == ["GPU_EVIDENCE_UNVERIFIED"]


def _appraise(verified: VerifiedEvidence, at: dt.datetime) -> tuple[Tier, list[Any]]:
    baseline, findings, _ = gpu_appraisal.appraise(verified, BEST_EFFORT, [], at)
    return combine(baseline, findings).status, findings


def test_the_2023_sample_matches_its_rims_and_not_the_production_vbios_rim(
    vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    vector = next(v for v in VECTORS if v["id"] == "gpu-hopper-nvidia-sample-2023")
    verified = _verify(vector, vectors_dir, trust_anchors_dir)
    assert verified.failure is None and verified.incomplete is None
    status, findings = _appraise(verified, _at(vector))
    assert status is Tier.AFFIRMING and [f.code for f in findings] == ["GPU_REVOCATION_UNCHECKED"]
    prod = (vectors_dir / vector["dir"] / "vbios_rim_prod.xml").read_bytes()
    status, findings = _appraise(
        _verify(vector, vectors_dir, trust_anchors_dir, **{"vbios_rim.xml": prod}), _at(vector)
    )
    mismatched = [f for f in findings if f.code == "GPU_MEASUREMENT_MISMATCH"]
    expected = vector["expected"]["rim_results"]["extra"][0]["mismatched"]
    assert status is Tier.CONTRAINDICATED and len(mismatched) == len(expected) == 4
    for finding, want in zip(mismatched, expected, strict=True):
        assert f"block {want['spdm_index']} (RIM index {want['rim_index']}, vbios RIM)" in finding.message
        assert (finding.actual, finding.expected) == (want["report"], " | ".join(want["rim_alternatives"]))
    later = VerifyContext(
        at=dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
        anchors=TrustAnchors.from_directory(trust_anchors_dir),
        collateral=_files(vectors_dir / vector["dir"]),
    )
    expired = GpuVerifier().verify((vectors_dir / vector["dir"] / "evidence.bin").read_bytes(), later)
    status, findings = _appraise(expired, later.at)  # the RIM signers expired 2025-06-22/26 (expected.also)
    assert status is Tier.CONTRAINDICATED and [f.code for f in findings][-2:] == ["GPU_RIM_CHAIN_INVALID"] * 2


def test_a_rim_of_one_kind_given_as_the_other_is_a_version_mismatch(vectors_dir: Path, trust_anchors_dir: Path) -> None:
    vector = next(v for v in VECTORS if v["id"] == "gpu-hopper-nvidia-sample-2023")
    folder = vectors_dir / vector["dir"]
    swapped = {"driver_rim.xml": (folder / "vbios_rim.xml").read_bytes()}
    status, findings = _appraise(_verify(vector, vectors_dir, trust_anchors_dir, **swapped), _at(vector))
    assert status is Tier.CONTRAINDICATED and "GPU_RIM_VERSION_MISMATCH" in [f.code for f in findings]


# --- the command line, as ../shared/tools/check_vectors.py runs it ------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    url = sqlite_url(tmp_path)  # nothing GPU-specific is stored: SQLite only
    monkeypatch.setenv("VERIFIER_DATABASE_URL", url)
    runner = Cli(url, capsys)
    assert runner("db", "upgrade")[0] == 0
    return runner


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_gpu_vector_through_the_cli(
    cli: Cli, vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path, tmp_path: Path
) -> None:
    folder, collateral = vectors_dir / vector["dir"], tmp_path / "collateral"
    collateral.mkdir()
    for name, data in _files(folder).items():
        (collateral / name).write_bytes(data)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"policies": [{"id": "vector-check", "gpu": {"ocsp": "best-effort"}}]}))
    args = ["verify", "--tee", "gpu", "--evidence", str(folder / "evidence.bin"), "--collateral", str(collateral)]
    args += ["--offline", "--trust-anchors", str(trust_anchors_dir), "--at", vector["verify_at"], "--json"]
    code, result = cli.json(*args, "--policy-file", str(policy), "--policy", "vector-check")
    facts = vector["facts"]
    for name in ("nonce", "driver_version", "vbios_version", "number_of_blocks", "fwid", "measurements"):
        assert result["claims"].get(name) == facts.get(name), name
    rims = all((collateral / name).is_file() for name in RIM_FILES)
    if vector["id"] in EXPECTED_FAILURE:
        assert code == 2 and result["findings"][0]["code"] == EXPECTED_FAILURE[vector["id"]]
    elif rims:
        assert code == 0 and result["status"] == "affirming", result["findings"]
    else:  # no RIM offline: incomplete, never affirming
        assert code == 3 and result["incomplete"] == "COLLATERAL_OFFLINE" and result["status"] == "contraindicated"
        assert [f["code"] for f in result["findings"]] == [
            "GPU_REVOCATION_UNCHECKED",
            "GPU_RIM_MISSING",
            "GPU_RIM_MISSING",
        ]
    code, result = cli.json(*args)  # the default policy requires OCSP: offline it fails closed
    if vector["id"] not in EXPECTED_FAILURE:
        assert code in (2, 3) and "GPU_OCSP_UNAVAILABLE" in [f["code"] for f in result["findings"]]
