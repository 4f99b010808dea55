"""Issue 13 item 2: `verifier serve --workers N`, real processes on loopback.

On PostgreSQL: `verifier serve --workers 2` appraises a real SEV-SNP vector (at the real time: its VCEK is valid
until 2029, the vectors carry no AMD CRL) and both worker pids answer (the supervisor's /metrics has one
`verifier_worker_rpc_requests` series per live worker, label pid, and the sums over both); a revocation through the
admin API is effective at once on every worker; kill -9 of a worker gets it replaced while the port keeps
answering; a second `verifier serve` on the port is refused with ADDRESS_IN_USE; SIGTERM drains and the supervisor
exits 0. A challenge is consumed exactly once across the workers (Nitro evidence minted by the fake AWS PKI, whose
root a small launcher pins beside the real ones, running the same supervisor as the CLI). On SQLite, `--workers 2`
is refused.

Each connection is mapped to the worker that serves it (a call on a fresh connection, then which pid's series
grew), so which worker answers is known, never assumed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import manifest_vectors
from tests.dbfixtures import PG_ENV, with_search_path
from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ConfigError
from verifier.metrics import Metrics
from verifier.results.signer import ResultSigner
from verifier.settings import Settings, from_environment
from verifier.storage.engine import normalize_url
from verifier.storage.migrate import upgrade
from verifier.transport.grpc.binding import raise_if_in_use
from verifier.transport.grpc.http import HttpApp, PolledHttpServer
from verifier.transport.grpc.port_claim import PortClaims
from verifier.transport.grpc.workers import MAX_WORKERS, worker_count
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("verifier")
TOKEN = "workers-admin-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)
VECTOR = "snp-genoa-v5-vcek-oak"
BOUND = 30.0  # seconds any wait may take before the test fails
APPRAISE = "/verifier.v1.Verifier/Appraise"

pytestmark = pytest.mark.slow

LAUNCHER = """
import json, sys
from pathlib import Path
from verifier.bootstrap import build_app
from verifier.logging_setup import install_logging
from verifier.settings import from_environment
from verifier.transport.grpc.workers import Supervisor, worker_count
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors

options = json.loads(sys.argv[1])
install_logging("INFO")
settings = from_environment()
pins = {**PINNED_ROOTS, "aws-nitro": PINNED_ROOTS["aws-nitro"] | {options["pin"]}}

def build(worker_settings, signer):
    components = build_app(worker_settings, signer=signer, background_writes=True)
    components.service.anchors = TrustAnchors(pins=pins)
    return components

raise SystemExit(Supervisor(settings, worker_count(settings), build, port_file=Path(options["port_file"])).run())
"""


def environment(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    return {**env, "PYTHONPATH": str(ROOT), **variables}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + BOUND
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not reached in {BOUND:g}s"
        time.sleep(0.05)
    return value


def http_get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    channels: list[grpc.Channel] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.ports["http"], path)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body = self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }

    def per_worker(self) -> dict[int, float]:
        """RPCs handled by each live worker, by pid."""
        return {
            int(dict(labels)["pid"]): value
            for (name, labels), value in self.samples().items()
            if name == "verifier_worker_rpc_requests"
        }

    def connect(self) -> grpc.Channel:
        """A channel with a connection of its own (no subchannel shared with the other channels)."""
        channel = grpc.insecure_channel(
            f"127.0.0.1:{self.ports['grpc']}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        self.channels.append(channel)
        return channel

    def connections(self, per_worker: int = 1, workers: int = 2) -> dict[int, list[grpc.Channel]]:
        """`per_worker` connections to each of `workers` workers, by pid (a CreateChallenge on a fresh connection,
        then the pid whose series grew)."""
        found: dict[int, list[grpc.Channel]] = {}
        for _ in range(200):
            if len(found) == workers and all(len(c) >= per_worker for c in found.values()):
                return found
            before = self.per_worker()
            channel = self.connect()
            pb_grpc.VerifierStub(channel).CreateChallenge(pb.CreateChallengeRequest(), timeout=10)
            grew = wait_until(
                lambda: [p for p, n in self.per_worker().items() if n > before.get(p, 0)], "a worker counts the call"
            )
            assert len(grew) == 1, grew
            found.setdefault(grew[0], []).append(channel)
        raise AssertionError(f"connections reached only {sorted(found)}")

    def close_channels(self) -> None:
        for channel in self.channels:
            channel.close()
        self.channels.clear()


def start(command: list[str], env: dict[str, str], port_file: Path) -> Server:
    log = port_file.with_suffix(".log")
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    server = Server(process, log, {})

    def listening() -> bool:
        assert process.poll() is None, f"the server exited early:\n{server.output()[-3000:]}"
        return port_file.exists()

    wait_until(listening, "the port file")
    server.ports = json.loads(port_file.read_text())
    return server


def stop(server: Server) -> int:
    server.close_channels()
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=BOUND)
    finally:
        if server.process.poll() is None:
            server.process.kill()


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def gone(pid: int) -> bool:
    """Reaped by the supervisor: every thread has exited, so its sockets are closed (a zombie leader is not
    enough, the other threads may still hold the listening socket)."""
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL schema for this module's servers."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests skipped")
    schema = f"verifier_test_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = with_search_path(base, schema)
        upgrade(url)
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def serve_command(url: str, *extra: str) -> list[str]:
    return [
        str(EXE),
        "serve",
        "--db",
        url,
        "--dev",
        "--offline",
        "--no-check-crl",  # the vectors carry no AMD CRL
        "--allow-plaintext-admin",
        "--admin-token-sha256",
        hashlib.sha256(TOKEN.encode()).hexdigest(),
        "--rate-appraise-per-client",
        "0",
        "--rate-challenge-per-client",
        "0",
        *extra,
    ]


@dataclass
class Snp:
    server: Server
    request: pb.AppraiseRequest
    reference_id: str

    def appraise(self, channel: grpc.Channel) -> pb.AppraiseResponse:
        response: pb.AppraiseResponse = pb_grpc.VerifierStub(channel).Appraise(self.request, timeout=20)
        return response


@pytest.fixture(scope="module")
def snp(pg_url: str, vectors_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snp]:
    """`verifier serve --workers 2` on PostgreSQL with the vector's measurement registered through the admin API."""
    vector = next(v for v in manifest_vectors("snp") if v["id"] == VECTOR)
    folder = vectors_dir / vector["dir"]
    tmp = tmp_path_factory.mktemp("workers")
    command = serve_command(
        pg_url, "--workers", "2", "--drain-seconds", "2.5", "--port-file", str(tmp / "snp.ports.json")
    )
    command += ["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    server = start(command, environment(), tmp / "snp.ports.json")
    try:
        added = rv_grpc.ReferenceValuesStub(server.connect()).Add(
            pb.AddReferenceValueRequest(kind="snp.measurement", value=vector["facts"]["measurement"], label="w"),
            metadata=ADMIN,
            timeout=10,
        )
        request = pb.AppraiseRequest(
            kind=pb.EVIDENCE_KIND_SEV_SNP,
            evidence=(folder / "evidence.bin").read_bytes(),
            collateral=[
                pb.CollateralFile(name=p.name, content=p.read_bytes())
                for p in sorted(folder.iterdir())
                if p.name != "evidence.bin"
            ],
        )
        yield Snp(server, request, added.id)
    finally:
        stop(server)


def appraised(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], tee: str, status: str) -> float:
    """verifier_appraisals_total of `tee` and `status`, over every workload."""
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "verifier_appraisals_total" and dict(labels)["tee"] == tee and dict(labels)["status"] == status
    )


@pytest.mark.postgres
def test_both_workers_answer_and_metrics_are_the_sum(snp: Snp) -> None:
    server = snp.server
    status, _ = server.get("/readyz")
    assert status == 200
    by_worker = server.connections(per_worker=1)
    assert set(by_worker) == children(server.process.pid)  # the two answering pids are the supervisor's workers
    before, per_before = server.samples(), server.per_worker()
    rounds = 3
    jwks = json.loads(server.get("/.well-known/jwks.json")[1])  # the supervisor's: the workers' (--dev) key
    for channels in by_worker.values():
        for _ in range(rounds):
            response = snp.appraise(channels[0])
            assert response.status == pb.STATUS_AFFIRMING
            assert ResultSigner.verify(response.token, jwks)["ear_status"] == "affirming"
    after, per_after = server.samples(), server.per_worker()
    assert all(per_after[pid] - per_before[pid] == rounds for pid in by_worker)  # each worker answered its own
    labels = (("grpc_code", "OK"), ("grpc_method", "Appraise"), ("grpc_service", "verifier.v1.Verifier"))
    key = ("grpc_server_handled_total", (*labels, ("grpc_type", "unary")))
    assert after[key] - before.get(key, 0) == 2 * rounds  # /metrics is the sum over both workers
    assert appraised(after, "snp", "affirming") - appraised(before, "snp", "affirming") == 2 * rounds
    assert after[("verifier_workers", ())] == 2 and after[("verifier_workers_ready", ())] == 2
    # process_* has one series per process (docs/metrics.md): the supervisor's and each live worker's
    memory = {dict(k[1])["pid"]: dict(k[1])["process"] for k in after if k[0] == "process_resident_memory_bytes"}
    assert memory == {str(server.process.pid): "supervisor", **{str(pid): "worker" for pid in by_worker}}
    assert any(name == "verifier_build_info" for name, _ in after)
    server.close_channels()


@pytest.mark.postgres
def test_revocation_is_effective_at_once_on_every_worker(snp: Snp) -> None:
    server = snp.server
    by_worker = server.connections(per_worker=1)
    for channels in by_worker.values():  # every worker has appraised it (caches, if any, are warm)
        assert snp.appraise(channels[0]).status == pb.STATUS_AFFIRMING
    first = next(iter(by_worker.values()))[0]
    rv_grpc.ReferenceValuesStub(first).Revoke(
        pb.RevokeReferenceValueRequest(id=snp.reference_id, reason="CVE-2026-13"), metadata=ADMIN, timeout=10
    )
    for channels in by_worker.values():  # the very next appraisal, on each worker
        response = snp.appraise(channels[0])
        assert response.status == pb.STATUS_CONTRAINDICATED, response
        assert "executables" in {f.claim for f in response.findings}
    server.close_channels()


@pytest.mark.postgres
def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(snp: Snp) -> None:
    server = snp.server
    workers = children(server.process.pid)
    assert len(workers) == 2
    victim = min(workers)
    restarts = server.samples()[("verifier_worker_restarts_total", ())]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: gone(victim), "the killed worker is gone")
    for _ in range(6):  # the survivor answers every new connection meanwhile
        channel = server.connect()
        pb_grpc.VerifierStub(channel).CreateChallenge(pb.CreateChallengeRequest(), timeout=10)
        snp.appraise(channel)
    replaced = wait_until(lambda: len(children(server.process.pid) - {victim}) == 2, "a replacement worker")
    assert replaced
    wait_until(lambda: server.get("/readyz")[0] == 200, "ready again")
    pids = children(server.process.pid)
    assert victim not in pids and set(server.per_worker()) == pids  # the dead worker's series is gone
    assert server.samples()[("verifier_worker_restarts_total", ())] == restarts + 1
    assert set(server.connections(per_worker=1)) == pids  # the replacement answers too
    assert "replacing it in" in server.output()
    server.close_channels()


@pytest.mark.postgres
def test_a_second_server_on_the_port_is_refused(snp: Snp, pg_url: str) -> None:
    port = snp.server.ports["grpc"]
    for workers in ("2", "1"):
        command = serve_command(pg_url, "--workers", workers, "--listen", f"127.0.0.1:{port}")
        result = subprocess.run(
            [*command, "--http-listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, env=environment()
        )
        assert result.returncode == 64, result.stderr[-2000:]
        assert "ADDRESS_IN_USE" in result.stderr and "Traceback" not in result.stderr
    assert len(children(snp.server.process.pid)) == 2  # the running one is untouched


@pytest.mark.postgres
def test_sigterm_drains_every_worker_and_the_supervisor_exits_0(snp: Snp) -> None:
    server = snp.server
    by_worker = server.connections(per_worker=2)
    channels = [c for cs in by_worker.values() for c in cs]
    with ThreadPoolExecutor(len(channels)) as pool:
        in_flight = [pool.submit(snp.appraise, c) for c in channels]
        server.process.send_signal(signal.SIGTERM)
        answered = {f.result().status for f in in_flight}  # every in-flight appraisal completes
    assert answered <= {pb.STATUS_AFFIRMING, pb.STATUS_CONTRAINDICATED}  # (contraindicated once revoked above)
    wait_until(lambda: server.get("/readyz")[0] == 503, "NOT ready while draining")
    for channels in by_worker.values():  # both workers still answer during the drain
        snp.appraise(channels[0])
    server.close_channels()
    assert server.process.wait(timeout=BOUND) == 0, server.output()[-3000:]
    output = server.output()
    assert output.count("received SIGTERM: graceful shutdown") == 2 and "supervisor stopped" in output


@pytest.mark.postgres
def test_a_challenge_is_consumed_once_across_workers(pg_url: str, tmp_path: Path) -> None:
    pki = FakeAwsPki(now=dt.datetime.now(dt.UTC))
    port_file = tmp_path / "nitro.ports.json"
    env = environment(
        VERIFIER_DATABASE_URL=pg_url,
        VERIFIER_WORKERS="2",
        VERIFIER_LISTEN=f"127.0.0.1:{free_port()}",  # a fixed port: the supervisor locks and checks it first
        VERIFIER_HTTP_LISTEN="127.0.0.1:0",
        VERIFIER_DEVELOPMENT="1",
        VERIFIER_OFFLINE="1",
        VERIFIER_DRAIN_SECONDS="0",
        VERIFIER_ALLOW_PLAINTEXT_ADMIN="1",
        VERIFIER_ADMIN_TOKEN_SHA256=hashlib.sha256(TOKEN.encode()).hexdigest(),
        VERIFIER_RATE_APPRAISE_PER_CLIENT="0",
        VERIFIER_RATE_CHALLENGE_PER_CLIENT="0",
    )
    options = json.dumps({"pin": pki.root_fingerprint, "port_file": str(port_file)})
    server = start([sys.executable, "-c", LAUNCHER, options], env, port_file)
    try:
        refs = rv_grpc.ReferenceValuesStub(server.connect())
        for index, value in FakeAwsPki.default_pcrs().items():
            if index in (0, 1, 2):
                refs.Add(
                    pb.AddReferenceValueRequest(kind=f"nitro.pcr{index}", value=value.hex(), label="n"),
                    metadata=ADMIN,
                    timeout=10,
                )
        by_worker = server.connections(per_worker=3)
        channels = [c for cs in by_worker.values() for c in cs[:3]]
        for _ in range(3):
            nonce = pb_grpc.VerifierStub(channels[0]).CreateChallenge(pb.CreateChallengeRequest(), timeout=10).nonce
            request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=nonce), nonce=nonce)
            barrier = threading.Barrier(len(channels))

            def appraise(channel: grpc.Channel) -> pb.AppraiseResponse:
                barrier.wait()
                return pb_grpc.VerifierStub(channel).Appraise(request, timeout=20)

            with ThreadPoolExecutor(len(channels)) as pool:
                responses = list(pool.map(appraise, channels))
            codes = [[f.code for f in r.findings] for r in responses]
            winners = [r for r, c in zip(responses, codes) if "CHALLENGE_REPLAYED" not in c]
            assert len(winners) == 1 and winners[0].status == pb.STATUS_AFFIRMING, codes
            assert sorted(codes).count(["CHALLENGE_REPLAYED"]) == len(channels) - 1, codes
    finally:
        assert stop(server) == 0, server.output()[-3000:]


def test_more_than_one_worker_on_sqlite_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'verifier.db'}"
    result = subprocess.run(
        [str(EXE), "serve", "--db", url, "--dev", "--workers", "2", "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(),
    )
    assert result.returncode == 64, result.stderr[-2000:]
    assert "WORKERS_NEED_POSTGRESQL" in result.stderr and "PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr


# --- in-process pieces: the worker count, the port claim, the supervisor's thread-less HTTP server ----------------


def test_the_worker_count_setting() -> None:
    pg = "postgresql://verifier@127.0.0.1/verifier"
    assert worker_count(Settings(database_url=pg, workers=0)) == len(os.sched_getaffinity(0))  # production
    assert worker_count(Settings(database_url=pg, workers=0, development=True)) == 1
    assert worker_count(Settings(workers=0)) == 1  # the default database is SQLite
    assert worker_count(Settings(database_url=pg, workers=3)) == 3 and worker_count(Settings(workers=1)) == 1
    assert from_environment({"VERIFIER_WORKERS": "4"}).workers == 4 and Settings().workers == 0
    for settings, code in (
        (Settings(workers=2), "WORKERS_NEED_POSTGRESQL"),
        (Settings(database_url=pg, workers=MAX_WORKERS + 1), "SETTING_INVALID"),
    ):
        with pytest.raises(ConfigError) as caught:
            worker_count(settings)
        assert caught.value.code == code


def test_a_claimed_port_is_refused_to_a_second_supervisor_and_to_a_plain_server() -> None:
    first = PortClaims()
    try:
        address, port = first.claim("127.0.0.1:0")
        assert address == f"127.0.0.1:{port}" and port > 0
        second = PortClaims()
        with pytest.raises(ConfigError) as caught:
            second.claim(address)  # the lock
        assert caught.value.code == "ADDRESS_IN_USE" and "verifier-port-" in caught.value.message
        second.release()
        for reuse_address in (0, 1):  # no SO_REUSEPORT (gRPC sets SO_REUSEADDR): refused by the kernel
            with socket.socket() as plain, pytest.raises(OSError):
                plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, reuse_address)
                plain.bind(("127.0.0.1", port))
        with pytest.raises(ConfigError) as caught:
            raise_if_in_use(address)  # what a `--workers 1` server reports
        assert caught.value.code == "ADDRESS_IN_USE"
    finally:
        first.release()
    third = PortClaims()  # released: free again
    try:
        assert third.claim(address)[1] == port
    finally:
        third.release()


def test_the_supervisors_http_server_is_not_held_by_a_slow_client() -> None:
    ready = [True]
    app = HttpApp(Metrics(), lambda: {"keys": []}, lambda: ready[0])
    server = PolledHttpServer("127.0.0.1:0", app, timeout=0.5)
    selector = selectors.DefaultSelector()
    port = server.start(selector)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, _ in selector.select(0.05):
                key.data()
            server.expire()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall(b"GET /readyz HTTP/1.1\r\n")  # and never the end of its head
            assert http_get(port, "/readyz") == (200, b"ok\n")  # answered while the slow one waits
            ready[0] = False
            assert http_get(port, "/healthz")[0] == 503
            slow.settimeout(5)
            assert slow.recv(100) == b""  # closed after its time
        for request, expected in (
            (b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 OK"),
            (b"nonsense\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
            (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n", b"HTTP/1.1 400 Bad Request"),
        ):
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(request)
                client.settimeout(5)
                reply = b""
                while chunk := client.recv(65536):
                    reply += chunk
            assert reply.startswith(expected), reply[:200]
            if request.startswith(b"HEAD"):
                assert reply.endswith(b"\r\n\r\n")  # no body
    finally:
        stop.set()
        thread.join()
        server.stop()
        selector.close()
