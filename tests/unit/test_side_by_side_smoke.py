"""Smoke test of benchmarks/side_by_side (issue 13 item 1), not a timed test: the floor handler affirms the real
Nitro vector over gRPC in-process for 0.2 s through the benchmark's own client code, and the /proc readings work."""

from __future__ import annotations

import asyncio
import importlib
import os
from pathlib import Path
from typing import Any

import grpc
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module(monkeypatch: pytest.MonkeyPatch, name: str) -> Any:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(f"side_by_side.{name}")


def test_floor_handler_affirms_through_the_benchmark_clients(
    monkeypatch: pytest.MonkeyPatch, vectors_dir: Path
) -> None:
    floor, clients, vectors = (_module(monkeypatch, n) for n in ("floor", "clients", "vectors"))
    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    vector = vectors.load_vector("nitro", vectors_dir)
    assert clients._affirming_prefix() == clients.AFFIRMING

    async def scenario() -> dict[str, Any]:
        server = grpc.aio.server()
        pb_grpc.add_VerifierServicer_to_server(floor.floor_servicer(floor.FloorAppraiser(vector)), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = channel.unary_unary(clients.APPRAISE)
                return await clients._phase([stub], vectors.request_bytes(vector), 0.2)  # type: ignore[no-any-return]
        finally:
            await server.stop(0)

    outcome = asyncio.run(scenario())
    assert outcome["ok"] > 0 and outcome["errors"] == {}
    summary = clients.summarize([outcome], 0.1, concurrency=1, processes=1)
    assert summary["appraisals"] == outcome["ok"] and summary["p50_ms"] <= summary["p99_ms"]


def test_floor_refuses_a_tampered_document(monkeypatch: pytest.MonkeyPatch, vectors_dir: Path) -> None:
    floor, vectors = _module(monkeypatch, "floor"), _module(monkeypatch, "vectors")
    vector = vectors.load_vector("nitro", vectors_dir)
    tampered = bytearray(vector.evidence)
    tampered[-10] ^= 1  # inside the COSE signature
    ok, token = floor.FloorAppraiser(vector).appraise(bytes(tampered), {})
    assert not ok and token.count(".") == 2


def test_proc_readings_of_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    procstat = _module(monkeypatch, "procstat")
    assert os.getpid() in procstat.tree([os.getpid()])
    assert procstat.cpu_seconds([os.getpid()]) > 0
    assert procstat.rss_mb([os.getpid()])[os.getpid()] > 1
