"""Issue 11: the real `verifier serve` (a subprocess) stays responsive and stoppable while a dependency hangs.

- A silent PostgreSQL (the pausable proxy of tests/fakes/tcp_proxy.py stops moving bytes, connections stay open)
  with CreateChallenge and Appraise calls in flight must not stop SIGTERM: the process exits within
  drain + grace + 15 s.
- A silent vendor (tests/fakes/silent_vendor.py as AMD KDS and Intel PCS, online fetching on) with 16 anonymous
  SNP Appraise calls waiting on it must not delay the cheap calls: GetSigningKeys and CreateChallenge answer within
  1.5 s each.

Every wait is bounded; the server is killed at the end whatever happens.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import manifest_vectors
from tests.fakes.silent_vendor import SilentVendor
from tests.fakes.tcp_proxy import TcpProxy
from verifier.settings import Settings
from verifier.storage.engine import Database, normalize_url
from verifier.storage.migrate import upgrade
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
DRAIN_SECONDS = 1.0
CHEAP_CALL_BOUND = 1.5  # seconds (the target for the cheap calls under a silent vendor)
SNP_IN_FLIGHT = 16
SNP_GOOD = (
    "snp-genoa-v5-vcek-oak",
    "snp-turin-v5-vcek-oak",
    "snp-milan-v3-vcek-oak-rk",
    "snp-milan-v2-vcek-gosevguest",
)


class Served:
    """`verifier serve` on loopback ports (port file), plaintext, drain DRAIN_SECONDS; killed on close."""

    def __init__(self, tmp_path: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        port_file = tmp_path / "ports.json"
        self.log_path = tmp_path / "serve.log"
        self._log = self.log_path.open("w")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
        command = [
            sys.executable,
            "-c",
            "from verifier.cli.main import main; raise SystemExit(main())",
            "serve",
            "--db",
            url,
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--port-file",
            str(port_file),
            "--drain-seconds",
            str(DRAIN_SECONDS),
            *extra,
        ]
        self.process = subprocess.Popen(
            command,
            env={**clean, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, ValueError):
                ports = json.loads(port_file.read_text())
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                pytest.fail(f"verifier serve did not start: {self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        self.address = f"127.0.0.1:{ports['grpc']}"

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@contextlib.contextmanager
def served(tmp_path: Path, url: str, *extra: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    server = Served(tmp_path, url, *extra, env=env)
    try:
        yield server
    finally:
        server.close()


def through(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parsed = make_url(normalize_url(url))
    return parsed.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)


def tdx_request(vectors_dir: Path) -> pb.AppraiseRequest:
    """A TDX quote with its collateral: appraised without any vendor call, so it reaches the database."""
    vector = next(v for v in manifest_vectors("tdx") if v["id"] == "tdx-v4-dcapqvl-sample")
    folder = vectors_dir / vector["dir"]
    files = [
        pb.CollateralFile(name=p.name, content=p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.name != "evidence.bin"
    ]
    return pb.AppraiseRequest(
        kind=pb.EVIDENCE_KIND_TDX, evidence=(folder / "evidence.bin").read_bytes(), collateral=files
    )


def snp_requests(vectors_dir: Path) -> list[pb.AppraiseRequest]:
    """Anonymous SNP reports without collateral: the verifier must fetch each chip's VCEK from AMD KDS."""
    vectors = [v for v in manifest_vectors("snp") if v["id"] in SNP_GOOD]
    return [
        pb.AppraiseRequest(
            kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=(vectors_dir / v["dir"] / "evidence.bin").read_bytes()
        )
        for v in vectors
    ]


def call_outcome(call: Any) -> str:
    try:
        call()
        return "OK"
    except grpc.RpcError as error:
        return str(error.code().name)


@pytest.mark.postgres
def test_sigterm_while_postgres_is_silent_exits_within_drain_grace_and_15s(
    postgres_schema_url: str, tmp_path: Path, vectors_dir: Path
) -> None:
    upgrade(postgres_schema_url)
    target = make_url(normalize_url(postgres_schema_url))
    bound = DRAIN_SECONDS + Settings().grace_seconds + 15
    # Exit order matters: the channel closes first (cancelling what is in flight), then the server is killed,
    # then the client threads are joined.
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool,
        TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy,
        served(tmp_path, through(postgres_schema_url, proxy), "--offline") as server,
        grpc.insecure_channel(server.address) as channel,
    ):
        stub = pb_grpc.VerifierStub(channel)
        appraisal = tdx_request(vectors_dir)
        stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=30)
        stub.Appraise(appraisal, timeout=30)
        stop = threading.Event()

        def load(call: Any) -> Counter[str]:
            """Calls back to back until told to stop: some are mid-statement when the database goes silent."""
            outcomes: Counter[str] = Counter()
            while not stop.is_set():
                outcomes[call_outcome(call)] += 1
            return outcomes

        calls = [
            pool.submit(load, lambda: stub.CreateChallenge(pb.CreateChallengeRequest(), timeout=60)) for _ in range(4)
        ] + [pool.submit(load, lambda: stub.Appraise(appraisal, timeout=60)) for _ in range(4)]
        time.sleep(1.0)  # the pool's connections are busy
        proxy.silent()
        time.sleep(1.0)  # the calls in flight wait on the silent database, new ones arrive
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(bound)
        except subprocess.TimeoutExpired:
            pytest.fail(f"verifier serve still running {bound:g} s after SIGTERM with PostgreSQL silent")
        took = time.monotonic() - started
        stop.set()
        proxy.forward()
        outcomes: Counter[str] = Counter()
        for call in calls:
            outcomes.update(call.result(timeout=90))  # the client side ends too (the server is gone)
    assert outcomes["OK"] > 0, outcomes  # the load did reach the database before the fault
    assert took <= bound
    assert code == 0, server.log_tail()


def test_silent_vendor_does_not_delay_get_signing_keys_or_create_challenge(
    sqlite_db: Database, tmp_path: Path, vectors_dir: Path
) -> None:
    requests = snp_requests(vectors_dir)
    assert requests, "no SNP vectors"
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=SNP_IN_FLIGHT) as pool,
        SilentVendor("silent") as vendor,
        served(
            tmp_path,
            sqlite_db.url,
            "--rate-appraise-per-client",
            "0",
            env={"VERIFIER_AMD_KDS_URL": vendor.url, "VERIFIER_INTEL_PCS_URL": vendor.url},
        ) as server,
        grpc.insecure_channel(server.address) as flood_channel,
        grpc.insecure_channel(server.address) as probe_channel,
    ):
        flood, probe = pb_grpc.VerifierStub(flood_channel), pb_grpc.VerifierStub(probe_channel)
        probe.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=30)  # warm: channel up, keys loaded
        probe.CreateChallenge(pb.CreateChallengeRequest(), timeout=30)
        in_flight = [
            pool.submit(call_outcome, lambda r=requests[i % len(requests)]: flood.Appraise(r, timeout=60))
            for i in range(SNP_IN_FLIGHT)
        ]
        deadline = time.monotonic() + 15
        while vendor.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert vendor.requests > 0, "the SNP appraisals never asked the vendor"
        time.sleep(0.5)  # every flood call has reached the server
        timings: dict[str, list[float]] = {"GetSigningKeys": [], "CreateChallenge": []}
        for _ in range(2):
            for method, call in (
                ("GetSigningKeys", lambda: probe.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=20)),
                ("CreateChallenge", lambda: probe.CreateChallenge(pb.CreateChallengeRequest(), timeout=20)),
            ):
                start = time.monotonic()
                outcome = call_outcome(call)
                timings[method].append(time.monotonic() - start)
                assert outcome == "OK", f"{method}: {outcome} after {timings[method][-1]:.2f} s"
        vendor.set_mode("answer")  # release the waiting fetches so the flood ends quickly
        for future in in_flight:
            future.result(timeout=90)
    slow = {m: [round(t, 2) for t in ts] for m, ts in timings.items() if max(ts) > CHEAP_CALL_BOUND}
    assert not slow, f"cheap calls slower than {CHEAP_CALL_BOUND} s with {SNP_IN_FLIGHT} SNP appraisals waiting: {slow}"
