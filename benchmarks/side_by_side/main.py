"""Orchestration of one side-by-side run (see benchmarks/side_by_side.py for what it measures)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import replicas, report, rss_run
from . import vectors as vector_requests
from .clients import run_load
from .procstat import rss_mb
from .servers import (
    SERVICE_ENV,
    SERVICE_FLAGS,
    BenchDatabase,
    Server,
    ServerFailedError,
    database,
    has_workers_flag,
    prepare,
    start_floor,
    start_service,
)
from .vectors import ROOT, TEES, VIEWS, Vector, load_vector, request_bytes

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Row groups: the floor and the service over gRPC, the in-process figures (with dcap-qvl), two replicas on one
# PostgreSQL, and the RSS run (only when asked: --rss-run or --only rss).
ROWS = ("grpc", "in-process", "replicas", "rss")
DEFAULT_ROWS = ("grpc", "in-process", "replicas")
RSS_TOTAL = 100_000


@dataclass(frozen=True)
class Plan:
    tees: tuple[str, ...]
    dbs: tuple[str, ...]
    clients: tuple[int, ...]
    workers: tuple[int, ...]
    duration: float
    warmup: float
    in_process_seconds: float
    client_processes: int
    pg_url: str
    quick: bool
    rows: tuple[str, ...] = DEFAULT_ROWS
    rss_total: int = RSS_TOTAL
    rss_warmup: int = 5000
    rss_tee: str = "tdx"
    rss_db: str = "sqlite"
    view: str = "token"  # AppraiseRequest.view of every request (vectors.VIEWS)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="side_by_side.py", description="issue 13 item 1: floor vs full service")
    parser.add_argument("--quick", action="store_true", help="one-minute smoke run: 1 s rows, 1 and 64 clients")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/side-by-side-DATE.json)")
    parser.add_argument("--tee", nargs="+", choices=TEES, default=list(TEES))
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--pg-url", default=os.environ.get("SIDE_BY_SIDE_PG_URL", PG_URL))
    parser.add_argument("--clients", nargs="+", type=int, help="concurrency levels (default 1 8 64; quick: 1 64)")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="server workers (default 1 2)")
    parser.add_argument("--seconds", type=float, help="measured seconds per row (default 10; quick: 1)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row (default 2; quick: 0.3)")
    parser.add_argument("--client-processes", type=int, default=2, help="client processes at most (default 2)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ROWS,
        help="run only these row groups (default: grpc in-process replicas, and rss with --rss-run)",
    )
    parser.add_argument(
        "--rss-run",
        nargs="?",
        type=int,
        const=RSS_TOTAL,
        metavar="N",
        help=f"add the RSS row: one 1-worker server driven with N appraisals (default {RSS_TOTAL:,}; slow)",
    )
    parser.add_argument("--rss-warmup", type=int, metavar="N", help="first RSS sample after N (default min(5000, N/5))")
    parser.add_argument(
        "--view",
        choices=tuple(VIEWS),
        default="token",
        help="response view the requests ask for (default token: no extracted claims, like the floor's answer)",
    )
    parser.add_argument("--rss-tee", choices=TEES, default="tdx", help="TEE of the RSS row (default tdx)")
    parser.add_argument(
        "--rss-db", choices=("sqlite", "postgresql"), default="sqlite", help="database of the RSS row (default sqlite)"
    )
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    quick = bool(args.quick)
    rows = tuple(args.only) if args.only else DEFAULT_ROWS + (("rss",) if args.rss_run is not None else ())
    total = args.rss_run if args.rss_run is not None else RSS_TOTAL
    if total < 2:
        raise SystemExit("side_by_side.py: --rss-run needs at least 2 appraisals")
    warmup = args.rss_warmup if args.rss_warmup is not None else rss_run.default_warmup(total)
    if not 0 < warmup < total:
        raise SystemExit("side_by_side.py: --rss-warmup must be above 0 and below the --rss-run count")
    return Plan(
        tees=tuple(args.tee),
        dbs=tuple(args.db),
        clients=tuple(args.clients or ((1, 64) if quick else (1, 8, 64))),
        workers=tuple(args.workers),
        duration=args.seconds or (1.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.3 if quick else 2.0),
        in_process_seconds=0.5 if quick else 5.0,
        client_processes=args.client_processes,
        pg_url=args.pg_url,
        quick=quick,
        rows=rows,
        rss_total=total,
        rss_warmup=warmup,
        rss_tee=args.rss_tee,
        rss_db=args.rss_db,
        view=args.view,
    )


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def measure(
    server: Server, message: bytes, clients: int, plan: Plan, labels: dict[str, Any], db: BenchDatabase
) -> dict[str, Any]:
    """One row: the load against `server`, its RSS afterwards and the machine's load average around it; the
    database's CPU only for the service (the floor has none)."""
    load = os.getloadavg()
    figures = run_load(
        server.port,
        message,
        clients,
        processes=plan.client_processes,
        warmup=plan.warmup,
        duration=plan.duration,
        server=server.roots,
        database_pids=db.backend_pids if labels["server"] == "service" else list,
    )
    row = {**labels, "clients": clients, **figures, "rss_mb": rss_mb(server.roots)}
    row["load_average"] = [load, os.getloadavg()]
    progress(
        f"{labels['tee']} {labels['db']} {labels['workers']}w {clients:>2}c {labels['server']:7} "
        f"{row['rate']:8.1f}/s cpu {row['cpu_ms_per_appraisal'] or 0:.2f} ms p99 {row['p99_ms'] or 0:.1f} ms "
        f"errors {row['errors'] or 0}"
    )
    return row


def run_group(vector: Vector, db: str, workers: int, plan: Plan, workdir: Path, flag: bool) -> list[dict[str, Any]]:
    """Floor and service with `workers` workers on a fresh database, each concurrency level back to back."""
    message = request_bytes(vector)
    rows: list[dict[str, Any]] = []
    with database(db, workdir, plan.pg_url) as bench_db:
        prepare(bench_db.url, vector)
        service = start_service(vector, bench_db.url, workers, workdir, workers_flag=flag)  # first: it may refuse
        try:
            floor = start_floor(vector.tee, workers, workdir)
        except BaseException:
            service.stop()
            raise
        try:
            for clients in plan.clients:
                for name, server in (("floor", floor), ("service", service)):
                    labels = {"tee": vector.tee, "db": db, "workers": workers, "server": name}
                    rows.append(measure(server, message, clients, plan, labels, bench_db))
        finally:
            service.stop()
            floor.stop()
    return rows


def run_in_process(vector: Vector, db: str, plan: Plan, workdir: Path, *, floor: bool) -> list[dict[str, Any]]:
    """(b) the full service in-process on `db`; the floor without gRPC; TDX warm and cold."""
    from . import floor as floor_module
    from . import inprocess

    seconds, rows = plan.in_process_seconds, []
    with database(db, workdir, plan.pg_url) as bench_db:
        prepare(bench_db.url, vector)
        figures = inprocess.service_rate(bench_db, vector, seconds)
        rows.append({"tee": vector.tee, "db": db, "what": "service", **figures})
        if vector.tee == "tdx":
            figures = inprocess.tdx_warm_cold(bench_db, vector, seconds)
            rows.append({"tee": "tdx", "db": db, "what": "service, TDX warm", **figures["warm"]})
            rows.append({"tee": "tdx", "db": db, "what": "service, TDX cold", **figures["cold"]})
    if floor:
        rate = floor_module.rate_in_process(vector, seconds)
        rows.append(
            {"tee": vector.tee, "db": "-", "what": "floor (no gRPC)", **rate, "cpu_ms_per_appraisal": rate["cpu_ms"]}
        )
    for row in rows:
        progress(f"{row['tee']} {row['db']} in-process {row['what']}: {row['rate']:.1f}/s")
    return rows


def postgres_version(url: str) -> str | None:
    """The server's version, None when it cannot be reached."""
    from sqlalchemy import create_engine, exc, text
    from sqlalchemy.pool import NullPool

    from verifier.storage.engine import normalize_url

    engine = create_engine(normalize_url(url), poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT version()")).scalar())
    except exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()


def run(plan: Plan, workdir: Path) -> dict[str, Any]:
    """Every row of the plan; returns the JSON document."""
    vector_requests.DEFAULT_VIEW = plan.view  # every request_bytes of the run asks for this view
    at_start = {**report.machine(), "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    flag = has_workers_flag()
    notes: list[str] = []
    workers = plan.workers
    if not flag and any(w != 1 for w in workers) and "grpc" in plan.rows:
        notes.append("`verifier serve --help` lists no --workers: the 2-worker service rows are skipped")
        workers = tuple(w for w in workers if w == 1) or (1,)
    replica_rows = "replicas" in plan.rows and "postgresql" in plan.dbs
    if "replicas" in plan.rows and not replica_rows:
        notes.append("the two-replica rows need PostgreSQL (--db postgresql): skipped")
    wanted = set(plan.dbs) | ({plan.rss_db} if "rss" in plan.rows else set())
    pg = None
    if "postgresql" in wanted and (pg := postgres_version(plan.pg_url)) is None:
        notes.append(f"PostgreSQL at {plan.pg_url} unreachable: its rows are skipped")
    dbs = [db for db in plan.dbs if db != "postgresql" or pg is not None]
    vectors = {tee: load_vector(tee) for tee in plan.tees}
    grpc_rows: list[dict[str, Any]] = []
    in_process: list[dict[str, Any]] = []
    for index, db in enumerate(dbs):
        for tee, vector in vectors.items():
            if "in-process" in plan.rows:
                in_process += run_in_process(vector, db, plan, workdir, floor=index == 0)
            for count in workers if "grpc" in plan.rows else ():
                try:
                    grpc_rows += run_group(vector, db, count, plan, workdir, flag)
                except ServerFailedError as error:
                    notes.append(f"{tee} {db} {count} workers: {error}")
                    progress(notes[-1])
    if "in-process" in plan.rows and "tdx" in vectors and (reference := _dcap(vectors["tdx"], plan)) is not None:
        in_process.append(reference)
    replica_results = _replicas(plan, vectors, workdir, flag, notes) if replica_rows and pg else []
    rss = None
    if "rss" in plan.rows and (plan.rss_db != "postgresql" or pg):
        rss = _rss(plan, workdir, flag, notes)
    if report.commit() != at_start["commit"]:
        notes.append(f"the commit changed during the run: {at_start['commit'][:12]} -> {report.commit()[:12]}")
    machine = {**at_start, "postgresql": pg, "workers_flag": flag}
    document = _document(plan, dbs, grpc_rows, in_process, notes, machine)
    document["replicas"] = replica_results
    document["rss_run"] = rss
    for result in replica_results:
        document["ratios"] += report.replica_ratios(result)
    document["ratios"] += report.rss_ratios(rss) if rss else []
    document["checks"] = [{"tee": r["tee"], **check} for r in replica_results for check in r["checks"]]
    return document


def _replicas(
    plan: Plan, vectors: dict[str, Vector], workdir: Path, flag: bool, notes: list[str]
) -> list[dict[str, Any]]:
    """The two-replica rows of every TEE of the plan, at its largest concurrency."""
    results = []
    for tee, vector in vectors.items():
        try:
            results.append(
                replicas.run_replicas(
                    vector,
                    clients=max(plan.clients),
                    processes=plan.client_processes,
                    warmup=plan.warmup,
                    duration=plan.duration,
                    pg_url=plan.pg_url,
                    workdir=workdir,
                    workers_flag=flag,
                    progress=progress,
                )
            )
        except ServerFailedError as error:
            notes.append(f"{tee} two replicas: {error}")
            progress(notes[-1])
    return results


def _rss(plan: Plan, workdir: Path, flag: bool, notes: list[str]) -> dict[str, Any] | None:
    try:
        return rss_run.run_rss(
            load_vector(plan.rss_tee),
            plan.rss_db,
            total=plan.rss_total,
            warmup=plan.rss_warmup,
            clients=max(plan.clients),
            processes=plan.client_processes,
            pg_url=plan.pg_url,
            workdir=workdir,
            workers_flag=flag,
            progress=progress,
        )
    except ServerFailedError as error:
        notes.append(f"{plan.rss_tee} RSS run: {error}")
        progress(notes[-1])
        return None


def _dcap(vector: Vector, plan: Plan) -> dict[str, Any] | None:
    from . import inprocess

    figures = inprocess.dcap_qvl_rate(vector, plan.in_process_seconds)
    return None if figures is None else {"tee": "tdx", "db": "-", "what": "dcap-qvl verify", **figures}


def _document(
    plan: Plan,
    dbs: list[str],
    rows: list[dict[str, Any]],
    in_process: list[dict[str, Any]],
    notes: list[str],
    machine: dict[str, Any],
) -> dict[str, Any]:
    ratios: list[dict[str, Any]] = []
    for db in dbs:
        for tee in plan.tees if "grpc" in plan.rows else ():
            ratios += report.grpc_ratios(rows, tee, db, max(plan.clients), scaling=2 in plan.workers)
        ratios += report.tdx_ratios(in_process, db)
    return {
        "started": machine.pop("started"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine, "load_average_at_end": os.getloadavg()},
        "plan": asdict(plan),
        "service_flags": list(SERVICE_FLAGS),
        "service_env": dict(SERVICE_ENV),
        "grpc": rows,
        "in_process": in_process,
        "ratios": ratios,
        "notes": notes,
    }


def print_report(document: dict[str, Any]) -> None:
    print(f"\nMachine: {report.describe_machine(document['machine'])}")
    if document["grpc"]:
        print("\nOver gRPC (client-side latency; server CPU from /proc of the server's process tree):\n")
        print(report.grpc_table(document["grpc"]))
    if document["in_process"]:
        print("\nIn-process (one thread):\n")
        print(report.in_process_table(document["in_process"]))
    if document["replicas"]:
        print("\nOne replica, then two on the same PostgreSQL schema (clients round robin over their ports):\n")
        print(report.replicas_table(document["replicas"]))
        print("\nChecks of what the replicas rows wrote:\n")
        for check in document["checks"]:
            print(f"- {report.format_check(check['tee'], check)}")
    if document["rss_run"]:
        print("\nRSS run:\n")
        print(report.rss_summary(document["rss_run"]))
    print("\nRatios (issue 13, 'What it must show'):\n")
    for ratio in document["ratios"]:
        print(f"- {report.format_ratio(ratio)}")
    for note in document["notes"]:
        print(f"\nNote: {note}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = make_plan(args)
    logging.disable(logging.WARNING)
    suffix = ("-quick" if plan.quick else "") + ("-" + "-".join(plan.rows) if args.only else "")
    out = args.out or ROOT / "benchmarks" / "results" / f"side-by-side-{dt.date.today().isoformat()}{suffix}.json"
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
        document = run(plan, Path(tmp))
    report.write_json(out, document)
    print_report(document)
    print(f"\nJSON: {out}")
    return 0
