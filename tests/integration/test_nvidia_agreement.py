"""Agreement with NVIDIA's own verifier (issue 15): nv-local-gpu-verifier 2.7.3, a test-only reference living in its
own venv (.venv-nvidia: it pins cryptography 43, signxml 3.2, PyJWT 2.7), run offline by
tests/nvidia_reference/nv_reference.py on every shared GPU vector (and every extra RIM of the manifest).

Per vector and RIM pair: NVIDIA's answer equals the manifest's (evidence verdict, parsed facts, per-RIM signature /
chain / version, pass/fail/not-covered per SPDM measurement block), and OUR answer (verifier.tee.gpu's verifier and
`verify_rim`, `verifier.appraisal.gpu_rim.compare_rims`) equals NVIDIA's. Skipped with the reason when .venv-nvidia
is absent, unless VERIFIER_REQUIRE_NVIDIA_REFERENCE=1 (then a failure).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.nvidia_reference import harness

VECTORS = manifest_vectors("gpu")
SAMPLE_2023 = "gpu-hopper-nvidia-sample-2023"
SAMPLE_2025 = "gpu-hopper-nvidia-sample-2025"
TOOL_SELF_TEST_NONCE = "4cff7f5380ead8fad8ec2c531c110aca4302a88f603792801a8ca29ee151af2e"  # config.BaseSettings.NONCE
# (vector, VBIOS RIM file): the shipped pair, plus each extra RIM the manifest appraises (vbios_rim_prod.xml)
RUNS = [(v, "vbios_rim.xml") for v in VECTORS] + [
    (v, extra["file"]) for v in VECTORS for extra in (v["expected"].get("rim_results") or {}).get("extra", [])
]
IDS = [v["id"] if f == "vbios_rim.xml" else f"{v['id']}+{f}" for v, f in RUNS]
# Cross pairs (no manifest expectation: NVIDIA vs ours only): the only public RIM pair (the 2023 sample's, driver
# 545.00 / VBIOS 96.00.5E.00.01) against every other distinct report, so that mismatching blocks and version
# mismatches are compared too, not only the one report the RIMs are for.
_OWNER = next((v for v in VECTORS if v["id"] == SAMPLE_2023), None)
_SEEN = {_OWNER["files"]["evidence.bin"]["sha256"]} if _OWNER else set()
CROSS = []
for _v in VECTORS:
    if _OWNER and _v["files"]["evidence.bin"]["sha256"] not in _SEEN:
        _SEEN.add(_v["files"]["evidence.bin"]["sha256"])
        CROSS.append(_v)


@pytest.fixture(scope="module", autouse=True)
def _nvidia_reference() -> None:
    reason = harness.nvidia_missing()
    if reason is None:
        return
    if os.environ.get(harness.REQUIRE_ENV) == "1":
        pytest.fail(f"{harness.REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@functools.cache
def _nvidia(folder: Path, at: str | None, nonce: str | None, driver: Path | None, vbios: Path | None) -> dict[str, Any]:
    return harness.run_nvidia(folder, at, nonce=nonce, driver_rim=driver, vbios_rim=vbios)


def _nvidia_for(vectors_dir: Path, vector: dict[str, Any], vbios_file: str = "vbios_rim.xml") -> dict[str, Any]:
    folder = vectors_dir / vector["dir"]
    nonce = vector["expected"]["expected_nonce"]
    return _nvidia(folder, vector["verify_at"], nonce, folder / "driver_rim.xml", folder / vbios_file)


def _vector(vector_id: str) -> dict[str, Any]:
    return next(v for v in VECTORS if v["id"] == vector_id)


@pytest.mark.parametrize(("vector", "vbios_file"), RUNS, ids=IDS)
def test_nvidia_agrees_with_the_manifest(vectors_dir: Path, vector: dict[str, Any], vbios_file: str) -> None:
    result = _nvidia_for(vectors_dir, vector, vbios_file)
    assert result["network_attempts"] == []
    theirs, manifest = harness.nvidia_side(result), harness.manifest_side(vector, vbios_file)
    assert theirs.evidence_valid == manifest.evidence_valid, result.get("flow")
    assert theirs.facts == manifest.facts
    for kind, expected in manifest.rims.items():
        assert {k: theirs.rims[kind][k] for k in expected} == expected, kind
    assert set(theirs.rims) == set(manifest.rims)
    assert theirs.blocks == manifest.blocks


@pytest.mark.parametrize(("vector", "vbios_file"), RUNS, ids=IDS)
def test_our_facts_rims_and_blocks_agree_with_nvidia(
    vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any], vbios_file: str
) -> None:
    missing = harness.our_modules_missing()
    if missing:
        pytest.skip(missing)
    theirs = harness.nvidia_side(_nvidia_for(vectors_dir, vector, vbios_file))
    folder = vectors_dir / vector["dir"]
    rims = {"driver": folder / "driver_rim.xml", "vbios": folder / vbios_file}
    ours = harness.Ours(trust_anchors_dir).side(folder, vector, rims)
    _assert_same(ours, theirs)


@pytest.mark.parametrize("vector", CROSS, ids=[v["id"] for v in CROSS])
def test_the_2023_rims_on_other_reports_agree_with_nvidia(
    vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]
) -> None:
    missing = harness.our_modules_missing()
    if missing:
        pytest.skip(missing)
    owner = vectors_dir / _vector(SAMPLE_2023)["dir"]
    rims = {"driver": owner / "driver_rim.xml", "vbios": owner / "vbios_rim.xml"}
    folder = vectors_dir / vector["dir"]
    result = _nvidia(folder, vector["verify_at"], vector["expected"]["expected_nonce"], rims["driver"], rims["vbios"])
    assert result["measurements"]["ran"] and result["network_attempts"] == []
    theirs = harness.nvidia_side(result)
    ours = harness.Ours(trust_anchors_dir).side(folder, vector, rims)
    _assert_same(ours, theirs)
    if vector["facts"]["measurements"] != _vector(SAMPLE_2023)["facts"]["measurements"]:
        assert "fail" in theirs.blocks.values()  # the pair really compares mismatching blocks


def _assert_same(ours: harness.Side, theirs: harness.Side) -> None:
    assert ours.facts == theirs.facts
    assert {k: r["verified"] for k, r in ours.rims.items()} == {k: r["verified"] for k, r in theirs.rims.items()}
    for kind, rim in ours.rims.items():
        if "version_matches" in rim:
            assert rim["version_matches"] == theirs.rims[kind]["version_matches"], kind
    assert ours.blocks == theirs.blocks  # same pass / fail / not-covered per SPDM measurement block


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_our_evidence_verdict_and_claims_agree_with_nvidia(
    vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]
) -> None:
    """GpuVerifier (RIMs sent as collateral, as the CLI does) against NVIDIA: the evidence verdict, the claims, which
    RIMs verified, and compare_rims over the RIMs GpuVerifier verified (the appraiser's path)."""
    missing = harness.our_modules_missing(verifier=True)
    if missing:
        pytest.skip(missing)
    theirs = harness.nvidia_side(_nvidia_for(vectors_dir, vector))
    folder = vectors_dir / vector["dir"]
    rims = {"driver": folder / "driver_rim.xml", "vbios": folder / "vbios_rim.xml"}
    ours = harness.Ours(trust_anchors_dir)
    valid, verified = ours.evidence_valid(folder, vector, rims)
    assert valid == theirs.evidence_valid, verified.failure
    if verified.parsed is None:
        # our parser is stricter (SPDMVersion 0x11 in request and response, codes, Param1/Param2): it refuses
        # what NVIDIA's parses, only for evidence both call invalid (the tampered 2023 sample: request 0x10)
        assert theirs.facts is not None and not theirs.evidence_valid
        assert vector["expected"]["verdict"] == "invalid"
        return
    assert {k: verified.claims.get(k) for k in harness.FACT_KEYS} == theirs.facts
    if verified.facts is None:  # verification stopped before the RIMs (the chain-negative vectors)
        assert not valid
        return
    outcomes = {"driver": verified.facts.driver, "vbios": verified.facts.vbios}
    assert {k: outcomes[k].rim is not None for k in theirs.rims} == {k: r["verified"] for k, r in theirs.rims.items()}
    if theirs.rims:
        comparison = ours.compare(verified.parsed, outcomes["driver"].rim, outcomes["vbios"].rim)
        assert harness.our_blocks(comparison, vector["facts"]["number_of_blocks"]) == theirs.blocks


def test_nvidia_runs_offline_with_only_the_documented_patches(vectors_dir: Path) -> None:
    vector = _vector(SAMPLE_2023)
    result = _nvidia_for(vectors_dir, vector)
    assert result["tool"]["nv-local-gpu-verifier"] == "2.7.3"
    assert result["tool"]["signxml"].startswith("3.")
    assert "site-packages" in result["module"]
    assert len(result["patched"]) == 6 and result["network_attempts"] == []
    # OCSP was asked about the two RIM signing chains only (the device chain's OCSP step is not called), and each
    # chain ends at NVIDIA's pinned RIM root, which the tool substitutes for the RIM's own last certificate
    assert [c["mode"] for c in result["ocsp_calls"]] == ["DRIVER_RIM_CERT", "VBIOS_RIM_CERT"]
    assert all(c["chain"][-1].startswith("CN=NVIDIA CoRIM signing Root CA") for c in result["ocsp_calls"])
    # with OCSP unchecked the tool's own overall status stays False although every other check passed
    assert result["flow"] == {"stopped_at": None, "check_status": False}


def test_nvidia_with_the_real_clock_refuses_the_expired_rim_signers(vectors_dir: Path) -> None:
    """Why the clock is pinned: the RIM signer certificates expired in 2025-06, so today NVIDIA's tool (like ours at
    the same time) cannot use these RIMs at all."""
    vector = _vector(SAMPLE_2023)
    folder = vectors_dir / vector["dir"]
    nonce = vector["expected"]["expected_nonce"]
    result = _nvidia(folder, None, nonce, folder / "driver_rim.xml", folder / "vbios_rim.xml")
    for kind in ("driver", "vbios"):
        rim = result["rims"][kind]
        assert (rim["chain_ok"], rim["signature_ok"], rim["verify_ok"]) == (False, False, False), rim
    assert result["flow"]["stopped_at"] == "driver_rim"


def test_nvidia_self_test_nonce_does_not_match_its_own_sample(vectors_dir: Path) -> None:
    """The tool's --test_no_gpu nonce is the 2023 sample's, but it ships the 2025 sample: its self-test cannot pass."""
    vector = _vector(SAMPLE_2025)
    result = _nvidia(vectors_dir / vector["dir"], vector["verify_at"], TOOL_SELF_TEST_NONCE, None, None)
    assert result["report"]["signature"] is True
    assert result["report"]["nonce"] is False
    assert result["report"]["error"].startswith("NonceMismatchError")
    assert result["facts"]["nonce"] == vector["expected"]["expected_nonce"] != TOOL_SELF_TEST_NONCE
