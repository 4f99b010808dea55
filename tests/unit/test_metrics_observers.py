"""What the service, the collateral cache and the database report to the server's metrics (docs/metrics.md):
challenge outcomes and appraisals by workload and finding, cache hits / misses / fetch errors per vendor, units of
work by operation class and their availability errors; the go-grpc-prometheus code spelling; and the supervisor of
`--workers N` serving the workers' sums and a `process_*` series per process."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.collateral.routing import vendor_of
from verifier.errors import UnavailableError
from verifier.metrics import CHALLENGE_OUTCOMES, Metrics, WorkerMetrics, grpc_code_name
from verifier.requests import AppraisalRequest
from verifier.storage.collateral import SqlCollateralCache
from verifier.storage.engine import Database

NEXT = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
AT = NEXT - dt.timedelta(days=3)
AMD = CollateralKey("amd.crl", (("product", "Milan"),))
INTEL = CollateralKey("intel.tcb_info", (("fmspc", "00906ed50000"),))


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_grpc_codes_are_spelled_as_go_grpc_prometheus_does() -> None:
    names = {code: grpc_code_name(code.name) for code in grpc.StatusCode}
    assert names[grpc.StatusCode.OK] == "OK" and names[grpc.StatusCode.CANCELLED] == "Canceled"
    assert names[grpc.StatusCode.INVALID_ARGUMENT] == "InvalidArgument"
    assert names[grpc.StatusCode.DEADLINE_EXCEEDED] == "DeadlineExceeded"
    assert names[grpc.StatusCode.UNAUTHENTICATED] == "Unauthenticated"
    assert len(set(names.values())) == len(names)


def test_challenge_outcomes_and_appraisals_by_workload_and_finding(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    metrics = Metrics()
    h.service.observer = metrics
    assert all(value(metrics, "verifier_challenges_total", outcome=o) == 0 for o in CHALLENGE_OUTCOMES)  # made early

    def appraise(nonce: bytes) -> None:
        request = AppraisalRequest(tee="nitro", evidence=h.pki.mint(nonce=nonce), nonce=nonce)
        h.service.appraise(request, require_challenge=True)

    live, old = h.service.create_challenge().nonce, h.service.create_challenge().nonce
    appraise(live)
    appraise(live)  # replayed
    appraise(b"\x01" * 32)  # never issued
    h.clock.at += h.service.challenge_ttl + dt.timedelta(seconds=1)
    appraise(old)  # expired
    h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))  # no challenge: none consumed
    unknown = {**FakeAwsPki.default_pcrs(), 0: b"\x07" * 48}  # matches no approved workload
    h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=unknown)))
    counts = {o: value(metrics, "verifier_challenges_total", outcome=o) for o in CHALLENGE_OUTCOMES}
    assert counts == {"issued": 2, "consumed": 1, "replayed": 1, "unknown": 1, "expired": 1}
    appraisals = {
        (s.labels["status"], s.labels["workload"]): s.value
        for family in metrics.registry.collect()
        if family.name == "verifier_appraisals"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert appraisals == {
        ("affirming", "test-image"): 2,
        ("contraindicated", "test-image"): 3,
        ("contraindicated", ""): 1,
    }
    assert value(metrics, "verifier_findings_total", tee="nitro", code="CHALLENGE_REPLAYED") == 1
    assert value(metrics, "verifier_findings_total", tee="nitro", code="CHALLENGE_EXPIRED") == 1


class Inner:
    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if self.error:
            raise CollateralUnavailableError(self.error, "vendor down")
        return CollateralItem(key, b"crl", fetched_at=AT, next_update=NEXT, source="kds")


def test_cache_hits_misses_and_fetch_errors_per_vendor(db: Database) -> None:
    assert (vendor_of("amd.vcek"), vendor_of("intel.qe_identity"), vendor_of("x.y")) == (
        "amd-kds",
        "intel-pcs",
        "other",
    )
    metrics = Metrics()
    table = SqlCollateralCache(db)
    first, second = CachedSource(Inner(), table), CachedSource(Inner(), table)  # two replicas, one shared table
    broken = CachedSource(Inner("COLLATERAL_FETCH_FAILED"), None, failure_backoff=dt.timedelta(0))
    for source in (first, second, broken):
        source.observer = metrics
    try:
        first.fetch(AMD, at=AT)  # miss: the vendor is asked
        first.fetch(AMD, at=AT)  # memory
        second.fetch(AMD, at=AT)  # the shared table
        for _ in range(2):
            with pytest.raises(CollateralUnavailableError):
                broken.fetch(INTEL, at=AT)
    finally:
        for source in (first, second, broken):
            source.close()
    assert value(metrics, "verifier_collateral_cache_misses_total", vendor="amd-kds") == 1
    assert value(metrics, "verifier_collateral_cache_hits_total", vendor="amd-kds", tier="memory") == 1
    assert value(metrics, "verifier_collateral_cache_hits_total", vendor="amd-kds", tier="database") == 1
    assert value(metrics, "verifier_collateral_cache_misses_total", vendor="intel-pcs") == 2
    assert (
        value(metrics, "verifier_collateral_fetch_errors_total", vendor="intel-pcs", code="COLLATERAL_FETCH_FAILED")
        == 2
    )


def test_database_units_by_operation_class_and_errors(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    metrics = Metrics()
    db.observer = metrics
    try:
        with db.session() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
        with db.session() as session:
            session.execute(text("insert into t VALUES (1)"))
        with db.session() as outer:  # nested units: each its own class
            outer.execute(text("UPDATE t SET x = 2"))
            with db.session() as inner:
                inner.execute(text("SELECT x FROM t"))
        db.probe(lambda connection: connection.execute(text("SELECT 1")).scalar())
        with pytest.raises(UnavailableError) as raised, db.session() as session:
            session.execute(text("SELECT * FROM missing"))
    finally:
        db.dispose()
    count = {
        op: value(metrics, "verifier_db_transaction_seconds_count", operation=op) for op in ("read", "write", "probe")
    }
    assert count == {"read": 3, "write": 2, "probe": 1}
    assert value(metrics, "verifier_db_errors_total", operation="read", code=raised.value.code) == 1


WORKER = """
import sys, time
import grpc
from pathlib import Path
from verifier.metrics import Metrics, use_multiprocess
use_multiprocess(Path(sys.argv[1]))
metrics = Metrics(per_worker=True)
metrics.rpc("/verifier.v1.Verifier/Appraise").finish(grpc.StatusCode.OK, 0.01)
print("ready", flush=True)
time.sleep(60)
"""


def test_the_supervisor_serves_the_workers_sums_and_every_process(tmp_path: Path) -> None:
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        supervisor = WorkerMetrics(tmp_path, 1)
        families = {f.name: f.samples for f in text_string_to_metric_families(supervisor.exposition().decode())}
        labels = {"grpc_type": "unary", "grpc_service": "verifier.v1.Verifier", "grpc_method": "Appraise"}
        (handled,) = families["grpc_server_handled"]
        assert handled.labels == {**labels, "grpc_code": "OK"} and handled.value == 1
        memory = {s.labels["pid"]: s.labels["process"] for s in families["process_resident_memory_bytes"]}
        assert memory == {str(os.getpid()): "supervisor", str(worker.pid): "worker"}
        assert all(s.value > 0 for s in families["process_resident_memory_bytes"])
        assert "verifier_build_info" in families and "python_info" in families
        supervisor.worker_exited(worker.pid)  # its live series go, its counts stay in the sums
        families = {f.name: f.samples for f in text_string_to_metric_families(supervisor.exposition().decode())}
        assert {s.labels["process"] for s in families["process_resident_memory_bytes"]} == {"supervisor"}
        assert families["grpc_server_handled"][0].value == 1
    finally:
        worker.kill()
        worker.wait()
