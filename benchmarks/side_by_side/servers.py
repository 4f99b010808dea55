"""The servers under test, each in its own process tree: N floor handlers sharing a port, or `verifier serve`
(optionally `--workers N`) with its appraisal clock fixed at the vector's verify_at (`--dev --at`); and the
databases they use."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .procstat import tree
from .vectors import ROOT, Vector, register_references

BENCHMARKS = Path(__file__).resolve().parents[1]
VERIFIER_EXE = Path(sys.executable).parent / "verifier"
START_TIMEOUT = 90.0

# `verifier serve` settings of every service row: development mode (an ephemeral key; `--at`, which fixes the
# appraisal clock at the vector's verify_at, needs it), offline, no AMD CRL (the SNP vector carries none; TDX
# always checks its Intel CRLs), rate limits off (every client is 127.0.0.1, one 20/s bucket by default), room for
# 64 clients (the default 64 RPCs in flight is crossed for an instant when a client calls again before the server
# has let go of its previous call; the Appraise lane's default 8 threads + 32 waiting would shed the 64-client rows
# with SERVER_BUSY), no drain pause at stop.
SERVICE_FLAGS = (
    "--dev",
    "--offline",
    "--no-check-crl",
    "--rate-appraise-per-client",
    "0",
    "--rate-appraise-global",
    "0",
    "--max-concurrent-rpcs",
    "256",
)
SERVICE_ENV = {"VERIFIER_APPRAISE_QUEUE": "256", "VERIFIER_DRAIN_SECONDS": "0", "VERIFIER_GRACE_SECONDS": "1"}


class ServerFailedError(RuntimeError):
    """A server did not start (its log's tail is the message)."""


@dataclass
class Server:
    name: str
    port: int
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path] = field(default_factory=list)

    @property
    def roots(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        """SIGTERM every root (a server drains and stops its workers), then SIGKILL what is left of the tree."""
        pids = tree(self.roots)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for pid in tree(pid for pid in pids if pid not in self.roots):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _python_path() -> str:
    parts = [str(BENCHMARKS), str(ROOT)]
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*parts, existing] if existing else parts)


def _wait_ready(server: Server, files: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not all(f.exists() and f.read_text().strip() for f in files):
        failed = [p for p in server.processes if p.poll() is not None]
        if failed or time.monotonic() > deadline:
            server.stop()
            raise ServerFailedError(f"{server.name} did not start: {_last_words(server.logs)}")
        time.sleep(0.05)


def _last_words(logs: list[Path]) -> str:
    """The `verifier: CODE: message` line of a refused start, else the last lines of the logs."""
    lines = [line for log in logs for line in log.read_text(errors="replace").splitlines() if line.strip()]
    refusal = [line for line in lines if line.startswith("verifier: ")]
    return (refusal or lines[-3:] or ["(no output)"])[-1].strip()


def start_floor(tee: str, workers: int, workdir: Path) -> Server:
    """`workers` bare floor handlers on one port (SO_REUSEPORT), each its own process."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": _python_path()}
    server = Server(f"floor[{tee}, {workers}w]", port, [])
    ready = []
    for index in range(workers):
        ready.append(workdir / f"floor-{tee}-{port}-{index}.ready")
        log = workdir / f"floor-{tee}-{port}-{index}.log"
        options = json.dumps({"tee": tee, "port": port, "ready": str(ready[-1])})
        with log.open("wb") as sink:
            server.processes.append(
                subprocess.Popen([sys.executable, "-m", "side_by_side.floor", options], env=env, stderr=sink)
            )
        server.logs.append(log)
    _wait_ready(server, ready)
    return server


def start_service(vector: Vector, url: str, workers: int, workdir: Path, *, workers_flag: bool) -> Server:
    """`verifier serve` on `url` with its appraisal clock fixed at the vector's verify_at (`--at`, with `--dev`)."""
    port = free_port()
    port_file, log = workdir / f"serve-{port}.json", workdir / f"serve-{port}.log"
    env = {**os.environ, **SERVICE_ENV, "VERIFIER_DATABASE_URL": url}
    command = [str(VERIFIER_EXE), "serve", *SERVICE_FLAGS, "--at", vector.verify_at, "--listen", f"127.0.0.1:{port}"]
    command += ["--http-listen", "127.0.0.1:0", "--port-file", str(port_file)]
    if workers_flag:
        command += ["--workers", str(workers)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stderr=sink, stdout=sink)
    server = Server(f"verifier serve [{vector.tee}, {workers}w]", port, [process], [log])
    _wait_ready(server, [port_file])
    return server


def _schema_url(url: str, schema: str) -> str:
    """`url` with psycopg options putting `schema` first on the search_path (as tests/dbfixtures.py does), and the
    schema's name as application_name, which names the server's backends in pg_stat_activity."""
    from sqlalchemy.engine import make_url

    from verifier.storage.engine import normalize_url

    parsed = make_url(normalize_url(url))
    query = {"options": f"-csearch_path={schema}", "application_name": schema}
    return parsed.update_query_dict(query).render_as_string(hide_password=False)


@dataclass
class BenchDatabase:
    backend: str
    url: str
    # The PostgreSQL backend processes serving connections made with `url` (none on SQLite): their CPU is the
    # database's share of an appraisal, which the server's own CPU leaves out.
    backend_pids: Callable[[], list[int]]


@contextlib.contextmanager
def database(backend: str, workdir: Path, pg_url: str) -> Iterator[BenchDatabase]:
    """An empty database: a SQLite file in `workdir`, or a fresh PostgreSQL schema dropped (CASCADE) afterwards."""
    name = f"bench_{secrets.token_hex(6)}"
    if backend == "sqlite":
        yield BenchDatabase(backend, f"sqlite:///{workdir / name}.db", list)
        return
    from sqlalchemy import create_engine, text

    from verifier.storage.engine import normalize_url

    admin = create_engine(normalize_url(pg_url), pool_size=1)

    def backend_pids() -> list[int]:
        with admin.connect() as connection:
            query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
            return [int(pid) for pid in connection.execute(query, {"name": name}).scalars()]

    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield BenchDatabase(backend, _schema_url(pg_url, name), backend_pids)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def prepare(url: str, vector: Vector) -> None:
    """Migrate `url` and approve the vector's measurements at its verify_at (what `verifier refs add` does)."""
    from verifier.bootstrap import build_app
    from verifier.clock import FixedClock
    from verifier.settings import Settings
    from verifier.storage.migrate import upgrade

    upgrade(url)
    components = build_app(Settings(database_url=url, development=True, offline=True), clock=FixedClock(vector.at))
    try:
        register_references(components.references, vector)
    finally:
        components.close()


def has_workers_flag() -> bool:
    """Whether `verifier serve --help` lists --workers (issue 13 item 2)."""
    result = subprocess.run([str(VERIFIER_EXE), "serve", "--help"], capture_output=True, text=True, timeout=60)
    return "--workers" in result.stdout
