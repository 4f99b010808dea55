"""How `storage.engine.Database` connects: the pool's options, SQLite's per-connection pragmas, PostgreSQL's
connection arguments (the timeouts sent as server options)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import URL


def pool_options(pool_size: int, max_overflow: int, pool_timeout_s: float) -> dict[str, Any]:
    """`create_engine` keywords of the bounded pool. Last in, first out: the connection just returned serves the
    next unit of work, so one connection serves while the load allows. On SQLite, whose units of one process take
    turns anyway, a first-in-first-out pool rotated them through all its connections, and each found the file
    changed by the others and read its pages again (8-11 pread calls per appraisal at 64 clients, 0.7 with LIFO);
    on PostgreSQL the connections a burst opened stay idle and can be recycled."""
    return {"pool_size": pool_size, "max_overflow": max_overflow, "pool_timeout": pool_timeout_s, "pool_use_lifo": True}


def sqlite_connect_hook(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    """The `connect` listener giving each new SQLite connection its busy timeout, foreign keys and WAL mode."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")  # first: the pragmas below may wait
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    return on_connect


def pg_connect_args(
    parsed: URL, connect_timeout_s: int, statement_timeout_ms: int, lock_timeout_ms: int, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """psycopg connection arguments with the timeouts; settings already in the URL's query win over ours."""
    args = dict(extra)
    query = parsed.query
    if "connect_timeout" not in query and "connect_timeout" not in args and connect_timeout_s > 0:
        args["connect_timeout"] = max(2, int(connect_timeout_s))  # libpq treats 1 as 2
    ours = [
        f"-c {name}={value}"
        for name, value in (("statement_timeout", statement_timeout_ms), ("lock_timeout", lock_timeout_ms))
        if value > 0
    ]
    theirs = args.get("options", query.get("options", ""))
    theirs = theirs if isinstance(theirs, str) else " ".join(theirs)
    options = " ".join([*ours, theirs]).strip()  # later -c settings win: the URL's own come last
    if options:
        args["options"] = options
    return args


def is_memory_sqlite(parsed: URL) -> bool:
    """Whether `parsed` names an in-memory SQLite database (no file: no pool of connections to it)."""
    return parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
