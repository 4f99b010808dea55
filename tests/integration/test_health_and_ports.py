"""Issue 11 items 5, 6 and 12: health tells the truth, shutdown drains, one server per port, admin only over TLS.

Faults are bounded: the database is made unreachable by pointing the `Database`'s engine at a place that cannot
answer (a SQLite file in a missing folder, a closed PostgreSQL port) and back; every wait polls with a generous
bound and asserts nothing about timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy import create_engine

from verifier.bootstrap import Components, build
from verifier.errors import ConfigError
from verifier.metrics import Metrics
from verifier.settings import Settings, from_environment
from verifier.storage.engine import Database
from verifier.transport.grpc.http import HttpApp
from verifier.transport.grpc.server import VerifierServer, serve
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "plaintext-admin-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
BOUND = 15.0  # seconds any wait may take before the test fails (generous: the check runs every second)


def settings_for(url: str, **changes: Any) -> Settings:
    base = Settings(
        database_url=url,
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        grace_seconds=0.2,
        drain_seconds=0,
        admin_token_sha256=(hashlib.sha256(TOKEN.encode()).hexdigest(),),
    )
    return base.with_overrides(**changes)


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[Components]:
    built = build(settings_for(database_url))
    yield built
    built.close()


def with_settings(components: Components, **changes: Any) -> Components:
    return dataclasses.replace(components, settings=components.settings.with_overrides(**changes))


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[tuple[VerifierServer, grpc.aio.Channel, int, int]]:
    server = VerifierServer(components)
    port, http_port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield server, channel, port, http_port
    finally:
        await channel.close()
        await server.stop(0)


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


async def health(channel: grpc.aio.Channel, service: str) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(reply.status)


async def until(condition: Callable[[], Any]) -> None:
    """Poll an async condition until it holds (fails after BOUND seconds)."""
    deadline = time.monotonic() + BOUND
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


@contextlib.contextmanager
def unreachable(database: Database, tmp_path: Path) -> Iterator[None]:
    """The database stops answering: its engine points at a missing SQLite folder or a closed PostgreSQL port."""
    original = database.engine
    if database.dialect == "sqlite":
        broken = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'verifier.db'}")
    else:
        broken = create_engine(
            "postgresql+psycopg://verifier@127.0.0.1:1/verifier", connect_args={"connect_timeout": 1}
        )
    probe = database.probe_engine
    database.engine = broken
    database.probe_engine = broken if probe is not None else None
    try:
        yield
    finally:
        database.engine = original
        database.probe_engine = probe
        broken.dispose()


def reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


# --- item 5: health tells the truth ---------------------------------------------------------------------------


def test_http_probes_separate_liveness_from_readiness() -> None:
    ready = [True]
    app = HttpApp(Metrics(), lambda: {"keys": []}, lambda: ready[0])
    captured: list[str] = []

    def status(path: str) -> str:
        b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h: captured.append(s)))
        return captured[-1]

    assert [status(p) for p in ("/livez", "/readyz", "/healthz")] == ["200 OK"] * 3
    ready[0] = False
    assert status("/livez") == "200 OK"
    assert status("/readyz").startswith("503") and status("/healthz").startswith("503")


def test_readiness_and_grpc_health_follow_the_database(components: Components, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(components) as (server, channel, _, http_port):
            assert await health(channel, "verifier.v1.Verifier") == SERVING
            assert await asyncio.to_thread(http_status, http_port, "/readyz") == 200
            with unreachable(components.database, tmp_path):

                async def down() -> bool:
                    return await health(channel, "verifier.v1.Verifier") == NOT_SERVING

                await until(down)
                assert await health(channel, "") == NOT_SERVING
                assert await asyncio.to_thread(http_status, http_port, "/readyz") == 503
                assert await asyncio.to_thread(http_status, http_port, "/healthz") == 503
                assert await asyncio.to_thread(http_status, http_port, "/livez") == 200  # alive, not ready
                # the process still answers what needs no database
                keys = await pb_grpc.VerifierStub(channel).GetSigningKeys(pb.GetSigningKeysRequest(), timeout=5)
                assert keys.jwks_json

            async def up() -> bool:
                return await health(channel, "verifier.v1.Verifier") == SERVING

            await until(up)
            assert await health(channel, "") == SERVING
            assert await asyncio.to_thread(http_status, http_port, "/readyz") == 200
            assert server.ready

    asyncio.run(scenario())


# --- item 6: shutdown drains ----------------------------------------------------------------------------------


def test_sigterm_reports_not_serving_and_keeps_answering_during_the_drain(
    components: Components, tmp_path: Path
) -> None:
    """The production `serve()` with its SIGTERM handler, in this process (the main thread)."""
    components = with_settings(components, drain_seconds=2.0)
    port_file = tmp_path / "ports.json"

    async def scenario() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(components, ready=ready, port_file=port_file))
        await asyncio.wait_for(ready.wait(), BOUND)
        port = json.loads(port_file.read_text())["grpc"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.VerifierStub(channel)
            first = await stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=5)  # step one of a flow
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == SERVING
            os.kill(os.getpid(), signal.SIGTERM)
            assert (await watch.read()).status == NOT_SERVING
            watch.cancel()
            # step two still gets an answer: the listener stays open for the drain
            second = await stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=5)
            assert second.nonce != first.nonce
        await asyncio.wait_for(task, BOUND)

    asyncio.run(scenario())


# --- item 12: one server per port; admin credentials only over TLS ---------------------------------------------


def test_a_second_server_on_a_busy_port_refuses_to_start(components: Components) -> None:
    async def scenario() -> None:
        async with running(components) as (_, _channel, port, http_port):
            for changes in ({"listen": f"127.0.0.1:{port}"}, {"http_listen": f"127.0.0.1:{http_port}"}):
                second = VerifierServer(with_settings(components, **changes))
                with pytest.raises(ConfigError) as caught:
                    await second.start()
                assert caught.value.code == "ADDRESS_IN_USE"

    asyncio.run(scenario())


@pytest.mark.parametrize("busy", ["grpc", "http"])
def test_verifier_serve_on_a_busy_port_exits_64_address_in_use(sqlite_db: Database, busy: str) -> None:
    components = build(settings_for(sqlite_db.url))

    async def scenario() -> subprocess.CompletedProcess[str]:
        async with running(components) as (_, _channel, port, http_port):
            listen = f"127.0.0.1:{port}" if busy == "grpc" else "127.0.0.1:0"
            http = f"127.0.0.1:{http_port}" if busy == "http" else "127.0.0.1:0"
            env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
            command = [
                sys.executable,
                "-c",
                "from verifier.cli.main import main; raise SystemExit(main())",
                "serve",
                "--db",
                sqlite_db.url,
                "--dev",
                "--offline",
                "--listen",
                listen,
                "--http-listen",
                http,
            ]
            return await asyncio.to_thread(
                subprocess.run,
                command,
                capture_output=True,
                text=True,
                timeout=30,
                env={**env, "PYTHONPATH": str(ROOT)},
                check=False,
            )

    try:
        result = asyncio.run(scenario())
    finally:
        components.close()
    assert result.returncode == 64, result.stderr[-2000:]
    assert "ADDRESS_IN_USE" in result.stderr and "Traceback" not in result.stderr


def test_admin_bearer_token_over_plaintext_is_refused_without_the_opt_in(components: Components) -> None:
    async def scenario() -> None:
        async with running(components) as (_, channel, _port, _http):
            refs = rv_grpc.ReferenceValuesStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await refs.List(pb.ListReferenceValuesRequest(), metadata=ADMIN, timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason(caught.value) == "ADMIN_NEEDS_TLS"
            # appraisal calls stay open on the plaintext port
            await pb_grpc.VerifierStub(channel).CreateChallenge(pb.CreateChallengeRequest(), timeout=5)
        async with running(with_settings(components, allow_plaintext_admin=True)) as (_, channel, _port, _http):
            await rv_grpc.ReferenceValuesStub(channel).List(pb.ListReferenceValuesRequest(), metadata=ADMIN, timeout=5)

    asyncio.run(scenario())


def test_plaintext_admin_opt_in_is_refused_on_a_non_loopback_address(components: Components) -> None:
    server = VerifierServer(with_settings(components, allow_plaintext_admin=True, listen="0.0.0.0:0"))
    with pytest.raises(ConfigError) as caught:
        asyncio.run(server.start())
    assert caught.value.code == "PLAINTEXT_ADMIN_NOT_LOOPBACK"


def test_drain_and_plaintext_admin_settings_come_from_the_environment() -> None:
    settings = from_environment({"VERIFIER_DRAIN_SECONDS": "0", "VERIFIER_ALLOW_PLAINTEXT_ADMIN": "1"})
    assert settings.drain_seconds == 0 and settings.allow_plaintext_admin
    assert Settings().drain_seconds > 0 and not Settings().allow_plaintext_admin
    with pytest.raises(ConfigError):
        from_environment({"VERIFIER_DRAIN_SECONDS": "-1"})
