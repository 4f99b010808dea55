"""A Node.js relying party from the .proto alone (issue 14: "a non-Python client test from the .proto alone").

A real server on port 0 (SQLite, the appraisal clock at the shared Nitro vector's verify_at, its PCRs approved) and
tests/node/client.mjs: @grpc/proto-loader loads proto/verifier/v1/verifier.proto at run time (no generated code),
@grpc/grpc-js calls CreateChallenge, Appraise (the real vector) and GetSigningKeys, jose verifies the EAR with
that JWKS (ES256 only, the header's `typ` required) and claims_json is compared with the Struct; a second test makes
one composite call (an SEV-SNP report with two GPU reports, issue 15) and reads its components. Skipped, saying
why, without node or tests/node/node_modules (`(cd tests/node && npm ci)`, which CI runs), or failed with
VERIFIER_REQUIRE_NODE=1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dbfixtures import sqlite_url
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock, parse_rfc3339
from verifier.reference_values.kinds import MEASUREMENT_KINDS
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "node"
VECTOR = "nitro-prod-2024-blocky"
NODE = shutil.which("node")
MODULES = [NODE_DIR / "node_modules" / name for name in ("@grpc/grpc-js", "@grpc/proto-loader", "jose")]


@pytest.fixture(autouse=True)
def _node_installed() -> None:
    """Skip without node or the modules, or fail with VERIFIER_REQUIRE_NODE=1 (as CI sets, having installed them)."""
    if NODE is None:
        message = "node is not installed"
    elif not all(m.is_dir() for m in MODULES):
        message = "tests/node/node_modules is missing: `(cd tests/node && npm ci --no-audit --no-fund)`"
    else:
        return
    if os.environ.get("VERIFIER_REQUIRE_NODE") == "1":
        pytest.fail(f"VERIFIER_REQUIRE_NODE=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def vector(vectors_dir: Path) -> dict[str, Any]:
    manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
    entry: dict[str, Any] = next(v for v in manifest["vectors"] if v["id"] == VECTOR)
    entry["evidence_path"] = vectors_dir / entry["dir"] / "evidence.bin"
    return entry


@pytest.fixture
def components(sqlite_db: Database, tmp_path: Path, vector: dict[str, Any]) -> Iterator[Components]:
    at = parse_rfc3339(vector["verify_at"])
    settings = Settings(
        database_url=sqlite_url(tmp_path),
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0,
    )
    built = build(settings, clock=FixedClock(at))
    for kind in MEASUREMENT_KINDS["nitro"]:
        value = vector["facts"]["pcrs"][kind.removeprefix("nitro.pcr")]
        built.references.add(kind, bytes.fromhex(value), "vector", now=at)
    yield built
    built.close()


def _header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


async def _node(options: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(NODE_DIR / "client.mjs"),
        json.dumps(options),
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)  # type: ignore[no-any-return]


def test_node_client_from_the_proto_alone(components: Components, vector: dict[str, Any]) -> None:
    async def scenario() -> tuple[dict[str, Any], str]:
        server = VerifierServer(components)
        port, _ = await server.start()
        try:
            # The typ the server's tokens carry (a test of jose's typ check, whatever the value is).
            result = await asyncio.to_thread(
                components.service.appraise,
                AppraisalRequest(tee="nitro", evidence=vector["evidence_path"].read_bytes()),
            )
            typ = _header(result.token).get("typ")
            options = {
                "target": f"127.0.0.1:{port}",
                "proto": str(ROOT / "proto"),
                "evidence": str(vector["evidence_path"]),
                "kind": "EVIDENCE_KIND_NITRO",
                "typ": typ,
            }
            return await _node(options), str(components.service.issuer)
        finally:
            await server.stop(0)

    out, issuer = asyncio.run(scenario())
    assert out["status"] == "STATUS_AFFIRMING", out["findings"]
    assert (out["tee"], out["policy_id"]) == ("nitro", "default")
    assert out["challenge_nonce_bytes"] == 32 and int(out["challenge_expires_at"]) > 0
    assert out["protected_header"]["alg"] == "ES256" and out["protected_header"]["kid"] in out["jwks_kids"]
    assert out["empty_set_refused"] == "ERR_JWKS_NO_MATCHING_KEY"
    assert out["payload"]["iss"] == issuer and out["payload"]["iat"] == int(
        parse_rfc3339(vector["verify_at"]).timestamp()
    )
    claims = out["claims_json"]
    assert out["claims_struct_equal"] is True
    assert claims["pcrs"]["0"] == vector["facts"]["pcrs"]["0"]
    assert isinstance(claims["timestamp"], int)  # an integer as an integer, not a double


def test_node_client_composite_call(sqlite_db: Database, tmp_path: Path) -> None:
    """One composite call from Node (issue 15): an SEV-SNP report (fake AMD PKI) with two GPU reports (the fake
    NVIDIA PKIs of tests/integration/composite_helpers.py `NvidiaWorld`, appraised by the real GPU scheme), bound by
    REPORT_DATA; jose verifies the composite EAR."""
    from tests.fakes.amd_pki import FakeAmdPki
    from tests.fakes.nvidia_pki import DEFAULT_NOW
    from tests.integration.composite_helpers import MEASUREMENT, NvidiaWorld, snp_files, snp_report
    from verifier.tee.sevsnp.tcb import Product
    from verifier.trust.anchors import TrustAnchors

    pki, nvidia = FakeAmdPki(Product.GENOA, now=DEFAULT_NOW), NvidiaWorld(DEFAULT_NOW, devices=2)
    settings = Settings(
        database_url=sqlite_url(tmp_path),
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="off",
        check_crl=False,
    )
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = TrustAnchors(pins={**pki.pins, **nvidia.pins})
    built.references.add("snp.measurement", MEASUREMENT, "inference", now=pki.now, version="1")
    built.references.add("snp.min_gpus", b"\x02", "inference", now=pki.now, version="1")
    gpus = (nvidia.gpu(b"\x42" * 32, device=0), nvidia.gpu(b"\x42" * 32, device=1))  # no challenge: still bound
    (tmp_path / "snp.bin").write_bytes(snp_report(pki, b"", None, gpus))
    collateral = []
    for name, data in snp_files(pki).items():
        (tmp_path / name).write_bytes(data)
        collateral.append({"name": name, "path": str(tmp_path / name)})
    sent = []
    for index, one in enumerate(gpus):
        (tmp_path / f"gpu{index}").mkdir()
        (tmp_path / f"gpu{index}.bin").write_bytes(one.evidence)
        files = []
        for name, data in one.collateral.items():
            (tmp_path / f"gpu{index}" / name).write_bytes(data)
            files.append({"name": name, "path": str(tmp_path / f"gpu{index}" / name)})
        sent.append({"evidence": str(tmp_path / f"gpu{index}.bin"), "collateral": files})

    async def scenario() -> dict[str, Any]:
        server = VerifierServer(built)
        port, _ = await server.start()
        try:
            options = {
                "target": f"127.0.0.1:{port}",
                "proto": str(ROOT / "proto"),
                "evidence": str(tmp_path / "snp.bin"),
                "kind": "EVIDENCE_KIND_SEV_SNP",
                "collateral": collateral,
                "gpus": sent,
                "typ": "eat+jwt",
            }
            return await _node(options)
        finally:
            await server.stop(0)

    try:
        out = asyncio.run(scenario())
    finally:
        built.close()
    assert out["status"] == "STATUS_AFFIRMING", out["finding_components"]
    assert [(c["name"], c["tee"], c["status"]) for c in out["components"]] == [
        ("gpu0", "gpu", "STATUS_AFFIRMING"),
        ("gpu1", "gpu", "STATUS_AFFIRMING"),
    ]
    assert out["components"][0]["claims"]["driver_version"] == "550.90.07"
    assert list(out["payload"]["submods"]) == ["snp", "gpu0", "gpu1"] and out["payload"]["ear_status"] == "affirming"
    assert out["payload"]["submods"]["snp"]["ear_verifier_claims"]["workload"]["name"] == "inference"
