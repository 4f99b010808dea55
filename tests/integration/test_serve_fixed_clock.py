"""`verifier serve --dev --at RFC3339` (VERIFIER_FIXED_TIME): the service's appraisal clock fixed at one instant, so
the shared vectors, whose certificates are valid only around their MANIFEST verify_at, affirm over gRPC.

Real processes on loopback, SQLite: `verifier serve --dev --at <verify_at>` affirms the production Nitro vector (its
leaf certificate lives three hours, so at the real time it is CERT_EXPIRED) and says so loudly at start; the
appraisal and its token carry the fixed instant while a challenge keeps real time; without `--dev` the start is
refused with FIXED_CLOCK_NEEDS_DEV (exit 64), from the flag or from the variable. Two workers (the CLI's own worker
build, run by the supervisor directly because `verifier serve --workers 2` refuses SQLite) both affirm: each
connection is mapped to the worker that served it through the supervisor's per-worker /metrics series.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from verifier.appraisal.registry import get_scheme
from verifier.bootstrap import build_app
from verifier.clock import FixedClock, parse_rfc3339
from verifier.reference_values.kinds import MEASUREMENT_KINDS
from verifier.settings import Settings
from verifier.storage.migrate import upgrade
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("verifier")
VECTOR = "nitro-prod-2024-blocky"
BOUND = 30.0  # seconds any wait may take before the test fails

pytestmark = pytest.mark.slow

LAUNCHER = """
import json, sys
from pathlib import Path
from verifier.cli.serve import build_worker, with_fixed_clock
from verifier.logging_setup import install_logging
from verifier.settings import from_environment
from verifier.transport.grpc.workers import Supervisor

options = json.loads(sys.argv[1])
install_logging("INFO")
settings = with_fixed_clock(from_environment())
raise SystemExit(Supervisor(settings, 2, build_worker, port_file=Path(options["port_file"])).run())
"""


def environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    return {**env, "PYTHONPATH": str(ROOT), **variables}


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + BOUND
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not reached in {BOUND:g}s"
        time.sleep(0.05)
    return value


@dataclass
class Vector:
    at: dt.datetime
    verify_at: str
    request: pb.AppraiseRequest


@pytest.fixture(scope="module")
def vector(vectors_dir: Path) -> Vector:
    entry = next(v for v in json.loads((vectors_dir / "MANIFEST.json").read_text())["vectors"] if v["id"] == VECTOR)
    evidence = (vectors_dir / entry["dir"] / "evidence.bin").read_bytes()
    request = pb.AppraiseRequest(kind=pb.EvidenceKind.Value(get_scheme("nitro").proto_kind), evidence=evidence)
    return Vector(parse_rfc3339(entry["verify_at"]), entry["verify_at"], request)


@pytest.fixture
def database_with_references(tmp_path: Path, vectors_dir: Path, vector: Vector) -> str:
    """A migrated SQLite database with the vector's PCR0..2 approved (what the default policy requires)."""
    url = f"sqlite:///{tmp_path / 'verifier.db'}"
    upgrade(url)
    entry = next(v for v in json.loads((vectors_dir / "MANIFEST.json").read_text())["vectors"] if v["id"] == VECTOR)
    components = build_app(Settings(database_url=url, development=True, offline=True), clock=FixedClock(vector.at))
    try:
        for kind in MEASUREMENT_KINDS["nitro"]:
            value = entry["facts"]["pcrs"][kind.removeprefix("nitro.pcr")]
            components.references.add(kind, bytes.fromhex(value), "vector", now=vector.at)
    finally:
        components.close()
    return url


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int] = field(default_factory=dict)
    channels: list[grpc.Channel] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stub(self) -> pb_grpc.VerifierStub:
        """A Verifier stub on a connection of its own (no subchannel shared with the other channels)."""
        channel = grpc.insecure_channel(
            f"127.0.0.1:{self.ports['grpc']}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        self.channels.append(channel)
        return pb_grpc.VerifierStub(channel)

    def per_worker(self) -> dict[int, float]:
        """RPCs handled by each live worker, by pid (the supervisor's /metrics)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['http']}/metrics", timeout=10) as response:
            body = response.read().decode()
        return {
            int(sample.labels["pid"]): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
            if sample.name == "verifier_worker_rpc_requests"
        }

    def stop(self) -> int:
        for channel in self.channels:
            channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=BOUND)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def launch(command: Callable[[Path], list[str]], env: dict[str, str]) -> Server:
        """`command(port_file)` started with `env`, once it has written its ports to `port_file`."""
        port_file = tmp_path / f"ports-{len(servers)}.json"
        log = port_file.with_suffix(".log")
        with log.open("wb") as sink:
            process = subprocess.Popen(command(port_file), stdout=sink, stderr=subprocess.STDOUT, env=env)
        server = Server(process, log)
        servers.append(server)

        def listening() -> bool:
            assert process.poll() is None, f"the server exited early:\n{server.output()[-3000:]}"
            return port_file.exists() and bool(port_file.read_text().strip())

        wait_until(listening, "the port file")
        server.ports = json.loads(port_file.read_text())
        return server

    yield launch
    for server in servers:
        server.stop()


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


def _serve(url: str) -> list[str]:
    return [str(EXE), "serve", "--db", url, "--offline", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]


def test_serve_at_the_vector_time_affirms_over_grpc(
    start: Callable[..., Server], database_with_references: str, vector: Vector
) -> None:
    command = [*_serve(database_with_references), "--dev", "--at", vector.verify_at, "--drain-seconds", "0"]
    server = start(lambda port_file: [*command, "--port-file", str(port_file)], environment())
    stub = server.stub()
    before = dt.datetime.now(dt.UTC)
    response = stub.Appraise(vector.request, timeout=BOUND)
    assert response.status == pb.STATUS_AFFIRMING, [(f.code, f.detail) for f in response.findings]
    assert response.appraised_at.ToDatetime(dt.UTC) == vector.at
    claims = _payload(response.token)
    assert claims["iat"] == int(vector.at.timestamp()) and claims["exp"] == claims["iat"] + 300
    # A challenge keeps real time: it expires `challenge_ttl` (120 s) from now, not from the fixed instant.
    challenge = stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=BOUND)
    expires = challenge.expires_at.ToDatetime(dt.UTC)
    assert before + dt.timedelta(seconds=119) <= expires <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=121)
    assert server.stop() == 0, server.output()[-3000:]
    log = server.output()
    assert f"the appraisal clock is fixed at {vector.verify_at}" in log and "DEVELOPMENT MODE" in log


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_fixed_clock_without_dev_is_refused_at_start(tmp_path: Path, vector: Vector, how: str) -> None:
    command = _serve(f"sqlite:///{tmp_path / 'verifier.db'}")
    env = environment()
    if how == "flag":
        command += ["--at", vector.verify_at]
    else:
        env["VERIFIER_FIXED_TIME"] = vector.verify_at
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 64, result.stderr[-2000:]
    assert "verifier: FIXED_CLOCK_NEEDS_DEV:" in result.stderr and "--dev" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_worker_appraises_at_the_fixed_time(
    start: Callable[..., Server], database_with_references: str, vector: Vector
) -> None:
    env = environment(
        VERIFIER_DATABASE_URL=database_with_references,
        VERIFIER_DEVELOPMENT="1",
        VERIFIER_FIXED_TIME=vector.verify_at,
        VERIFIER_OFFLINE="1",
        VERIFIER_LISTEN="127.0.0.1:0",
        VERIFIER_HTTP_LISTEN="127.0.0.1:0",
        VERIFIER_RATE_APPRAISE_PER_CLIENT="0",
        VERIFIER_DRAIN_SECONDS="0",
    )
    server = start(lambda port_file: [sys.executable, "-c", LAUNCHER, json.dumps({"port_file": str(port_file)})], env)
    served: set[int] = set()
    for _ in range(100):
        if len(served) == 2:
            break
        before = server.per_worker()
        response = server.stub().Appraise(vector.request, timeout=BOUND)
        assert response.status == pb.STATUS_AFFIRMING, [(f.code, f.detail) for f in response.findings]
        assert response.appraised_at.ToDatetime(dt.UTC) == vector.at
        grew = wait_until(
            lambda before=before: [p for p, n in server.per_worker().items() if n > before.get(p, 0)],
            "a worker counts the call",
        )
        served.update(grew)
    assert len(served) == 2, f"only workers {sorted(served)} answered"
    assert server.stop() == 0, server.output()[-3000:]
