#!/usr/bin/env python3
"""Fault qualification (issue 11): latency of the cheap calls, memory and recovery while a dependency hangs.

Not a test: run it by hand (`.venv/bin/python benchmarks/faults.py [--quick] [--backend sqlite postgres]`). For each
backend it runs the real `verifier serve` in a subprocess (temp dir, generated signing key, plaintext loopback,
`--port-file`), with AMD KDS and Intel PCS pointing at a loopback vendor that never answers
(tests/fakes/silent_vendor.py) and online collateral fetching on. PostgreSQL (`--pg-url`, default
postgresql://postgres@127.0.0.1:5432/test) is reached through a pausable TCP proxy (tests/fakes/tcp_proxy.py), on a
fresh schema in the database `--pg-database` (faults_bench, created when missing; the schema is dropped at the
end), migrated first with `verifier db upgrade`.

Scenarios, one after the other on the same server:

- baseline: a prober process (its own channel; open loop, `--probe-rate` calls/s of each of CreateChallenge and
  GetSigningKeys, each with a 5 s deadline) with no fault;
- silent-vendor: `--flood-procs` client processes keep `--flood-concurrency` anonymous SNP and TDX Appraise calls
  each in flight (real evidence from the vectors; half without collateral, so the verifier must ask the vendor,
  half with the files of the vector folder, so TDX needs no vendor and gets a token while SNP still fetches the
  AMD CRL) while the prober measures again; then the vendor answers 404 at once (for the rest of the run) and
  recovery is timed;
- silent-database: the same flood and prober while PostgreSQL is silent (the proxy stops moving bytes, connections
  stay open) or the SQLite file is held under an exclusive lock; then the fault is lifted and recovery is timed.

The JSON has, per backend and scenario: probe p50/p99/mean and status codes per method (`CODE:REASON` with the
verifier's ErrorInfo reason), the p99 ratio to the baseline, flood calls, codes, tokens and p50/p99, peak VmRSS and
VmHWM, recovery seconds and `meets_targets`; per backend the integrity check and the SIGTERM exit time at the end.
`--log-dir DIR` keeps each server's log. The exit status is 1 when the integrity check fails, not when a latency
target is missed (this measures, it does not gate).

Recovery: seconds from lifting the fault until CreateChallenge succeeds (polled every 50 ms, 1 s deadline each) and
until gRPC health ("") says SERVING, without a restart. RSS: VmRSS sampled every 100 ms during the fault (peak) and
VmHWM (the process's peak so far) from /proc/<pid>/status. Per-client rate limits are turned off (every client here
shares 127.0.0.1, which is not what the limits are for); the global limits and --max-concurrent-rpcs stay at their
defaults. At the end: every token the floods got back must match one appraisal row (token_id = the token's jti) and
one "appraisal" audit entry, and `verifier audit verify` must pass. Prints a table and writes
benchmarks/results/faults-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.silent_vendor import SilentVendor  # noqa: E402
from tests.fakes.tcp_proxy import TcpProxy  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SNP_VECTORS = (  # VCEKs fetched from KDS (a v2 report of an unknown product fails at once: left out)
    "snp-genoa-v5-vcek-oak",
    "snp-turin-v5-vcek-oak",
    "snp-milan-v3-vcek-oak-rk",
)
TDX_VECTORS = ("tdx-v4-dcapqvl-sample", "tdx-v5-gotdxguest-sample")
PROBE_DEADLINE = 5.0
TARGET_RATIO, TARGET_RSS_MB, TARGET_RECOVERY_S = 3.0, 300.0, 2.0


@dataclass
class Timing:
    probe_seconds: float
    flood_seconds: float
    flood_deadline: float
    recovery_bound: float


FULL = Timing(probe_seconds=10, flood_seconds=15, flood_deadline=15, recovery_bound=60)
QUICK = Timing(probe_seconds=5, flood_seconds=8, flood_deadline=8, recovery_bound=20)


# --- client processes (spawned: each has its own gRPC channel and GIL) ------------------------------------------


def _probe_process(address: str, seconds: float, rate: float, out: Any) -> None:
    """Open-loop prober: `rate` calls/s of each method for `seconds`; puts {method: [[latency_s, code], ...]}."""
    import grpc

    from verifier.v1 import verifier_pb2 as pb
    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    async def run() -> dict[str, list[list[Any]]]:
        results: dict[str, list[list[Any]]] = {"CreateChallenge": [], "GetSigningKeys": []}
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.VerifierStub(channel)
            await channel.channel_ready()

            async def one(method: str) -> None:
                call = (
                    stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=PROBE_DEADLINE)
                    if method == ("CreateChallenge")
                    else stub.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=PROBE_DEADLINE)
                )
                start = time.perf_counter()
                try:
                    await call
                    code = "OK"
                except grpc.aio.AioRpcError as error:
                    code = _code_and_reason(error)
                results[method].append([time.perf_counter() - start, code])

            tasks: list[asyncio.Task[None]] = []
            start = time.monotonic()
            tick = 0
            while (now := time.monotonic()) < start + seconds:
                for method in results:
                    tasks.append(asyncio.create_task(one(method)))
                tick += 1
                await asyncio.sleep(max(0.0, start + tick / rate - now))
            await asyncio.gather(*tasks)
        return results

    out.put(asyncio.run(run()))


def _flood_process(
    address: str, requests: list[Request], seconds: float, concurrency: int, deadline: float, out: Any
) -> None:
    """Keep `concurrency` Appraise calls in flight for `seconds` (each call bounded by `deadline`); puts
    {"codes": {code: n}, "results": [[token, appraisal_id], ...], "calls": n}."""
    import grpc

    from verifier.v1 import verifier_pb2 as pb
    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    async def run() -> dict[str, Any]:
        codes: Counter[str] = Counter()
        results: list[list[str]] = []
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 8 << 20)]) as channel:
            stub = pb_grpc.VerifierStub(channel)
            await channel.channel_ready()
            end = time.monotonic() + seconds

            async def worker(index: int) -> None:
                n = index
                while time.monotonic() < end:
                    kind, evidence, files = requests[n % len(requests)]
                    n += concurrency
                    collateral = [pb.CollateralFile(name=name, content=content) for name, content in files]
                    message = pb.AppraiseRequest(kind=kind, evidence=evidence, collateral=collateral)
                    started = time.perf_counter()
                    try:
                        reply = await stub.Appraise(message, timeout=deadline)
                        latencies.append(time.perf_counter() - started)
                        codes["OK"] += 1
                        if reply.token:
                            results.append([reply.token, reply.appraisal_id])
                    except grpc.aio.AioRpcError as error:
                        latencies.append(time.perf_counter() - started)
                        codes[_code_and_reason(error)] += 1
                        if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            await asyncio.sleep(0.05)  # refused at once: do not spin

            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return {"codes": dict(codes), "results": results, "calls": sum(codes.values()), "latencies": latencies}

    out.put(asyncio.run(run()))


def _code_and_reason(error: Any) -> str:
    """`CODE` or `CODE:REASON` (the google.rpc.ErrorInfo reason the verifier attaches)."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    name = str(error.code().name)
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return name
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return f"{name}:{info.reason}"
    return name


# --- the server under test --------------------------------------------------------------------------------------


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from verifier.cli.main import main; raise SystemExit(main())", *args]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args), env=env or clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


class Server:
    """`verifier serve` in a subprocess on loopback ports written to a port file. Raises RuntimeError when it does not
    come up within 60 s."""

    def __init__(self, url: str, workdir: Path, vendor_url: str) -> None:
        self.workdir = workdir
        key = workdir / "signing.pem"
        generated = run_cli("keys", "generate", "--out", str(key))
        if generated.returncode != 0:
            raise RuntimeError(f"keys generate failed: {generated.stderr[-2000:]}")
        port_file = workdir / "ports.json"
        self.log = (workdir / "serve.log").open("w")
        env = clean_env(
            VERIFIER_AMD_KDS_URL=vendor_url, VERIFIER_INTEL_PCS_URL=vendor_url, VERIFIER_LOG_LEVEL="WARNING"
        )
        command = cli_command(
            "serve",
            "--db",
            url,
            "--signing-key",
            str(key),
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--port-file",
            str(port_file),
            "--drain-seconds",
            "0",
            "--rate-challenge-per-client",
            "0",
            "--rate-appraise-per-client",
            "0",
            "--workers",  # the qualification is of one process (issue 11); workers are issue 13's benchmark
            "1",
        )
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        deadline = time.monotonic() + 60
        while True:
            if port_file.is_file() and port_file.read_text().strip():
                with contextlib.suppress(json.JSONDecodeError):
                    ports = json.loads(port_file.read_text())
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"verifier serve did not start: {(workdir / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.05)
        self.grpc_port, self.http_port = int(ports["grpc"]), int(ports["http"])
        self.address = f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM in MB (empty when the process is gone)."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return {}
        values = {}
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) / 1024
        return values

    def stop(self, timeout: float = 30) -> float | None:
        """SIGTERM, then SIGKILL after `timeout`; seconds the graceful exit took (None: killed)."""
        start = time.monotonic()
        took: float | None = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
                took = time.monotonic() - start
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        return took


# --- measurements -----------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize_probe(raw: dict[str, list[list[Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, calls in raw.items():
        latencies = [c[0] for c in calls]
        out[method] = {
            "calls": len(calls),
            "p50_ms": _ms(percentile(latencies, 0.50)),
            "p99_ms": _ms(percentile(latencies, 0.99)),
            "mean_ms": _ms(statistics.fmean(latencies)) if latencies else None,
            "codes": dict(Counter(c[1] for c in calls)),
        }
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


@contextlib.contextmanager
def rss_sampler(server: Server) -> Iterator[dict[str, float]]:
    """Samples VmRSS every 100 ms while the block runs; the dict gets peak_rss_mb and hwm_mb."""
    peak: dict[str, float] = {"peak_rss_mb": 0.0, "hwm_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while True:
            memory = server.memory()
            peak["peak_rss_mb"] = max(peak["peak_rss_mb"], round(memory.get("VmRSS", 0.0), 1))
            peak["hwm_mb"] = max(peak["hwm_mb"], round(memory.get("VmHWM", 0.0), 1))
            if stop.wait(0.1):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(5)
        memory = server.memory()
        peak["hwm_mb"] = max(peak["hwm_mb"], round(memory.get("VmHWM", 0.0), 1))


def recovery(address: str, bound: float) -> dict[str, float | None]:
    """Seconds until CreateChallenge succeeds and until health says SERVING (each polled every 50 ms, None past
    `bound`)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from verifier.v1 import verifier_pb2 as pb
    from verifier.v1 import verifier_pb2_grpc as pb_grpc

    start = time.monotonic()
    found: dict[str, float | None] = {"challenge_s": None, "health_s": None}
    with grpc.insecure_channel(address) as channel:
        stub, health = pb_grpc.VerifierStub(channel), health_pb2_grpc.HealthStub(channel)
        while time.monotonic() - start < bound and None in found.values():
            if found["challenge_s"] is None:
                with contextlib.suppress(grpc.RpcError):
                    stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=1.0)
                    found["challenge_s"] = round(time.monotonic() - start, 3)
            if found["health_s"] is None:
                with contextlib.suppress(grpc.RpcError):
                    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        found["health_s"] = round(time.monotonic() - start, 3)
            time.sleep(0.05)
    return found


Request = tuple[str, bytes, list[tuple[str, bytes]]]  # kind (EvidenceKind name), evidence, collateral files


def load_requests(vectors: Path) -> list[Request]:
    """Each SNP and TDX vector twice: evidence only (the verifier must ask the vendor) and with the collateral
    files of its folder (TDX then needs no vendor call and gets a token; SNP still fetches the AMD CRL)."""
    if not (vectors / "MANIFEST.json").is_file():
        raise SystemExit(f"no MANIFEST.json in {vectors}: pass --vectors or set VERIFIER_VECTORS")
    manifest = json.loads((vectors / "MANIFEST.json").read_text())
    by_id = {v["id"]: v for v in manifest["vectors"]}
    requests: list[Request] = []
    for ids, kind in ((SNP_VECTORS, "EVIDENCE_KIND_SEV_SNP"), (TDX_VECTORS, "EVIDENCE_KIND_TDX")):
        for vector_id in ids:
            if vector_id not in by_id:
                continue
            folder = vectors / by_id[vector_id]["dir"]
            evidence = (folder / "evidence.bin").read_bytes()
            files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.name != "evidence.bin"]
            requests += [(kind, evidence, []), (kind, evidence, files)]
    if not requests:
        raise SystemExit(f"no SNP/TDX vectors found in {vectors}")
    return requests


class Flood:
    """`procs` spawned client processes flooding Appraise; `join()` returns merged counts and tokens."""

    def __init__(
        self, context: Any, address: str, requests: list[Request], args: argparse.Namespace, timing: Timing
    ) -> None:
        self.queue = context.Queue()
        self.processes = [
            context.Process(
                target=_flood_process,
                args=(
                    address,
                    requests,
                    timing.flood_seconds,
                    args.flood_concurrency,
                    timing.flood_deadline,
                    self.queue,
                ),
                daemon=True,
            )
            for _ in range(args.flood_procs)
        ]
        self.bound = timing.flood_seconds + timing.flood_deadline + 30

    def start(self) -> Flood:
        for process in self.processes:
            process.start()
        return self

    def join(self) -> dict[str, Any]:
        codes: Counter[str] = Counter()
        results: list[list[str]] = []
        latencies: list[float] = []
        deadline = time.monotonic() + self.bound
        for _ in self.processes:
            try:
                part = self.queue.get(timeout=max(1.0, deadline - time.monotonic()))
            except Exception:  # queue.Empty: a client process died or hung
                codes["CLIENT_LOST"] += 1
                continue
            codes.update(part["codes"])
            results.extend(part["results"])
            latencies.extend(part["latencies"])
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
        return {
            "codes": dict(codes),
            "results": results,
            "calls": sum(codes.values()),
            "p50_ms": _ms(percentile(latencies, 0.50)),
            "p99_ms": _ms(percentile(latencies, 0.99)),
        }


def probe(context: Any, address: str, seconds: float, rate: float) -> Any:
    queue = context.Queue()
    process = context.Process(target=_probe_process, args=(address, seconds, rate, queue), daemon=True)
    process.start()
    return process, queue


def collect_probe(handle: Any, bound: float) -> dict[str, Any]:
    process, queue = handle
    try:
        raw = queue.get(timeout=bound)
    except Exception:
        raw = {"CreateChallenge": [], "GetSigningKeys": []}
    process.join(5)
    if process.is_alive():
        process.kill()
    return summarize_probe(raw)


# --- faults -----------------------------------------------------------------------------------------------------


class SqliteLock:
    """Holds an exclusive lock on a SQLite file (BEGIN EXCLUSIVE) until released."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.connection.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.connection.execute("ROLLBACK")
        self.connection.close()


@dataclass
class Backend:
    name: str
    url: str  # what the server uses (through the proxy for PostgreSQL)
    direct_url: str  # what the integrity check uses
    proxy: TcpProxy | None = None
    sqlite_path: Path | None = None
    cleanup: list[Any] = field(default_factory=list)


def sqlite_backend(workdir: Path) -> Backend:
    path = workdir / "faults.db"
    url = f"sqlite:///{path}"
    return Backend("sqlite", url, url, sqlite_path=path)


def postgres_backend(pg_url: str, database: str) -> Backend:
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(pg_url)
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{database}"')
    schema = f"faults_{secrets.token_hex(4)}"
    target = base.set(drivername="postgresql", database=database)
    with psycopg.connect(target.render_as_string(hide_password=False), autocommit=True, connect_timeout=5) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    proxy = TcpProxy(base.host or "127.0.0.1", base.port or 5432).start()

    def url_for(host: str, port: int) -> str:
        return (
            target.set(host=host, port=port)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )

    def drop() -> None:
        with psycopg.connect(target.render_as_string(hide_password=False), autocommit=True, connect_timeout=5) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')

    backend = Backend(
        "postgresql",
        url_for("127.0.0.1", proxy.port),
        url_for(base.host or "127.0.0.1", base.port or 5432),
        proxy=proxy,
    )
    backend.cleanup += [proxy.close, drop]
    return backend


@contextlib.contextmanager
def database_fault(backend: Backend) -> Iterator[str]:
    if backend.proxy is not None:
        backend.proxy.silent()
        try:
            yield "postgresql behind the proxy: silent"
        finally:
            backend.proxy.forward()
    else:
        assert backend.sqlite_path is not None
        lock = SqliteLock(backend.sqlite_path)
        try:
            yield "sqlite file: exclusive lock held"
        finally:
            lock.release()


# --- integrity --------------------------------------------------------------------------------------------------


def jwt_id(token: str) -> str:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


def integrity(backend: Backend, results: list[list[str]]) -> dict[str, Any]:
    from sqlalchemy import create_engine, select

    from verifier.storage.engine import normalize_url
    from verifier.storage.tables import AppraisalRow, AuditRow

    engine = create_engine(normalize_url(backend.direct_url))
    problems: list[str] = []
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(AppraisalRow.id, AppraisalRow.token_id)).all()
            audited = Counter(
                connection.execute(select(AuditRow.subject).where(AuditRow.action == "appraisal")).scalars().all()
            )
        by_token: dict[str | None, list[str]] = {}
        for appraisal_id, token_id in rows:
            by_token.setdefault(token_id, []).append(appraisal_id)
        for token, appraisal_id in results:
            token_id = jwt_id(token)
            matches = by_token.get(token_id, [])
            if matches != [appraisal_id]:
                problems.append(f"token {token_id}: appraisal rows {matches}, answer said {appraisal_id}")
            elif audited[appraisal_id] != 1:
                problems.append(f"appraisal {appraisal_id}: {audited[appraisal_id]} audit entries")
    finally:
        engine.dispose()
    verify = run_cli("audit", "verify", "--db", backend.direct_url)
    return {
        "tokens": len(results),
        "appraisal_rows": len(rows),
        "audit_appraisal_entries": sum(audited.values()),
        "mismatches": problems[:20],
        "mismatch_count": len(problems),
        "audit_verify_exit": verify.returncode,
        "audit_verify_output": (verify.stdout + verify.stderr).strip()[-500:],
        "ok": not problems and verify.returncode == 0,
    }


# --- one backend ------------------------------------------------------------------------------------------------


def scenario(
    name: str,
    server: Server,
    context: Any,
    requests: list[Request] | None,
    args: argparse.Namespace,
    timing: Timing,
    fault: contextlib.AbstractContextManager[str] | None,
    lift: Any = None,
) -> dict[str, Any]:
    """One measured window: prober (+ flood under the fault when `requests`), then recovery after the fault."""
    print(f"  {name} ...", flush=True)
    record: dict[str, Any] = {"scenario": name}
    with contextlib.ExitStack() as stack:
        if fault is not None:
            record["fault"] = stack.enter_context(fault)
        memory = stack.enter_context(rss_sampler(server))
        flood = Flood(context, server.address, requests, args, timing).start() if requests else None
        if flood is not None:
            time.sleep(0.5)  # let the flood fill the server first
        handle = probe(
            context,
            server.address,
            timing.probe_seconds if flood is None else timing.flood_seconds - 0.5,
            args.probe_rate,
        )
        record["probe"] = collect_probe(handle, timing.flood_seconds + PROBE_DEADLINE + 30)
        if lift is not None:
            lift()
        # leaving the stack lifts the fault (proxy forward / lock released) before recovery is timed
    lifted = time.monotonic()
    if fault is not None or lift is not None:
        record["recovery"] = recovery(server.address, timing.recovery_bound)
    if flood is not None:
        outcome = flood.join()
        record["flood"] = {
            "calls": outcome["calls"],
            "codes": outcome["codes"],
            "tokens": len(outcome["results"]),
            "p50_ms": outcome["p50_ms"],
            "p99_ms": outcome["p99_ms"],
        }
        record["_results"] = outcome["results"]
    record["memory"] = memory
    record["fault_lifted_monotonic"] = lifted
    return record


def run_backend(
    backend_name: str, args: argparse.Namespace, timing: Timing, requests: list[Request], context: Any
) -> dict[str, Any]:
    print(f"[{backend_name}]", flush=True)
    with tempfile.TemporaryDirectory(prefix=f"faults-{backend_name}-") as tmp:
        workdir = Path(tmp)
        backend = (
            sqlite_backend(workdir) if backend_name == "sqlite" else postgres_backend(args.pg_url, args.pg_database)
        )
        vendor = SilentVendor("silent").start()
        server: Server | None = None
        try:
            upgraded = run_cli("db", "upgrade", "--db", backend.url)
            if upgraded.returncode != 0:
                raise RuntimeError(f"db upgrade failed: {upgraded.stderr[-2000:]}")
            server = Server(backend.url, workdir, vendor.url)
            scenarios = [scenario("baseline", server, context, None, args, timing, None)]
            scenarios.append(
                scenario(
                    "silent-vendor",
                    server,
                    context,
                    requests,
                    args,
                    timing,
                    None,
                    lift=lambda: vendor.set_mode("answer"),
                )
            )
            scenarios.append(
                scenario("silent-database", server, context, requests, args, timing, database_fault(backend))
            )
            vendor_requests = vendor.requests
            stop_seconds = server.stop()
            if args.log_dir is not None:
                args.log_dir.mkdir(parents=True, exist_ok=True)
                (args.log_dir / f"serve-{backend_name}.log").write_text((workdir / "serve.log").read_text())
            server = None
            results = [r for s in scenarios for r in s.pop("_results", [])]
            check = integrity(backend, results)
            return {
                "backend": backend_name,
                "scenarios": scenarios,
                "integrity": check,
                "vendor_requests": vendor_requests,
                "sigterm_exit_seconds": stop_seconds,
            }
        finally:
            if server is not None:
                server.stop()
            vendor.close()
            for action in reversed(backend.cleanup):
                with contextlib.suppress(Exception):
                    action()


# --- report -----------------------------------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 2)


def annotate(report: dict[str, Any]) -> None:
    """Adds p99 ratios to the baseline and pass/fail against the targets."""
    for run in report["runs"]:
        base = run["scenarios"][0]["probe"]
        for item in run["scenarios"]:
            item["p99_ratio"] = {m: ratio(item["probe"][m]["p99_ms"], base[m]["p99_ms"]) for m in item["probe"]}
            rec = item.get("recovery", {})
            item["meets_targets"] = {
                "p99_ratio": all(r is not None and r <= TARGET_RATIO for r in item["p99_ratio"].values()),
                "rss": item["memory"]["peak_rss_mb"] < TARGET_RSS_MB,
                "recovery": all(v is not None and v < TARGET_RECOVERY_S for v in rec.values()) if rec else True,
            }


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def table(report: dict[str, Any]) -> str:
    """The summary table: one line of numbers per scenario, then the probe and flood status codes."""
    lines = [
        "backend    scenario          CC p50/p99 ms    x base  GSK p50/p99 ms   x base  flood p50/p99 ms  calls  "
        "RSS MB (HWM)    recovery CC/health s",
    ]
    for run in report["runs"]:
        for item in run["scenarios"]:
            cc, gsk = item["probe"]["CreateChallenge"], item["probe"]["GetSigningKeys"]
            flood, rec = item.get("flood"), item.get("recovery")
            lines.append(
                f"{run['backend']:<10} {item['scenario']:<16} "
                f"{_pair(cc)} {_fmt(item['p99_ratio']['CreateChallenge']):>7}  "
                f"{_pair(gsk)} {_fmt(item['p99_ratio']['GetSigningKeys']):>7}  "
                f"{_pair(flood) if flood else '-':<17} {flood['calls'] if flood else '-':>5}  "
                f"{item['memory']['peak_rss_mb']:>6.1f} ({item['memory']['hwm_mb']:.1f})  "
                f"{_fmt(rec['challenge_s']) if rec else '-'}/{_fmt(rec['health_s']) if rec else '-'}"
            )
            for method, probe_summary in item["probe"].items():
                lines.append(f"{'':<11}  probe {method}: {_codes(Counter(probe_summary['codes']))}")
            if flood:
                lines.append(f"{'':<11}  flood: {_codes(Counter(flood['codes']))}")
        check = run["integrity"]
        lines.append(
            f"{run['backend']:<10} integrity: {check['tokens']} flood tokens, {check['mismatch_count']} mismatches, "
            f"{check['appraisal_rows']} appraisal rows, {check['audit_appraisal_entries']} audit entries, "
            f"audit verify exit {check['audit_verify_exit']}; SIGTERM exit {_fmt(run['sigterm_exit_seconds'], '.2f')} s"
        )
    lines.append(
        f"targets: p99 <= {TARGET_RATIO:g}x baseline, peak RSS < {TARGET_RSS_MB:g} MB, "
        f"recovery < {TARGET_RECOVERY_S:g} s"
    )
    return "\n".join(lines)


def _pair(probe: dict[str, Any]) -> str:
    return f"{_fmt(probe['p50_ms'], '.1f'):>7}/{_fmt(probe['p99_ms'], '.1f'):<8}"


def _codes(codes: Counter[str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(codes.items())) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows (about 2 minutes in all)")
    parser.add_argument("--backend", nargs="+", choices=("sqlite", "postgres"), default=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg-database", default="faults_bench")
    parser.add_argument("--probe-rate", type=float, default=10.0, help="calls/s of each probed method (default 10)")
    parser.add_argument("--flood-procs", type=int, default=4)
    parser.add_argument("--flood-concurrency", type=int, default=6, help="calls in flight per flood process")
    parser.add_argument(
        "--vectors", type=Path, default=Path(os.environ.get("VERIFIER_VECTORS", ROOT.parent / "shared" / "vectors"))
    )
    parser.add_argument("--log-dir", type=Path, help="copy each server's log here")
    parser.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/faults-<date>.json)")
    args = parser.parse_args(argv)
    timing = QUICK if args.quick else FULL
    requests = load_requests(args.vectors)
    context = mp.get_context("spawn")
    started = time.monotonic()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "timing": timing.__dict__,
        "probe_rate_per_method": args.probe_rate,
        "flood": {"processes": args.flood_procs, "concurrency_each": args.flood_concurrency, "requests": len(requests)},
        "cpus": os.cpu_count(),
        "runs": [],
    }
    for name in args.backend:
        try:
            report["runs"].append(
                run_backend("sqlite" if name == "sqlite" else "postgresql", args, timing, requests, context)
            )
        except Exception as error:  # one backend failing to set up must not lose the other's numbers
            print(f"[{name}] failed: {type(error).__name__}: {error}", file=sys.stderr)
            report.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"[:2000]
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    annotate(report)
    for run in report["runs"]:
        for item in run["scenarios"]:
            item.pop("fault_lifted_monotonic", None)
    print(table(report))
    out = args.out or RESULTS / f"faults-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out} ({report['elapsed_seconds']} s)")
    return 0 if report["runs"] and all(r["integrity"]["ok"] for r in report["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
