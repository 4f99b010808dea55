"""Prometheus metrics on a private registry (one per server, so tests can run several servers)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """RPC counts by method and code, RPC latency, appraisals by TEE and status."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpcs.labels(method=method, code=code).inc()
        self.latency.labels(method=method).observe(seconds)

    def observe_appraisal(self, tee: str, status: str) -> None:
        self.appraisals.labels(tee=tee, status=status).inc()

    def exposition(self) -> bytes:
        """The text exposition format of this registry."""
        return generate_latest(self.registry)
