"""SEV-SNP end to end: the CLI on every real vector, KDS through the shared cache (one fetch for concurrent
appraisals), offline behaviour, and an appraisal over the real gRPC server."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import manifest_vectors, vector_ids
from tests.fakes.kds_server import FakeKds
from tests.integration.test_cli import Cli
from verifier.appraisal.model import Tier
from verifier.bootstrap import build
from verifier.client import verify_result
from verifier.clock import FixedClock, parse_rfc3339
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

EXPECTED_FAILURE = {
    "snp-milan-v2-vcek-azure-constellation-truncated": "SNP_REPORT_TRUNCATED",
    "snp-milan-v3-vlek-aws-constellation-sigtampered": "SNP_SIGNATURE_INVALID",
}
BYTE_FACTS = (
    "measurement",
    "report_data",
    "host_data",
    "chip_id",
    "id_key_digest",
    "author_key_digest",
    "family_id",
    "image_id",
    "report_id",
)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_OFFLINE", "1")  # everything must come from the vector folder
    runner = Cli(database_url, capsys)
    assert runner("db", "upgrade")[0] == 0
    return runner


def _debug(vector: dict[str, Any]) -> bool:
    return bool(int(vector["facts"].get("policy", "0x0"), 16) >> 19 & 1)


@pytest.mark.parametrize("vector", manifest_vectors("snp"), ids=vector_ids("snp"))
def test_every_snp_vector_through_the_cli(
    cli: Cli, vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    folder = vectors_dir / vector["dir"]
    args = [
        "verify",
        "--tee",
        "snp",
        "--evidence",
        str(folder / "evidence.bin"),
        "--collateral",
        str(folder),
        "--trust-anchors",
        str(trust_anchors_dir),
        "--at",
        vector["verify_at"],
        "--json",
    ]
    code, result = cli.json(*args)
    assert code == 2
    facts = vector["facts"]
    if vector["id"] in EXPECTED_FAILURE:
        assert result["findings"][0]["code"] == EXPECTED_FAILURE[vector["id"]]
        assert result["status"] == "contraindicated"
        return
    for name in BYTE_FACTS:
        assert result["claims"][name] == facts[name], name
    for name in ("version", "guest_svn", "vmpl"):
        assert result["claims"][name] == facts[name]
    assert result["claims"]["product"] == vector["what"]["processor_family"]
    assert result["trust_vector"]["executables"] == 96  # no approved measurement yet
    assert cli("refs", "add", "snp.measurement", facts["measurement"], "--label", vector["id"])[0] == 0
    # Revocation is checked by default: offline and without an AMD CRL in the folder it fails closed.
    code, result = cli.json(*args)
    debug = ["SNP_DEBUG_ALLOWED"] if _debug(vector) else []
    assert code == 2 and [f["code"] for f in result["findings"]] == [*debug, "SNP_CRL_UNAVAILABLE"]
    code, result = cli.json(*args, "--no-check-crl")
    if _debug(vector):
        assert code == 2 and [f["code"] for f in result["findings"]] == ["SNP_DEBUG_ALLOWED"]
    else:
        assert code == 0, result["findings"]
        assert result["status"] == "affirming"


def test_offline_without_collateral_exits_3(cli: Cli, vectors_dir: Path) -> None:
    """No VCEK anywhere: as for TDX, the incomplete result is printed (never affirming) and the exit code is 3."""
    vector = next(v for v in manifest_vectors("snp") if v["id"] == "snp-genoa-v5-vcek-oak")
    args = [
        "verify",
        "--tee",
        "snp",
        "--evidence",
        str(vectors_dir / vector["dir"] / "evidence.bin"),
        "--at",
        vector["verify_at"],
        "--offline",
    ]
    code, out, err = cli(*args)
    assert code == 3 and "COLLATERAL_OFFLINE" in err
    assert "COLLATERAL_OFFLINE: collateral unavailable, the appraisal is incomplete" in err
    assert out.split()[:2] == ["status", "contraindicated"] and "COLLATERAL_OFFLINE" in out
    code, result = cli.json(*args, "--json")
    assert code == 3 and result["incomplete"] == "COLLATERAL_OFFLINE"
    assert result["status"] == "contraindicated"
    assert [f["code"] for f in result["findings"]] == ["COLLATERAL_OFFLINE"]
    assert result["claims"]["measurement"] == vector["facts"]["measurement"]


def test_concurrent_appraisals_for_one_chip_fetch_the_vcek_once(
    db: Database, database_url: str, vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    vector = next(v for v in manifest_vectors("snp") if v["id"] == "snp-milan-v3-vcek-oak-rk")
    evidence = (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()
    with FakeKds() as kds:
        targets = kds.add_amd_vectors(vectors_dir, trust_anchors_dir)
        # The real ARK's CRL cannot be served here (no recorded AMD CRL is valid at the vectors' times).
        settings = Settings(database_url=database_url, development=True, amd_kds_url=kds.url, check_crl=False)
        components = build(settings, clock=FixedClock(parse_rfc3339(vector["verify_at"])))
        components.references.add(
            "snp.measurement",
            bytes.fromhex(vector["facts"]["measurement"]),
            "rk",
            now=parse_rfc3339(vector["verify_at"]) - dt.timedelta(days=1),
        )
        results: list[Any] = []
        barrier = threading.Barrier(8)

        def appraise() -> None:
            barrier.wait()
            results.append(components.service.appraise(AppraisalRequest(tee="snp", evidence=evidence)))

        threads = [threading.Thread(target=appraise) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.appraisal.status for r in results] == [Tier.AFFIRMING] * 8
        assert kds.count(targets[vector["id"]].split("?")[0]) == 1
        assert kds.count("/vcek/v1/Milan/cert_chain") == 1
        # A second verifier on the same database (a replica) is served from the shared cache.
        replica = build(settings, clock=FixedClock(parse_rfc3339(vector["verify_at"])))
        assert (
            replica.service.appraise(AppraisalRequest(tee="snp", evidence=evidence)).appraisal.status is Tier.AFFIRMING
        )
        assert kds.count(targets[vector["id"]].split("?")[0]) == 1
        replica.close()
        components.close()


def test_snp_over_grpc(db: Database, database_url: str, vectors_dir: Path) -> None:
    vector = next(v for v in manifest_vectors("snp") if v["id"] == "snp-milan-v3-vlek-aws-constellation")
    folder = vectors_dir / vector["dir"]
    at = parse_rfc3339(vector["verify_at"])
    settings = Settings(
        database_url=database_url,
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        check_crl=False,
    )  # the vectors carry no AMD CRL
    components = build(settings, clock=FixedClock(at))
    components.references.add("snp.measurement", bytes.fromhex(vector["facts"]["measurement"]), "aws", now=at)
    collateral = [
        pb.CollateralFile(name=p.name, content=p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.name != "evidence.bin"
    ]

    async def run() -> pb.AppraiseResponse:
        server = VerifierServer(components)
        port, _ = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.VerifierStub(channel)
                return await stub.Appraise(
                    pb.AppraiseRequest(
                        kind=pb.EVIDENCE_KIND_SEV_SNP,
                        evidence=(folder / "evidence.bin").read_bytes(),
                        collateral=collateral,
                    )
                )
        finally:
            await server.stop(0)

    response = asyncio.run(run())
    components.close()
    assert response.status == pb.STATUS_AFFIRMING, [f.code for f in response.findings]
    assert response.tee == "snp"
    assert response.claims["measurement"] == vector["facts"]["measurement"]
    assert response.claims["signer"]["kind"] == "vlek"
    # The token verifies against the server's published keys, and says what the response says.
    result = verify_result(response.token, components.service.jwks(), now=at)
    assert result.tee == "snp" and result.submod_status == "affirming"
    assert result.claims["measurement"] == vector["facts"]["measurement"]
