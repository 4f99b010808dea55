"""`appraise(..., gpus=...)` of the blocking and asyncio clients (issue 15): composite evidence through a real server
(port 0, SQLite, offline) with an SEV-SNP report of the fake AMD PKI whose REPORT_DATA binds the GPU reports of
fake NVIDIA GPUs (tests/integration/composite_helpers.py `NvidiaWorld`: device PKIs, RIMs, OCSP responses). The
GPUs come back as components gpu0..gpu<N-1> and in the token; a GPU of another session is that GPU's finding;
malformed `gpus` fail before any call, the server's refusals are ClientErrors with its codes; a GPU report alone is
kind "gpu"."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dbfixtures import sqlite_url
from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.nvidia_pki import DEFAULT_NOW
from tests.integration.composite_helpers import MEASUREMENT, NvidiaWorld, WorkloadKey, snp_files, snp_report
from tests.integration.test_grpc_server import running
from tests.property.grpc_harness import ServerThread
from verifier.bootstrap import Components, build
from verifier.client import AsyncVerifierClient, ClientError, VerifierClient, verify_result
from verifier.client.sync import GpuInput, GpuReport, appraise_request
from verifier.clock import FixedClock
from verifier.requests import GpuEvidence
from verifier.settings import Settings
from verifier.storage.migrate import upgrade
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import TrustAnchors

NVIDIA = NvidiaWorld(DEFAULT_NOW, devices=2)


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA, now=DEFAULT_NOW)


@pytest.fixture
def components(tmp_path: Path, amd: FakeAmdPki) -> Iterator[Components]:
    url = sqlite_url(tmp_path)
    upgrade(url)
    settings = Settings(
        database_url=url, development=True, offline=True, listen="127.0.0.1:0", http_listen="off", check_crl=False
    )
    built = build(settings, clock=FixedClock(amd.now))
    built.service.anchors = TrustAnchors(pins={**amd.pins, **NVIDIA.pins})
    built.references.add("snp.measurement", MEASUREMENT, "inference", now=amd.now - dt.timedelta(days=1))
    yield built
    built.close()


@pytest.fixture
def server(components: Components) -> Iterator[ServerThread]:
    thread = ServerThread(components)
    thread.start()
    yield thread
    thread.stop()


def _composite(amd: FakeAmdPki, nonce: bytes, key: WorkloadKey, gpus: list[GpuEvidence]) -> dict[str, Any]:
    """The arguments of a composite appraise whose SNP report binds `gpus`."""
    return {
        "nonce": nonce,
        "runtime_data": key.spki,
        "collateral": snp_files(amd),
        "evidence": snp_report(amd, nonce, key.spki, gpus),
    }


def test_the_blocking_client_appraises_composite_evidence(
    server: ServerThread, components: Components, amd: FakeAmdPki
) -> None:
    key = WorkloadKey()
    with VerifierClient(f"127.0.0.1:{server.port}") as client:
        nonce = client.create_challenge().nonce
        gpus = [NVIDIA.gpu(nonce, device=0), NVIDIA.gpu(nonce, device=1)]
        args = _composite(amd, nonce, key, gpus)
        sent: list[GpuInput] = [GpuReport(gpus[0].evidence, gpus[0].collateral), (gpus[1].evidence, gpus[1].collateral)]
        appraisal = client.appraise("snp", args.pop("evidence"), gpus=sent, **args)
        keys = client.signing_keys()
    assert appraisal.status == "affirming", appraisal.findings
    assert [(c.name, c.tee, c.status) for c in appraisal.components] == [
        ("gpu0", "gpu", "affirming"),
        ("gpu1", "gpu", "affirming"),
    ]
    assert appraisal.components[1].claims["nonce"] == nonce.hex()
    assert appraisal.components[0].claims["driver_version"] == "550.90.07"
    assert appraisal.components[0].trust_vector["executables"] == 2
    assert len(appraisal.components[0].evidence_sha384) == 96
    assert appraisal.findings == ()  # OCSP checked, RIMs matched: nothing to say about any component
    result = verify_result(appraisal.token, keys, expected_nonce=nonce, now=amd.now, min_gpus=2)
    assert [(c.name, c.status) for c in result.components] == [("gpu0", "affirming"), ("gpu1", "affirming")]
    assert result.components[0].verifier_claims["evidence_sha384"] == appraisal.components[0].evidence_sha384


def test_the_asyncio_client_reports_a_gpu_of_another_session(components: Components, amd: FakeAmdPki) -> None:
    key = WorkloadKey()

    async def scenario() -> Any:
        async with running(components) as r, AsyncVerifierClient(f"127.0.0.1:{r.port}") as client:
            old = (await client.create_challenge()).nonce
            nonce = (await client.create_challenge()).nonce
            gpus = [NVIDIA.gpu(nonce, device=0), NVIDIA.gpu(old, device=1)]  # gpu1 signed for another challenge
            args = _composite(amd, nonce, key, gpus)
            evidence = args.pop("evidence")
            return await client.appraise(
                "snp", evidence, gpus=[GpuReport(g.evidence, g.collateral) for g in gpus], **args
            )

    appraisal = asyncio.run(scenario())
    assert appraisal.status == "contraindicated"
    assert [(c.name, c.status) for c in appraisal.components] == [("gpu0", "affirming"), ("gpu1", "contraindicated")]
    codes = {(f["component"], f["code"]) for f in appraisal.findings}
    assert ("gpu1", "GPU_NONCE_MISMATCH") in codes and ("gpu0", "GPU_NONCE_MISMATCH") not in codes


def test_a_gpu_report_alone_is_kind_gpu(server: ServerThread, amd: FakeAmdPki) -> None:
    with VerifierClient(f"127.0.0.1:{server.port}") as client:
        nonce = client.create_challenge().nonce
        gpu = NVIDIA.gpu(nonce)
        appraisal = client.appraise("gpu", gpu.evidence, nonce=nonce, collateral=gpu.collateral)
    assert (appraisal.tee, appraisal.status, appraisal.components) == ("gpu", "affirming", ())
    assert appraisal.claims["nonce"] == nonce.hex()
    assert all(f["component"] == "" for f in appraisal.findings)


def test_the_servers_refusals_are_client_errors(server: ServerThread, amd: FakeAmdPki) -> None:
    gpu = NVIDIA.gpu(b"\x01" * 32)
    with VerifierClient(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(ClientError) as too_many:
            client.appraise("snp", amd.report(), gpus=[(gpu.evidence, {})] * 9)
        with pytest.raises(ClientError) as beside_gpu:
            client.appraise("gpu", gpu.evidence, gpus=[(gpu.evidence, {})])
        with pytest.raises(ClientError) as empty:
            client.appraise("snp", amd.report(), gpus=[GpuReport(b"")])
    assert (too_many.value.code, too_many.value.kind.value) == ("GPU_COUNT_TOO_LARGE", "request")
    assert beside_gpu.value.code == "COMPOSITE_TEE_UNSUPPORTED"
    assert empty.value.code == "GPU_EVIDENCE_EMPTY" and not empty.value.retryable


@pytest.mark.parametrize(
    "gpus",
    [b"report", GpuReport(b"report"), ["report"], [(b"report",)], [("report", {})], [(b"report", [("a", b"b")])]],
)
def test_malformed_gpus_fail_before_any_call(gpus: Any) -> None:
    with pytest.raises(TypeError, match="gpus"):
        appraise_request("snp", b"x", nonce=None, runtime_data=None, collateral=None, policy=None, gpus=gpus)


def test_without_gpus_the_request_is_unchanged() -> None:
    common: dict[str, Any] = {"nonce": b"n" * 32, "runtime_data": b"k", "collateral": {"a": b"b"}, "policy": "p"}
    plain = appraise_request("snp", b"x", **common)
    assert (
        plain == appraise_request("snp", b"x", gpus=(), **common) == appraise_request("snp", b"x", gpus=None, **common)
    )
    assert not plain.gpus and plain.SerializeToString() == appraise_request("snp", b"x", **common).SerializeToString()
    sent = appraise_request("tdx", b"x", gpus=[GpuReport(b"g", {"cert_chain.pem": b"c"}), (b"h", {})], **common)
    assert [(g.evidence, [(f.name, f.content) for f in g.collateral]) for g in sent.gpus] == [
        (b"g", [("cert_chain.pem", b"c")]),
        (b"h", []),
    ]
