"""Classify database driver errors into stable, caller-safe `UnavailableError` codes.

PostgreSQL errors are classified by SQLSTATE (PostgreSQL documentation, Appendix A "PostgreSQL Error Codes"),
SQLite errors by their result code name (https://www.sqlite.org/rescode.html) or, when the driver gives none, by
the message text. Messages returned here are generic: they never carry the driver's text, which may name the
database host, database, user or file path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exc

DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
DATABASE_READ_ONLY = "DATABASE_READ_ONLY"
DATABASE_BUSY = "DATABASE_BUSY"
DATABASE_FULL = "DATABASE_FULL"
DATABASE_NOT_MIGRATED = "DATABASE_NOT_MIGRATED"

MESSAGES = {
    DATABASE_UNAVAILABLE: "the database is unavailable; retry later",
    DATABASE_READ_ONLY: "the database is read-only (for example during a failover); retry later",
    DATABASE_BUSY: "the database is busy (a lock, statement or connection-pool timeout); retry later",
    DATABASE_FULL: "the database is out of space; retry later",
    DATABASE_NOT_MIGRATED: "the database has no schema; run `verifier db upgrade`",
}

# Exact SQLSTATEs first, then two-character classes.
_PG_STATES = {
    "25006": DATABASE_READ_ONLY,  # read_only_sql_transaction (hot standby, default_transaction_read_only)
    "55P03": DATABASE_BUSY,  # lock_not_available (lock_timeout)
    "57014": DATABASE_BUSY,  # query_canceled (statement_timeout)
    "40001": DATABASE_BUSY,  # serialization_failure
    "40P01": DATABASE_BUSY,  # deadlock_detected
    "53300": DATABASE_BUSY,  # too_many_connections
    "53100": DATABASE_FULL,  # disk_full
    "57P01": DATABASE_UNAVAILABLE,  # admin_shutdown
    "57P02": DATABASE_UNAVAILABLE,  # crash_shutdown
    "57P03": DATABASE_UNAVAILABLE,  # cannot_connect_now
    "42P01": DATABASE_NOT_MIGRATED,  # undefined_table
}
_PG_CLASSES = {
    "08": DATABASE_UNAVAILABLE,  # connection exception
    "53": DATABASE_UNAVAILABLE,  # insufficient resources (other than the above)
    "58": DATABASE_UNAVAILABLE,  # system error (I/O error, ...)
}

# SQLite primary result codes (the extended codes, e.g. SQLITE_READONLY_DBMOVED, share the prefix).
_SQLITE_NAMES = (
    ("SQLITE_READONLY", DATABASE_READ_ONLY),
    ("SQLITE_BUSY", DATABASE_BUSY),
    ("SQLITE_LOCKED", DATABASE_BUSY),
    ("SQLITE_FULL", DATABASE_FULL),
    ("SQLITE_IOERR", DATABASE_UNAVAILABLE),
    ("SQLITE_CANTOPEN", DATABASE_UNAVAILABLE),
)
_SQLITE_TEXTS = (
    ("no such table", DATABASE_NOT_MIGRATED),
    ("readonly database", DATABASE_READ_ONLY),
    ("database is locked", DATABASE_BUSY),
    ("database table is locked", DATABASE_BUSY),
    ("database or disk is full", DATABASE_FULL),
    ("disk i/o error", DATABASE_UNAVAILABLE),
    ("unable to open database file", DATABASE_UNAVAILABLE),
)


@dataclass(frozen=True)
class DatabaseFault:
    """A database error callers may see: a stable `code`, a generic `message`, and the operator-only `detail`."""

    code: str
    message: str
    detail: str


def _fault(code: str, detail: str) -> DatabaseFault:
    return DatabaseFault(code, MESSAGES[code], detail)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _by_sqlstate(state: str) -> str | None:
    return _PG_STATES.get(state) or _PG_CLASSES.get(state[:2])


def _by_sqlite(orig: BaseException) -> str | None:
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        for prefix, code in _SQLITE_NAMES:
            if name.startswith(prefix):
                return code
    text = str(orig).lower()
    for needle, code in _SQLITE_TEXTS:
        if needle in text:
            return code
    return None


def classify(error: BaseException) -> DatabaseFault | None:
    """The fault `error` stands for, or None when it is not about the database's availability.

    None is returned for constraint violations, bad data and programming errors (IntegrityError, DataError,
    ProgrammingError other than an undefined table): callers handle those or they are bugs. Every
    `OperationalError`, `InterfaceError` and disconnect is a fault (DATABASE_UNAVAILABLE unless more is known),
    as is a connection-pool checkout timeout (DATABASE_BUSY).
    """
    if isinstance(error, exc.TimeoutError):  # QueuePool checkout timed out (pool_timeout)
        return _fault(DATABASE_BUSY, "connection pool checkout timed out")
    if not isinstance(error, exc.DBAPIError):
        return None
    orig = error.orig if isinstance(error.orig, BaseException) else error
    detail = _first_line(orig)
    if isinstance(error, exc.IntegrityError):
        return None
    state = getattr(orig, "sqlstate", None)
    code = _by_sqlstate(state) if isinstance(state, str) and len(state) == 5 else None
    if code is None and type(orig).__module__.startswith("sqlite3"):
        code = _by_sqlite(orig)
    if code is None and (error.connection_invalidated or isinstance(error, (exc.OperationalError, exc.InterfaceError))):
        code = DATABASE_UNAVAILABLE
    return _fault(code, detail) if code is not None else None


def is_disconnect(error: BaseException) -> bool:
    """True when `error` says the connection was lost (SQLAlchemy invalidated it): a fresh one may succeed."""
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)
