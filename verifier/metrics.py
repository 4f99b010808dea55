"""Prometheus metrics on a private registry (one per server, so tests can run several servers).

With `verifier serve --workers N` (transport/grpc/workers.py) each worker process calls `use_multiprocess(dir)`
before making its `Metrics(per_worker=True)`: every value then lives in a per-process file of prometheus-client's
multiprocess mode in the supervisor's per-run directory, and the supervisor serves `WorkerMetrics`, the sum over
every worker (counters and histograms of a replaced worker stay in the sum, so they never go backwards) plus its
own worker gauges.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Exposition(Protocol):
    """What the HTTP side server serves on /metrics."""

    content_type: str

    def exposition(self) -> bytes: ...


class Metrics:
    """RPC counts by method and code, RPC latency, appraisals by TEE and status; with `per_worker` (a worker of
    `--workers N`) also `verifier_worker_rpc_requests`, one series per live worker process (label `pid`)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None, *, per_worker: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.rpcs = Counter(
            "verifier_rpc_requests",
            "gRPC requests handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "verifier_rpc_duration_seconds",
            "gRPC handler latency (observed after the handler finished)",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.appraisals = Counter(
            "verifier_appraisals",
            "Appraisals completed, by TEE and status",
            ["tee", "status"],
            registry=self.registry,
        )
        self.worker_rpcs = (
            Gauge(
                "verifier_worker_rpc_requests",
                "gRPC requests handled by this live worker process (label pid)",
                registry=self.registry,
                multiprocess_mode="liveall",
            )
            if per_worker
            else None
        )

        # The labelled children, looked up once per label set instead of on every call (`labels` validates the
        # label values and takes the metric's lock each time). The label values are the server's methods, gRPC
        # codes, TEEs and statuses, so these stay small.
        self._rpc_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._appraisal_children: dict[tuple[str, str], Any] = {}

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        children = self._rpc_children.get((method, code))
        if children is None:
            children = self._rpc_children[(method, code)] = (
                self.rpcs.labels(method=method, code=code),
                self.latency.labels(method=method),
            )
        count, latency = children
        count.inc()
        latency.observe(seconds)
        if self.worker_rpcs is not None:
            self.worker_rpcs.inc()

    def observe_appraisal(self, tee: str, status: str) -> None:
        child = self._appraisal_children.get((tee, status))
        if child is None:
            child = self._appraisal_children[(tee, status)] = self.appraisals.labels(tee=tee, status=status)
        child.inc()

    def exposition(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)


def use_multiprocess(directory: Path) -> None:
    """In a freshly forked worker, before any metric is made: keep every value in `directory` (prometheus-client
    multiprocess mode, which finds its directory in PROMETHEUS_MULTIPROC_DIR)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class WorkerMetrics:
    """The supervisor's /metrics: the sum over the workers' files in `directory` plus the worker gauges."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, directory: Path, workers: int) -> None:
        self.directory = directory
        self.registry = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
        self.configured = Gauge("verifier_workers", "Worker processes configured", registry=self.registry)
        self.ready = Gauge("verifier_workers_ready", "Worker processes running and ready", registry=self.registry)
        self.restarts = Counter(
            "verifier_worker_restarts", "Worker processes started to replace one that exited", registry=self.registry
        )
        self.configured.set(workers)

    def worker_exited(self, pid: int) -> None:
        """Drop the live series of a worker that exited (its counters stay in the sum)."""
        mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
