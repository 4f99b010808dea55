"""The Grafana dashboard (deploy/grafana) parses, names the provisioned data source by uid, and every series its
queries use is documented in docs/metrics.md and exists (a fresh `Metrics` or, for the `--workers N` series, a
`WorkerMetrics`); the provisioning files point where docker-compose.yml mounts them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_metrics_scrape import documented_series, family_name
from verifier.metrics import Metrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "verifier.json"
PREFIXES = ("grpc_server_", "verifier_", "process_", "python_")


def _datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    return dict(source)


def _queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return exprs + [v["definition"] for v in dashboard["templating"]["list"]]


def _series(expr: str) -> set[str]:
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*[{,)]", expr)) | set(re.findall(r"label_values\((\w+)", expr))
    mentioned = {n for n in re.findall(r"\b[a-z_][a-z0-9_]*\b", expr) if n.startswith(PREFIXES)}
    assert mentioned <= names, f"a series without a selector in {expr!r}"
    return {n for n in names if n.startswith(PREFIXES)}


def _documented_as(name: str, documented: dict[str, str]) -> str | None:
    """The documented series `name` is (a histogram's _bucket / _sum / _count are its histogram's)."""
    if name in documented:
        return name
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base if documented.get(base) == "histogram" else None


def _served(exposition: bytes) -> set[str]:
    return {family.name for family in text_string_to_metric_families(exposition.decode())}


def test_the_dashboard_parses_and_uses_the_provisioned_data_source() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    source = _datasource()
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert dashboard["schemaVersion"] >= 39 and dashboard["uid"] and dashboard["title"]
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
            assert panel["targets"] and all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("requests", "error", "latency", "appraisals", "finding", "challenge", "cache hit", "fetch errors"):
        assert topic in titles
    for topic in ("database", "cpu", "memory"):
        assert topic in titles


def test_every_series_the_dashboard_queries_is_documented_and_exists(tmp_path: Path) -> None:
    every, workers = documented_series(), documented_series(workers_only=True)
    documented = {**every, **workers}
    used = {name for expr in _queries(json.loads(DASHBOARD.read_text())) for name in _series(expr)}
    assert {"grpc_server_handled_total", "verifier_appraisals_total", "process_resident_memory_bytes"} <= used
    resolved = {name: _documented_as(name, documented) for name in used}
    assert all(resolved.values()), f"not in docs/metrics.md: {[n for n, d in resolved.items() if d is None]}"
    served = _served(Metrics().exposition()) | _served(WorkerMetrics(tmp_path, 2).exposition())
    for series in {d for d in resolved.values() if d is not None}:
        assert family_name(series, documented[series]) in served, series
    # and every documented series exists: the single server's in `Metrics`, the workers' in `WorkerMetrics`
    assert {family_name(n, k) for n, k in every.items()} <= _served(Metrics().exposition())
    assert {family_name(n, k) for n, k in workers.items()} <= _served(WorkerMetrics(tmp_path, 2).exposition()) | {
        "verifier_worker_rpc_requests"  # made by each worker (`Metrics(per_worker=True)`), summed from its file
    }


def test_provisioning_points_where_compose_mounts_it() -> None:
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "verifier.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD.parent.name == "dashboards" and (GRAFANA / "provisioning" / "datasources").is_dir()
