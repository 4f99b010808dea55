"""The printed table, the ratios issue 13 names (each beside its target, met or not), the machine and the JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .vectors import ROOT

HEADER = (
    "| TEE | DB | workers | clients | server | appraisals/s | p50 ms | p99 ms | server CPU ms/appraisal "
    "| PostgreSQL CPU ms/appraisal | RSS MB/process | errors |"
)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def grpc_table(rows: list[dict[str, Any]]) -> str:
    """One line per measured row (floor and service over gRPC)."""
    lines = [HEADER, "| " + " | ".join(["---"] * (HEADER.count("|") - 1)) + " |"]
    for r in rows:
        rss = ", ".join(f"{mb:.0f}" for mb in r.get("rss_mb", {}).values()) or "-"
        errors = ", ".join(f"{k} {v}" for k, v in sorted(r.get("errors", {}).items())) or "0"
        lines.append(
            f"| {r['tee']} | {r['db']} | {r['workers']} | {r['clients']} | {r['server']} | {_num(r['rate'])} "
            f"| {_num(r['p50_ms'], 2)} | {_num(r['p99_ms'], 2)} | {_num(r['cpu_ms_per_appraisal'], 2)} "
            f"| {_database_cpu(r)} | {rss} | {errors} |"
        )
    return "\n".join(lines)


def _database_cpu(row: dict[str, Any]) -> str:
    """PostgreSQL backends' CPU per appraisal ("-" on SQLite, where it is in the server's own CPU, and for the
    floor, which has no database)."""
    if row.get("db") != "postgresql" or row.get("server") == "floor":
        return "-"
    return _num(row.get("database_cpu_ms_per_appraisal"), 2)


def in_process_table(rows: list[dict[str, Any]]) -> str:
    """One line per in-process figure (full service, floor, TDX warm/cold, dcap-qvl)."""
    header = (
        "| TEE | DB | in-process | appraisals/s | p50 ms | p99 ms | CPU ms/appraisal | PostgreSQL CPU ms/appraisal |"
    )
    lines = [header, "| --- " * 8 + "|"]
    for r in rows:
        lines.append(
            f"| {r['tee']} | {r['db']} | {r['what']} | {_num(r['rate'])} | {_num(r.get('p50_ms'), 2)} "
            f"| {_num(r.get('p99_ms'), 2)} | {_num(r.get('cpu_ms_per_appraisal'), 2)} | {_database_cpu(r)} |"
        )
    return "\n".join(lines)


def _times(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}x"


def _ratio(name: str, value: float | None, target: float, *, at_most: bool = True) -> dict[str, Any]:
    met = None if value is None else (value <= target if at_most else value >= target)
    return {"name": name, "value": value, "target": target, "at_most": at_most, "met": met}


def _find(rows: list[dict[str, Any]], **where: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in where.items())), None)


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _field(row: dict[str, Any] | None, name: str) -> float | None:
    return None if row is None else row.get(name)


def grpc_ratios(
    rows: list[dict[str, Any]], tee: str, db: str, clients: int, *, scaling: bool = True
) -> list[dict[str, Any]]:
    """CPU per appraisal and p99 vs the floor (1 worker), 2-worker scaling vs the floor's, RSS per process; a
    ratio whose rows are missing is listed with no value ("not measured")."""
    one = {s: _find(rows, tee=tee, db=db, workers=1, clients=clients, server=s) for s in ("floor", "service")}
    two = {s: _find(rows, tee=tee, db=db, workers=2, clients=clients, server=s) for s in ("floor", "service")}
    where = f"{tee} {db} 1 worker {clients} clients"
    floor_cpu = _field(one["floor"], "cpu_ms_per_appraisal")
    service_cpu = _field(one["service"], "cpu_ms_per_appraisal")
    out = [_ratio(f"server CPU/appraisal, service over floor ({where})", _div(service_cpu, floor_cpu), 1.18)]
    if db == "postgresql":  # the same target with the PostgreSQL backends' CPU added to the service's
        total = _sum(service_cpu, _field(one["service"], "database_cpu_ms_per_appraisal"))
        name = f"server + PostgreSQL CPU/appraisal, service over floor ({where})"
        out.append(_ratio(name, _div(total, floor_cpu), 1.18))
    p99 = _div(_field(one["service"], "p99_ms"), _field(one["floor"], "p99_ms"))
    out.append(_ratio(f"p99, service over floor ({where})", p99, 1.2))
    service = _div(_field(two["service"], "rate"), _field(one["service"], "rate"))
    floor = _div(_field(two["floor"], "rate"), _field(one["floor"], "rate"))
    name = f"2-worker scaling, service ({_times(service)}) over floor ({_times(floor)}) ({tee} {db} {clients} clients)"
    if scaling:
        out.append(_ratio(name, _div(service, floor), 0.9, at_most=False))
    services = [r for r in rows if r["tee"] == tee and r["db"] == db and r["server"] == "service" and r.get("rss_mb")]
    if services:
        worst = max(max(r["rss_mb"].values()) for r in services)
        calls = sum(r["appraisals"] for r in services)
        name = f"RSS per service process, MB ({tee} {db}, after {calls} appraisals over gRPC, not 100k)"
        out.append(_ratio(name, worst, 150.0))
    return out


def tdx_ratios(in_process: list[dict[str, Any]], db: str) -> list[dict[str, Any]]:
    """In-process TDX warm and cold over dcap-qvl on the same quote and collateral."""
    reference = _find(in_process, what="dcap-qvl verify")
    warm, cold = _find(in_process, db=db, what="service, TDX warm"), _find(in_process, db=db, what="service, TDX cold")
    if reference is None or warm is None or cold is None:
        return []
    return [
        _ratio(f"in-process TDX warm over dcap-qvl ({db})", _div(warm["rate"], reference["rate"]), 3.5, at_most=False),
        _ratio(f"in-process TDX cold over dcap-qvl ({db})", _div(cold["rate"], reference["rate"]), 1.0, at_most=False),
    ]


def format_ratio(ratio: dict[str, Any]) -> str:
    sign = "<=" if ratio["at_most"] else ">="
    unit = "" if "MB" in ratio["name"] else "x"
    verdict = {True: "met", False: "NOT MET", None: "not measured"}[ratio["met"]]
    value = "-" if ratio["value"] is None else f"{ratio['value']:.2f}{unit}"
    return f"{ratio['name']}: {value} (target {sign} {ratio['target']:g}{unit}) {verdict}"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
    except OSError:
        return ""


def _package(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def commit() -> str:
    return _git("rev-parse", "HEAD")


def event_loop_name() -> str:
    """The loop the floor and the service both run on: VERIFIER_EVENT_LOOP's choice (default auto)."""
    from verifier.event_loop import loop_factory, loop_name, parse_choice

    return loop_name(loop_factory(parse_choice(os.environ.get("VERIFIER_EVENT_LOOP") or "auto")))


def machine() -> dict[str, Any]:
    """The machine and software the run measured, and the commit with the files the work tree had changed (taken
    at the start of the run)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines() if line.strip()]
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: _package(p) for p in ("grpcio", "cryptography", "sqlalchemy", "psycopg", "dcap-qvl", "uvloop")},
        "event_loop": event_loop_name(),
        "commit": commit(),
        "work_tree_changed": bool(changed),
        "changed_files": changed,
        "load_average_at_start": os.getloadavg(),
    }


def describe_machine(m: dict[str, Any]) -> str:
    """One line: CPU, cores, versions, commit, load."""
    changed = f" + {len(m['changed_files'])} changed files" if m["work_tree_changed"] else ""
    load = "/".join(f"{x:.1f}" for x in m["load_average_at_start"])
    end = "/".join(f"{x:.1f}" for x in m.get("load_average_at_end", ()))
    packages = m["packages"]
    postgresql = " ".join((m.get("postgresql") or "-").split()[:2])
    return (
        f"{m['cpu_model']}, {m['cores']} cores, Python {m['python']}, grpcio {packages['grpcio']}, cryptography "
        f"{packages['cryptography']}, dcap-qvl {packages['dcap-qvl']}, {postgresql}, event loop "
        f"{m.get('event_loop', 'asyncio')}; commit {m['commit'][:12]}"
        f"{changed}; load average (1/5/15 min) {load} at start, {end or '-'} at end"
    )


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


TARGET_RSS_MB = 150.0
REPLICAS_HEADER = (
    "| TEE | DB | replicas (1 worker each) | clients | appraisals/s | per replica /s | p50 ms | p99 ms "
    "| server CPU ms/appraisal | PostgreSQL CPU ms/appraisal | RSS MB/process | errors |"
)


def replicas_table(results: list[dict[str, Any]]) -> str:
    """One line per replicas row (one replica, then two on the same PostgreSQL schema)."""
    lines = [REPLICAS_HEADER, "| " + " | ".join(["---"] * (REPLICAS_HEADER.count("|") - 1)) + " |"]
    for result in results:
        for r in result["rows"]:
            rss = ", ".join(f"{mb:.0f}" for mb in r.get("rss_mb", {}).values()) or "-"
            errors = ", ".join(f"{k} {v}" for k, v in sorted(r.get("errors", {}).items())) or "0"
            each = " + ".join(_num(rate) for rate in r.get("rate_by_port", {}).values()) or _num(r["rate"])
            lines.append(
                f"| {r['tee']} | {r['db']} | {r['replicas']} | {r['clients']} | {_num(r['rate'])} | {each} "
                f"| {_num(r['p50_ms'], 2)} | {_num(r['p99_ms'], 2)} | {_num(r['cpu_ms_per_appraisal'], 2)} "
                f"| {_database_cpu(r)} | {rss} | {errors} |"
            )
    return "\n".join(lines)


def replica_ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Two replicas' throughput over one replica's, same clients, same schema, same run."""
    one = _find(result["rows"], replicas=1)
    two = _find(result["rows"], replicas=2)
    name = (
        f"two replicas on one PostgreSQL over one, appraisals/s ({_num(_field(two, 'rate'))} over "
        f"{_num(_field(one, 'rate'))}; {result['tee']}, 1 worker each, {result['clients']} clients)"
    )
    return [_ratio(name, _div(_field(two, "rate"), _field(one, "rate")), 1.6, at_most=False)]


def format_check(tee: str, check: dict[str, Any]) -> str:
    verdict = "passed" if check["passed"] else "FAILED"
    return f"{tee}: {check['name']}: {verdict} ({check['detail']})"


def rss_ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """RSS at the end of the load (target under 150 MB) and its growth since warm-up (target none, within the
    tolerance)."""
    where = f"{result['tee']} {result['db']}, 1 worker, {result['clients']} clients"
    name = f"RSS of verifier serve after {result['total']:,} appraisals, MB ({where})"
    end = _ratio(name, result["rss_end_mb"], TARGET_RSS_MB)
    percent = result["growth_percent"]
    shown = "-" if percent is None else f"{percent:+.1f}%"
    name = (
        f"RSS growth after warm-up, MB ({shown}: {_num(result['rss_warmup_mb'])} MB after "
        f"{result['warmup']:,} appraisals, {_num(result['rss_end_mb'])} MB at {result['total']:,}; "
        f"target none, within {result['growth_tolerance_mb']:g} MB)"
    )
    return [end, _ratio(name, result["growth_mb"], result["growth_tolerance_mb"])]


def rss_summary(result: dict[str, Any]) -> str:
    """The RSS row in a few lines: load, warm-up / end / idle / peak, growth and slope, the readings at each
    twentieth of the run."""
    errors = ", ".join(f"{k} {v}" for k, v in sorted(result.get("errors", {}).items())) or "0"
    growth, percent, slope = result["growth_mb"], result["growth_percent"], result["slope_mb_per_10k"]
    (w0, w1), (e0, e1) = result["rss_warmup_window"], result["rss_end_window"]
    lines = [
        f"- {result['tee']} on {result['db']}, `verifier serve` 1 worker, {result['clients']} clients: "
        f"{result['total']:,} appraisals in {result['seconds']:.0f} s ({_num(result['rate'])}/s, p99 "
        f"{_num(result['p99_ms'], 1)} ms), errors {errors}",
        f"- RSS (largest reading under load, every 0.25 s) after warm-up ({w0:,}-{w1:,} appraisals): "
        f"{_num(result['rss_warmup_mb'])} MB; at the end ({e0:,}-{e1:,}): {_num(result['rss_end_mb'])} MB; "
        f"after the load: {_num(result['rss_idle_mb'])} MB; peak (VmHWM) {_num(result['rss_peak_mb'])} MB",
        f"- growth after warm-up: {'-' if growth is None else f'{growth:+.1f}'} MB "
        f"({'-' if percent is None else f'{percent:+.1f}'}%); slope {'-' if slope is None else f'{slope:+.2f}'} "
        f"MB per 10k appraisals over {result['readings']} readings",
        "- readings (appraisals: MB): "
        + ", ".join(f"{s['appraisals']:,}: {s['rss_mb']:.1f}" for s in result["samples"]),
    ]
    return "\n".join(lines)
