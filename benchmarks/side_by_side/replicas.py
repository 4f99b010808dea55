"""Two replicas on one PostgreSQL (issue 13): two independent `verifier serve` processes (1 worker each, their own
port) over the same schema, the clients split between them (caller i on port i mod 2), against one of them alone
with the same clients, in the same run, on the same TEE and vector.

Both rows keep every answer (warm-up included); afterwards the run checks the database they wrote:
`verifier audit verify` on it must pass (with a checkpoint signed between the two rows, so the rows the first one
wrote must also be left as they were), every answer's appraisal_id must be a recorded appraisal whose token_id is
the jti of the token it carried, with its audit row (action "appraisal", subject the appraisal id), and no call may
have failed.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from .clients import run_load
from .procstat import rss_mb
from .servers import VERIFIER_EXE, BenchDatabase, Server, database, prepare, start_service
from .vectors import Vector, request_bytes

CLI_TIMEOUT = 300.0


def run_replicas(
    vector: Vector,
    *,
    clients: int,
    processes: int,
    warmup: float,
    duration: float,
    pg_url: str,
    workdir: Path,
    workers_flag: bool,
    progress: Any,
) -> dict[str, Any]:
    """One replica, then two, on one fresh PostgreSQL schema; the rows and the checks of what they wrote."""
    message = request_bytes(vector)
    received: list[tuple[str, str | None]] = []
    rows: list[dict[str, Any]] = []
    with database("postgresql", workdir, pg_url) as bench_db:
        prepare(bench_db.url, vector)
        servers: list[Server] = []
        checkpoint: dict[str, Any] = {"ok": False, "detail": "not signed"}
        try:
            for _ in range(2):  # both up front: a refused start fails before any row is measured
                servers.append(start_service(vector, bench_db.url, 1, workdir, workers_flag=workers_flag))
            for count in (1, 2):
                active = servers[:count]
                figures = run_load(
                    [s.port for s in active],
                    message,
                    clients,
                    processes=processes,
                    warmup=warmup,
                    duration=duration,
                    server=[pid for s in active for pid in s.roots],
                    database_pids=bench_db.backend_pids,
                    collect=True,
                )
                received += figures.pop("received")
                rss = {pid: mb for s in active for pid, mb in rss_mb(s.roots).items()}
                row = {"tee": vector.tee, "db": "postgresql", "replicas": count, "workers": 1, **figures}
                row["rss_mb"] = rss
                rows.append(row)
                progress(
                    f"{vector.tee} postgresql {count} replica(s) {clients}c {row['rate']:8.1f}/s "
                    f"p99 {row['p99_ms'] or 0:.1f} ms errors {sum(row['errors'].values())}"
                )
                if count == 1:
                    checkpoint = _sign_checkpoint(bench_db.url, workdir)
        finally:
            for server in servers:
                server.stop()
        checks = [
            _errors_check(rows),
            _audit_check(bench_db.url, checkpoint),
            _tokens_check(bench_db, received),
        ]
    for check in checks:
        progress(f"{vector.tee} replicas check {check['name']}: {'passed' if check['passed'] else 'FAILED'}")
    return {"tee": vector.tee, "clients": clients, "rows": rows, "checks": checks}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VERIFIER_EXE), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT)


def _sign_checkpoint(url: str, workdir: Path) -> dict[str, Any]:
    """A signed checkpoint of the chain head (`verifier audit keygen`, `audit checkpoint`) in a fresh directory."""
    key, directory = workdir / "audit-checkpoint.key", workdir / "audit-checkpoints"
    key.unlink(missing_ok=True)
    Path(f"{key}.pub").unlink(missing_ok=True)
    directory.mkdir(exist_ok=True)
    for old in directory.glob("*.checkpoint"):
        old.unlink()
    made = _cli("audit", "keygen", "--out", str(key), "--name", "side-by-side")
    sign = ("audit", "checkpoint", "--key", str(key), "--dir", str(directory), "--db", url)
    result = made if made.returncode else _cli(*sign)
    ok = result.returncode == 0
    detail = "" if ok else (result.stderr.strip() or result.stdout.strip())
    return {"ok": ok, "directory": directory, "public": Path(f"{key}.pub"), "detail": detail}


def _audit_check(url: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """`verifier audit verify --db URL`, with the checkpoint signed after the first row when there is one."""
    command = ["audit", "verify", "--db", url]
    if checkpoint["ok"]:
        command += ["--checkpoint", str(checkpoint["directory"]), "--key-public", str(checkpoint["public"])]
    result = _cli(*command)
    output = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    detail = "; ".join(output[:3])
    if not checkpoint["ok"]:
        detail += f" (no checkpoint: {checkpoint['detail'][:200]})"
    shown = ["verifier", *command[:3], "URL", *command[4:]]
    return {
        "name": "verifier audit verify",
        "passed": result.returncode == 0 and checkpoint["ok"],
        "exit_code": result.returncode,
        "command": " ".join(shown),
        "detail": detail,
    }


def _errors_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    for row in rows:
        errors.update(row["errors"])
        errors.update(row.get("warmup_errors", {}))
    total = sum(errors.values())
    return {
        "name": "zero errors",
        "passed": total == 0,
        "errors": dict(errors),
        "detail": f"{total} failed or non-affirming calls (warm-up included)",
    }


def _tokens_check(bench_db: BenchDatabase, received: list[tuple[str, str | None]]) -> dict[str, Any]:
    """Every received (appraisal_id, jti): a recorded appraisal with that token_id and its audit row."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(bench_db.url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, token_id FROM appraisals")).tuples()
            recorded: dict[str, str | None] = {str(a): t for a, t in rows}
            audited = set(
                connection.execute(text("SELECT subject FROM audit_log WHERE action = 'appraisal'")).scalars()
            )
    finally:
        engine.dispose()
    ids = [appraisal for appraisal, _ in received]
    no_jti = sum(1 for _, jti in received if jti is None)
    unrecorded = [a for a, _ in received if a not in recorded]
    mismatched = [a for a, jti in received if a in recorded and jti is not None and recorded[a] != jti]
    unaudited = [a for a in ids if a in recorded and a not in audited]
    duplicates = len(ids) - len(set(ids))
    matched = len(received) - no_jti - len(unrecorded) - len(mismatched)
    passed = bool(received) and matched == len(received) and not unaudited and not duplicates
    detail = (
        f"{len(received)} tokens received, {matched} match a recorded appraisal (id and token_id = jti); "
        f"{len(recorded)} appraisals recorded, {len(audited)} audit rows 'appraisal'"
    )
    problems = {
        "without jti": no_jti,
        "appraisal_id not recorded": len(unrecorded),
        "token_id differs from jti": len(mismatched),
        "no audit row": len(unaudited),
        "duplicate appraisal_id": duplicates,
    }
    if any(problems.values()):
        detail += "; " + ", ".join(f"{name} {count}" for name, count in problems.items() if count)
    return {
        "name": "every token matches a recorded appraisal",
        "passed": passed,
        "received": len(received),
        "matched": matched,
        "recorded": len(recorded),
        "audit_rows": len(audited),
        "problems": problems,
        "examples": (unrecorded + mismatched + unaudited)[:3],
        "detail": detail,
    }
