"""`verifier verify` with composite evidence (issue 15 item 5): an SEV-SNP report plus `--gpu REPORT --gpu-collateral
DIR` pairs, against a workload manifest requiring two GPUs (`gpus: {min: 2}`), in-process with the fake AMD PKI and
the fake NVIDIA device and RIM PKIs pinned (tests/integration/composite_helpers.py `NvidiaWorld`), the GPU reports
appraised by the real GPU scheme from collateral directories as `verifier verify --tee gpu` reads them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.nvidia_pki import DEFAULT_NOW
from tests.integration.composite_helpers import MEASUREMENT, NvidiaWorld, snp_files
from tests.integration.test_cli import Cli
from verifier.appraisal.binding import composite_report_data
from verifier.clock import to_rfc3339
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import PINNED_ROOTS

NONCE = bytes(range(32))
KEY = (
    b'{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",'
    b'"y":"x_FEzRu9m36HLN_tAJqzhLPMvWQNIs8E9g3AqyWHtco"}'
)


NVIDIA = NvidiaWorld(DEFAULT_NOW)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    pki = FakeAmdPki(Product.GENOA, now=DEFAULT_NOW)
    for vendor, pins in {**pki.pins, **NVIDIA.pins}.items():
        monkeypatch.setitem(PINNED_ROOTS, vendor, pins)
    for name in ("VERIFIER_DATABASE_URL", "VERIFIER_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VERIFIER_OFFLINE", "1")
    (tmp_path / "cpu").mkdir()
    for name, data in snp_files(pki).items():
        (tmp_path / "cpu" / name).write_bytes(data)
    gpus = [NVIDIA.gpu(NONCE, device=0), NVIDIA.gpu(NONCE, device=1), NVIDIA.gpu(b"\xee" * 32, device=2)]
    reports = [g.evidence for g in gpus]
    for index, one in enumerate(gpus):
        (tmp_path / f"gpu{index}").mkdir()
        for name, data in one.collateral.items():
            (tmp_path / f"gpu{index}" / name).write_bytes(data)
        (tmp_path / f"gpu{index}.bin").write_bytes(one.evidence)
    (tmp_path / "snp.bin").write_bytes(pki.report(report_data=composite_report_data(NONCE, KEY, reports[:2])))
    (tmp_path / "spliced.bin").write_bytes(
        pki.report(report_data=composite_report_data(NONCE, KEY, [reports[0], reports[2]]))
    )
    (tmp_path / "inference.yaml").write_text(
        f'workload: inference\ntee: snp\ngpus: {{min: 2}}\nversions:\n  - version: "1"\n'
        f"    values: {{snp.measurement: {MEASUREMENT.hex()}}}\n"
    )
    monkeypatch.chdir(tmp_path)
    yield Cli("", capsys)


def _args(evidence: str, *gpus: int) -> list[str]:
    pairs = [arg for i in gpus for arg in ("--gpu", f"gpu{i}.bin", "--gpu-collateral", f"gpu{i}")]
    return [
        "verify",
        "--tee",
        "snp",
        "--evidence",
        evidence,
        "--collateral",
        "cpu",
        *pairs,
        "--nonce",
        NONCE.hex(),
        "--runtime-data",
        KEY.hex(),
        "--reference-values",
        "inference.yaml",
        "--no-check-crl",
        "--at",
        to_rfc3339(DEFAULT_NOW),
    ]


def test_composite_verify_affirms_with_both_gpus(world: Cli) -> None:
    code, result = world.json(*_args("snp.bin", 0, 1), "--json")
    assert code == 0, result["findings"]
    assert result["status"] == "affirming" and result["workload"]["name"] == "inference"
    assert [(c["name"], c["status"]) for c in result["components"]] == [("gpu0", "affirming"), ("gpu1", "affirming")]
    assert result["components"][0]["claims"]["nonce"] == NONCE.hex()
    code, out, _ = world(*_args("snp.bin", 0, 1))
    assert code == 0 and "gpu1" in out and "affirming (gpu; report SHA-384" in out


def test_composite_verify_refuses_a_spliced_or_stale_gpu(world: Cli) -> None:
    code, result = world.json(*_args("spliced.bin", 0, 2), "--json", "--detailed-exitcode")
    assert code == 2 and result["status"] == "contraindicated"
    codes = [(f.get("component"), f["code"]) for f in result["findings"]]
    assert ("gpu1", "GPU_NONCE_MISMATCH") in codes  # another session's report
    code, result = world.json(*_args("snp.bin", 0), "--json")  # one GPU: the workload wants two
    assert code == 2 and "WORKLOAD_GPUS_INSUFFICIENT" in [f["code"] for f in result["findings"]]
    code, result = world.json(*_args("snp.bin", 1, 0), "--json")  # REPORT_DATA names them in the other order
    assert code == 2 and "COMPOSITE_BINDING_MISMATCH" in [f["code"] for f in result["findings"]]


def test_gpu_flags_go_in_pairs(world: Cli) -> None:
    code, _, err = world("verify", "--tee", "snp", "--evidence", "snp.bin", "--gpu", "gpu0.bin")
    assert code == 64 and "--gpu and --gpu-collateral go in pairs" in err
