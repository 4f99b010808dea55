"""A real server on port 0 (issue 14 item 7): after a challenge, appraisals and health checks, its /metrics (scraped
over HTTP, parsed with prometheus_client's parser) has every series docs/metrics.md lists for every server, and the
health checks (gRPC and HTTP) are not counted as traffic."""

from __future__ import annotations

import asyncio
import hashlib
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.fakes.aws_pki import FakeAwsPki
from verifier import __version__
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
WORKERS_ONLY = "## Series of `--workers N` only"
TOKEN = "metrics-admin-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)


def documented_series(*, workers_only: bool = False, labels: bool = False) -> dict[str, Any]:
    """The series of docs/metrics.md's table of every server (or of `--workers N` only): name -> type, or with
    `labels` name -> (type, the labels named outside parentheses)."""
    every, _, workers = DOC.read_text().partition(WORKERS_ONLY)
    found: dict[str, Any] = {}
    for line in (workers if workers_only else every).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 5 and re.fullmatch(r"`[a-z_]+`", cells[0]):
            named = set(re.findall(r"`([a-z_]+)`", re.sub(r"\(.*?\)", "", cells[2])))
            found[cells[0].strip("`")] = (cells[1], named) if labels else cells[1]
    return found


def family_name(series: str, kind: str) -> str:
    """The metric family prometheus_client's parser names `series` of `kind` by (counters without `_total`)."""
    return series.removesuffix("_total") if kind == "counter" else series


def scrape(port: int) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def http_ok(port: int, path: str) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status == 200


def handled(samples: dict[str, list[Sample]]) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["grpc_service"], s.labels["grpc_method"], s.labels["grpc_code"]): s.value
        for s in samples["grpc_server_handled"]
    }


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[tuple[Components, FakeAwsPki]]:
    pki = FakeAwsPki()
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        admin_token_sha256=(hashlib.sha256(TOKEN.encode()).hexdigest(),),
        allow_plaintext_admin=True,
        grace_seconds=0.2,
        drain_seconds=0,
    )  # online (the collateral cache exists), though Nitro evidence needs no vendor collateral
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built, pki
    built.close()


def test_every_documented_series_is_served_and_health_checks_are_not_traffic(
    components: tuple[Components, FakeAwsPki],
) -> None:
    built, pki = components
    documented = documented_series()
    assert len(documented) >= 20 and documented_series(workers_only=True)

    async def scenario() -> tuple[dict[str, list[Sample]], dict[str, list[Sample]], dict[str, list[Sample]]]:
        server = VerifierServer(built)
        port, http_port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                verifier, refs = pb_grpc.VerifierStub(channel), rv_grpc.ReferenceValuesStub(channel)
                for index, value in sorted(FakeAwsPki.default_pcrs().items())[:3]:
                    add = pb.AddReferenceValueRequest(kind=f"nitro.pcr{index}", value=value.hex(), label="shop")
                    await refs.Add(add, metadata=ADMIN)
                nonce = (await verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
                request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=nonce), nonce=nonce)
                assert (await verifier.Appraise(request)).status == pb.STATUS_AFFIRMING
                assert (await verifier.Appraise(request)).status == pb.STATUS_CONTRAINDICATED  # replayed
                before = await asyncio.to_thread(scrape, http_port)
                health = health_pb2_grpc.HealthStub(channel)
                for name in ("", "verifier.v1.Verifier"):
                    for _ in range(3):
                        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                        assert reply.status == health_pb2.HealthCheckResponse.SERVING
                for path in ("/healthz", "/readyz", "/livez"):
                    assert await asyncio.to_thread(http_ok, http_port, path)
                after = await asyncio.to_thread(scrape, http_port)
                await asyncio.sleep(1.2)  # a readiness check or two (the database probe runs every second)
                probed = await asyncio.to_thread(scrape, http_port)
                return before, after, probed
        finally:
            await server.stop(0)

    before, after, probed = asyncio.run(scenario())
    missing = [name for name, kind in documented.items() if family_name(name, kind) not in after]
    assert not missing, f"documented in docs/metrics.md but not served: {missing}"
    for name, (kind, labels) in documented_series(labels=True).items():
        served = {key for sample in after[family_name(name, kind)] for key in sample.labels} - {"le"}
        assert served == labels or not after[family_name(name, kind)], (name, served, labels)

    # traffic: exactly the calls made; health checks (gRPC and HTTP) are not counted, before or after
    assert (
        handled(after)
        == handled(before)
        == {
            ("verifier.v1.ReferenceValues", "Add", "OK"): 3,
            ("verifier.v1.Verifier", "CreateChallenge", "OK"): 1,
            ("verifier.v1.Verifier", "Appraise", "OK"): 2,
        }
    )
    assert not any(s.labels["grpc_service"].startswith("grpc.health") for s in after["grpc_server_started"])
    latency = {
        s.labels["grpc_method"]: s.value for s in after["grpc_server_handling_seconds"] if s.name.endswith("_count")
    }
    assert latency == {"Add": 3, "CreateChallenge": 1, "Appraise": 2}

    def value(family: str, **labels: str) -> float:
        return sum(s.value for s in after[family] if labels.items() <= s.labels.items())

    assert value("verifier_appraisals", tee="nitro", status="affirming", workload="shop") == 1
    assert value("verifier_appraisals", tee="nitro", status="contraindicated", workload="shop") == 1
    assert value("verifier_findings", tee="nitro", code="CHALLENGE_REPLAYED") == 1
    challenges = {s.labels["outcome"]: s.value for s in after["verifier_challenges"]}
    assert challenges == {"issued": 1, "consumed": 1, "replayed": 1, "expired": 0, "unknown": 0}
    vendors = {(s.labels["vendor"], s.labels["tier"]) for s in after["verifier_collateral_cache_hits"]}
    assert vendors == {(v, t) for v in ("amd-kds", "intel-pcs") for t in ("memory", "database")}

    def units(operation: str) -> float:
        return value("verifier_db_transaction_seconds", operation=operation, le="+Inf")

    assert units("write") >= 4 and units("read") >= 1  # 3 adds, the challenge, the recorded appraisals; reads
    probes = [
        sum(
            s.value
            for s in samples["verifier_db_transaction_seconds"]
            if s.labels == {"operation": "probe", "le": "+Inf"}
        )
        for samples in (after, probed)
    ]
    assert probes[1] > probes[0]  # the readiness check is a class of its own, apart from the traffic's reads
    (build_info,) = after["verifier_build_info"]
    assert build_info.labels == {"version": __version__, "build": __version__} and build_info.value == 1
    assert value("process_resident_memory_bytes") > 0 and value("process_cpu_seconds") > 0
