"""Prometheus metrics on a private registry (one per server, so tests can run several servers). Every series, its
labels and an example alert are listed in docs/metrics.md; tests/integration/test_metrics_scrape.py scrapes a
running server for each.

- gRPC, in the go-grpc-prometheus convention: `grpc_server_started_total`, `grpc_server_handled_total` (label
  `grpc_code` spelled as Go spells it: OK, InvalidArgument, ...) and the `grpc_server_handling_seconds` histogram,
  each with `grpc_type` ("unary"), `grpc_service` and `grpc_method`. Health checks (grpc.health.v1) are probes, not
  traffic: the metrics layer leaves them out (`counted`), as it leaves out HTTP /livez, /readyz and /healthz.
- The service (`VerifierService.observer`): appraisals by TEE, status and workload, findings by code, challenge
  outcomes; the collateral cache (`CachedSource.observer`): hits, misses and fetch errors per vendor; the database
  (`Database.observer`): units of work by operation class and their availability errors. `attach` wires them.
- `verifier_build_info`, and prometheus-client's process (`process_*`), platform (`python_info`) and GC collectors.

With `verifier serve --workers N` (transport/grpc/workers.py) each worker process calls `use_multiprocess(dir)`
before making its `Metrics(per_worker=True)`: every value then lives in a per-process file of prometheus-client's
multiprocess mode in the supervisor's per-run directory, and the supervisor serves `WorkerMetrics`, the sum over
every worker (counters and histograms of a replaced worker stay in the sum, so they never go backwards) plus its
own worker gauges. prometheus-client's process collector reads only its own process, so the supervisor's `process_*`
carry one series per process instead (labels `pid` and `process`: "supervisor" or "worker", the workers being those
of `verifier_worker_rpc_requests`); the GC collector is per process and left out there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from . import __version__

if TYPE_CHECKING:
    from .appraisal.model import Appraisal
    from .bootstrap import Components

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNCOUNTED = ("/grpc.health.v1.Health/",)  # method prefixes the gRPC metrics leave out: probes, not traffic
CHALLENGE_OUTCOMES = ("issued", "consumed", "expired", "replayed", "unknown")
APPRAISE_PATHS = ("inline", "lane")  # evaluated on the event loop, or in an Appraise thread (servicers.py)
VENDORS = ("amd-kds", "intel-pcs")
CACHE_TIERS = ("memory", "database")
DB_OPERATIONS = ("read", "write", "probe")
WORKER_GAUGE = "verifier_worker_rpc_requests"


class Exposition(Protocol):
    """What the HTTP side server serves on /metrics."""

    content_type: str

    def exposition(self) -> bytes: ...


def grpc_code_name(name: str) -> str:
    """A grpc.StatusCode name as go-grpc-prometheus labels it: INVALID_ARGUMENT -> InvalidArgument, CANCELLED ->
    Canceled, OK -> OK. Never raises."""
    if name in ("OK", "CANCELLED"):
        return "OK" if name == "OK" else "Canceled"
    return "".join(part.capitalize() for part in name.split("_"))


def counted(method: str) -> bool:
    """False for the methods the gRPC metrics leave out (health checks)."""
    return not method.startswith(UNCOUNTED)


class RpcSeries:
    """The children of one gRPC method: `started`, the handling-time histogram and, made on first use per code,
    the handled counter (`finish`)."""

    __slots__ = ("_handled", "_handled_metric", "_labels", "_worker", "latency", "started")

    def __init__(self, metrics: Metrics, method: str) -> None:
        service, _, name = method.lstrip("/").rpartition("/")
        self._labels = ("unary", service, name)
        self.started = metrics.started.labels(*self._labels)
        self.latency = metrics.latency.labels(*self._labels)
        self._handled_metric = metrics.handled
        self._handled: dict[Any, Any] = {}  # grpc.StatusCode -> child
        self._worker = metrics.worker_rpcs

    def finish(self, code: Any, seconds: float) -> None:
        """One call of this method ended with `code` (a grpc.StatusCode) after `seconds`. Never raises."""
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self._handled_metric.labels(*self._labels, grpc_code_name(code.name))
        child.inc()
        self.latency.observe(seconds)
        if self._worker is not None:
            self._worker.inc()


class Metrics:
    """The server's series (module docstring, docs/metrics.md). The labelled children are looked up once per label
    set (`labels` validates the values and takes the metric's lock each time): every label is bounded (methods,
    codes, TEEs, statuses, admin-named workloads, finding codes, vendors, operation classes; never ids or nonces).
    With `per_worker` (a worker of `--workers N`) also `verifier_worker_rpc_requests` and none of the process,
    platform, GC and build collectors, which the supervisor serves."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None, *, per_worker: bool = False) -> None:
        # no `*_created` series (a process-wide switch; the multiprocess mode has none either)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        rpc = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started_total", "RPCs started on the server", rpc, registry=r)
        self.handled = Counter(
            "grpc_server_handled_total", "RPCs completed on the server, by status code", [*rpc, "grpc_code"], registry=r
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds", "Time to handle an RPC", rpc, buckets=RPC_BUCKETS, registry=r
        )
        self.worker_rpcs = (
            Gauge(
                WORKER_GAUGE,
                "gRPC requests handled by this live worker process (label pid)",
                registry=r,
                multiprocess_mode="liveall",
            )
            if per_worker
            else None
        )
        self._service_series(r)
        self._dependency_series(r)
        if not per_worker:
            build_info(r)
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self._rpcs: dict[str, RpcSeries] = {}

    def _service_series(self, r: CollectorRegistry) -> None:
        self.appraisals = Counter(
            "verifier_appraisals",
            "Appraisals completed, by TEE, status and workload",
            ["tee", "status", "workload"],
            registry=r,
        )
        self.findings = Counter(
            "verifier_findings", "Findings in completed appraisals, by code", ["tee", "code"], registry=r
        )
        self.challenges = Counter(
            "verifier_challenges", "Challenges issued and their consumption outcomes", ["outcome"], registry=r
        )
        self._appraisal_children: dict[tuple[str, str, str], Any] = {}
        self._finding_children: dict[tuple[str, str], Any] = {}
        self._challenge_children = {o: self.challenges.labels(o) for o in CHALLENGE_OUTCOMES}
        self.paths = Counter(
            "verifier_appraise_path", "Appraise answers by where they were evaluated", ["path"], registry=r
        )
        self._path_children = {p: self.paths.labels(p) for p in APPRAISE_PATHS}

    def _dependency_series(self, r: CollectorRegistry) -> None:
        self.cache_hits = Counter(
            "verifier_collateral_cache_hits", "Collateral served from the cache", ["vendor", "tier"], registry=r
        )
        self.cache_misses = Counter(
            "verifier_collateral_cache_misses", "Collateral loads that asked the vendor", ["vendor"], registry=r
        )
        self.fetch_errors = Counter(
            "verifier_collateral_fetch_errors",
            "Collateral fetches that failed, by code",
            ["vendor", "code"],
            registry=r,
        )
        self.db_seconds = Histogram(
            "verifier_db_transaction_seconds",
            "Database units of work, by operation class",
            ["operation"],
            buckets=DB_BUCKETS,
            registry=r,
        )
        self.db_errors = Counter(
            "verifier_db_errors",
            "Database availability errors, by operation and code",
            ["operation", "code"],
            registry=r,
        )
        self._hit_children = {(v, t): self.cache_hits.labels(v, t) for v in VENDORS for t in CACHE_TIERS}
        self._miss_children = {v: self.cache_misses.labels(v) for v in VENDORS}
        self._error_children: dict[tuple[str, str], Any] = {}
        self._db_children = {o: self.db_seconds.labels(o) for o in DB_OPERATIONS}

    def attach(self, components: Components) -> None:
        """Observe `components`: the service, its collateral cache (when it has one) and its database."""
        components.service.observer = self
        source: Any = components.service.collateral_source
        if hasattr(source, "observer"):
            source.observer = self
        components.database.observer = self

    def rpc(self, method: str) -> RpcSeries:
        """The children of `method` (made once)."""
        series = self._rpcs.get(method)
        if series is None:
            series = self._rpcs[method] = RpcSeries(self, method)
        return series

    def appraised(self, appraisal: Appraisal) -> None:
        """An appraisal completed (the service's observer). Never raises."""
        workload = appraisal.workload["name"] if appraisal.workload else ""
        key = (appraisal.tee, appraisal.status.value, workload)
        child = self._appraisal_children.get(key)
        if child is None:
            child = self._appraisal_children[key] = self.appraisals.labels(*key)
        child.inc()
        for finding in appraisal.findings:
            code = (appraisal.tee, finding.code)
            child = self._finding_children.get(code)
            if child is None:
                child = self._finding_children[code] = self.findings.labels(*code)
            child.inc()

    def appraise_path(self, path: str) -> None:
        """An Appraise answer was evaluated on the event loop ("inline") or in a lane thread ("lane"). Never raises."""
        self._path_children[path].inc()

    def challenge(self, outcome: str) -> None:
        """A challenge was issued or consumed (`CHALLENGE_OUTCOMES`; the service's observer). Never raises."""
        child = self._challenge_children.get(outcome)
        if child is None:
            child = self._challenge_children[outcome] = self.challenges.labels(outcome)
        child.inc()

    def collateral(self, vendor: str, outcome: str, detail: str = "") -> None:
        """The collateral cache's observer: `outcome` "hit" (`detail` the tier), "miss", or "error" (`detail` the
        error code). Never raises."""
        child: Any
        if outcome == "hit":
            child = self._hit_children.get((vendor, detail)) or self.cache_hits.labels(vendor, detail)
        elif outcome == "miss":
            child = self._miss_children.get(vendor) or self.cache_misses.labels(vendor)
        else:
            child = self._error_children.get((vendor, detail))
            if child is None:
                child = self._error_children[(vendor, detail)] = self.fetch_errors.labels(vendor, detail)
        child.inc()

    def database_unit(self, operation: str, seconds: float) -> None:
        """The database's observer: a unit of work of class `operation` took `seconds`. Never raises."""
        (self._db_children.get(operation) or self.db_seconds.labels(operation)).observe(seconds)

    def database_error(self, operation: str, code: str) -> None:
        """The database's observer: a unit of work of class `operation` failed with `code`. Never raises."""
        self.db_errors.labels(operation, code).inc()

    def observe_appraisal(self, tee: str, status: str) -> None:
        """Gone: appraisals are counted by the service (`appraised`, with their workload and findings). Kept as a
        no-op for callers not yet updated."""

    def exposition(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)


def build_info(registry: CollectorRegistry) -> None:
    """`verifier_build_info{version, build} 1`: `build` is what result tokens carry as `ear_verifier_id.build`."""
    Gauge("verifier_build_info", "The verifier's version and build", ["version", "build"], registry=registry).labels(
        __version__, __version__
    ).set(1)


def use_multiprocess(directory: Path) -> None:
    """In a freshly forked worker, before any metric is made: keep every value in `directory` (prometheus-client
    multiprocess mode, which finds its directory in PROMETHEUS_MULTIPROC_DIR)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class _Workers:
    """The workers' files summed (MultiProcessCollector), then `process_*` of the supervisor and of every live
    worker (the pids of `verifier_worker_rpc_requests`), one series per process (labels `pid`, `process`)."""

    def __init__(self, directory: Path) -> None:
        self._files = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        pids: list[str] = []
        for family in self._files.collect():  # type: ignore[no-untyped-call]
            if family.name == WORKER_GAUGE:
                pids = sorted({s.labels["pid"] for s in family.samples if "pid" in s.labels})
            yield family
        yield from _processes([("supervisor", str(os.getpid())), *(("worker", pid) for pid in pids)])


def _processes(processes: Iterable[tuple[str, str]]) -> Iterator[Metric]:
    """prometheus-client's process families for each (role, pid), merged into one family per name."""
    merged: dict[str, Metric] = {}
    for role, pid in processes:
        for family in ProcessCollector(pid=functools.partial(str, pid), registry=None).collect():
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "pid": pid, "process": role}, sample.value)
    yield from merged.values()


class WorkerMetrics:
    """The supervisor's /metrics: the sum over the workers' files in `directory`, the worker gauges, the processes
    (`_Workers`), the platform and the build info."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, directory: Path, workers: int) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.directory = directory
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Workers(directory))
        self.configured = Gauge("verifier_workers", "Worker processes configured", registry=self.registry)
        self.ready = Gauge("verifier_workers_ready", "Worker processes running and ready", registry=self.registry)
        self.restarts = Counter(
            "verifier_worker_restarts", "Worker processes started to replace one that exited", registry=self.registry
        )
        build_info(self.registry)
        PlatformCollector(registry=self.registry)
        self.configured.set(workers)

    def worker_exited(self, pid: int) -> None:
        """Drop the live series of a worker that exited (its counters stay in the sum)."""
        mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
