"""Database connection: URL normalization, engine set-up, transactional sessions and error translation.

Every database availability error leaving `Database.session()`, `Database.run()` or `Database.probe()` becomes a
retryable `UnavailableError` with a stable code (DATABASE_UNAVAILABLE, DATABASE_READ_ONLY, DATABASE_BUSY,
DATABASE_FULL, DATABASE_NOT_MIGRATED, see `db_faults`) and a generic message that never names the database host,
database, user, password or file; the driver's text goes to the log only.

Every wait is bounded: connecting (PostgreSQL `connect_timeout`), each statement (`statement_timeout`), each lock
wait (`lock_timeout`; SQLite `busy_timeout`), a connection-pool checkout (`pool_timeout`, bounded pool) and, on
PostgreSQL, each whole unit of work on the client side (`deadline_s`; a server that does not answer at all cannot
hold a thread longer, see `deadline`). While the database is known to be down, units of work fail at once
(`deadline.FailFast`); `probe()` (the readiness check, `migrate.check`, which adds the schema revision: migrate
imports this module, never the other way round) uses its own one-connection pool so a full main pool cannot hide a
dead database from it, and closes the fail-fast state again when it passes. Inside `verifier.blocking.no_blocking`
(an appraisal evaluated on the event loop) no unit of work starts: it would block."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..blocking import would_block
from ..errors import ConfigError, UnavailableError
from .connect_options import is_memory_sqlite, pg_connect_args, pool_options, sqlite_connect_hook
from .db_faults import (
    DATABASE_BUSY,
    DATABASE_UNAVAILABLE,
    MESSAGES,
    classify,
    is_disconnect,
)
from .deadline import TRIAL, Deadlines, FailFast

DEFAULT_DATABASE_URL = "sqlite:///verifier.db"
CONNECT_TIMEOUT_S = 3
STATEMENT_TIMEOUT_MS = 5_000
LOCK_TIMEOUT_MS = 2_000
SQLITE_BUSY_TIMEOUT_MS = 2_000
# SQLite: how long a unit waits for this process's turn before DATABASE_BUSY (an overload, or a stuck unit).
SQLITE_TURN_WAIT_S = 2.0
TRIAL_BUSY_TIMEOUT_MS = 50  # SQLite: the fail-fast trial's busy timeout while the file is found locked
POOL_SIZE, POOL_MAX_OVERFLOW = 5, 5
POOL_TIMEOUT_S = 3.0
DEADLINE_S = 8.0  # a whole unit of work on PostgreSQL (statements are bounded at 5 s by the server already)
CHECK_DEADLINE_S = 1.0  # the readiness check: one short query
PING_DEADLINE_S = 1.0  # the pool's liveness ping of an idle connection

log = logging.getLogger(__name__)
T = TypeVar("T")

_PG_PREFIXES = ("postgresql://", "postgres://")


def normalize_url(url: str) -> str:
    """Map bare PostgreSQL URLs to the psycopg 3 driver; leave everything else unchanged."""
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _parse(url: str) -> URL:
    try:
        return make_url(normalize_url(url))
    except (exc.ArgumentError, ValueError):
        raise ConfigError("DATABASE_URL_INVALID", "the database URL does not parse") from None


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and error messages."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except ConfigError:
        return "<unparseable database URL>"


class _TurnTimeoutError(UnavailableError):
    """DATABASE_BUSY from waiting for this process's SQLite turn (`Database._sqlite_turn`), not from the file."""


class _Unit:
    """What `Database._unit` learns about one unit of work (SQLite: whether it wrote; None: not known)."""

    wrote: bool | None = None
    trial: bool = False  # admitted as the fail-fast trial
    writes: bool = False  # executed an INSERT, UPDATE or DELETE
    current: ClassVar[threading.local] = threading.local()  # .unit: the unit this thread runs statements in


class DatabaseObserver(Protocol):
    """`Database.observer` (`verifier.metrics.Metrics`): units of work and their availability errors by class."""

    def database_unit(self, operation: str, seconds: float) -> None: ...
    def database_error(self, operation: str, code: str) -> None: ...


def _note_writes(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    unit = getattr(_Unit.current, "unit", None)
    if unit is not None and statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
        unit.writes = True


def _restore_busy_timeout(session: Session, busy_timeout_ms: int) -> None:
    try:
        raw: Any = session.connection().connection.dbapi_connection
        raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    except Exception:  # noqa: BLE001 - a broken connection is discarded by the pool anyway
        log.debug("busy_timeout not restored on a failed connection")


def _sqlite_wrote(session: Session) -> bool:
    """True when the session's SQLite connection holds a write transaction (pysqlite opens one only before DML)."""
    raw: Any = session.connection().connection.dbapi_connection
    return bool(getattr(raw, "in_transaction", True))


class Database:
    """One engine per process; `session()` is a unit of work that commits on success and rolls back on error."""

    # Told of each unit of work (`_unit`) and its availability error by class: probe, write (it ran DML) or read.
    observer: DatabaseObserver | None = None

    def __init__(
        self,
        url: str,
        *,
        engine_options: Mapping[str, Any] | None = None,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        pool_size: int = POOL_SIZE,
        max_overflow: int = POOL_MAX_OVERFLOW,
        pool_timeout_s: float = POOL_TIMEOUT_S,
        deadline_s: float = DEADLINE_S,
        fail_fast_trial_s: float = 1.0,
    ) -> None:
        """`engine_options` are extra `create_engine` keywords and win over the keyword arguments here.

        PostgreSQL: `connect_timeout_s`, `statement_timeout_ms` and `lock_timeout_ms` are sent as connection
        options (0 disables one; the URL's own `connect_timeout` / `options` win). SQLite: `busy_timeout_ms`.
        Both: a pool of `pool_size` + `max_overflow` connections, a checkout waits at most `pool_timeout_s`
        (then DATABASE_BUSY). PostgreSQL: a unit of work still running after `deadline_s` is severed (0: never).
        Raises `ConfigError("DATABASE_URL_INVALID")` for an unusable URL.
        """
        self._busy_timeout_ms = busy_timeout_ms
        self._deadlines = Deadlines()
        self._fail_fast = FailFast(fail_fast_trial_s)
        self._deadline_s = 0.0
        self._turn: threading.RLock | None = None  # SQLite: one unit of work at a time in this process
        self.probe_engine: Engine | None = None  # PostgreSQL: the readiness check's own one-connection pool
        parsed = _parse(url)
        options = dict(engine_options or {})
        self.url = parsed.render_as_string(hide_password=False)
        self._password = parsed.password or ""
        self._redacted = parsed.render_as_string(hide_password=True)
        pool = pool_options(pool_size, max_overflow, pool_timeout_s)
        try:
            if parsed.get_backend_name() == "sqlite":
                defaults: dict[str, Any] = {} if is_memory_sqlite(parsed) else pool
                self.engine: Engine = create_engine(parsed, **{**defaults, **options})
                event.listen(self.engine, "connect", sqlite_connect_hook(busy_timeout_ms))
                self._turn = threading.RLock()
            else:
                connect_args = pg_connect_args(
                    parsed, connect_timeout_s, statement_timeout_ms, lock_timeout_ms, options.pop("connect_args", {})
                )
                self.engine = create_engine(
                    parsed, **{"pool_pre_ping": True, **pool, **options, "connect_args": connect_args}
                )
                probe = {"pool_size": 1, "max_overflow": 0, "pool_timeout": CHECK_DEADLINE_S}
                self.probe_engine = create_engine(
                    parsed, **{"pool_pre_ping": True, **options, **probe, "connect_args": connect_args}
                )
                self._watch(self.engine)
                self._watch(self.probe_engine, probe=True)
                self._deadline_s = deadline_s
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            raise ConfigError("DATABASE_URL_INVALID", f"cannot use {self._redacted}: {type(error).__name__}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self.engine, "before_cursor_execute", _note_writes)

    def _watch(self, engine: Engine, *, probe: bool = False) -> None:
        """Put every connection `engine` hands out, and its liveness ping, under the caller's deadline. `probe`:
        the readiness engine, whose ping unanswered for `PING_DEADLINE_S` means the server is silent: fail fast
        and sever the work still waiting on it, without waiting for a reconnect to time out too."""
        deadlines = self._deadlines
        dialect: Any = engine.dialect
        ping = dialect.do_ping

        def bounded_ping(dbapi_connection: Any) -> bool:
            with deadlines.bound(PING_DEADLINE_S):
                deadlines.attach(dbapi_connection)
                try:
                    return bool(ping(dbapi_connection))
                except Exception:
                    if probe and deadlines.severed_here():
                        log.warning("database %s: no answer to a ping within %gs", self._redacted, PING_DEADLINE_S)
                        self._fail_fast.failed(DATABASE_UNAVAILABLE)
                        deadlines.sever_all()
                    raise

        dialect.do_ping = bounded_ping
        event.listen(engine, "checkout", lambda dbapi_connection, *_: deadlines.attach(dbapi_connection))
        event.listen(engine, "checkin", lambda dbapi_connection, *_: deadlines.detach(dbapi_connection))

    @property
    def down(self) -> bool:
        """True while units of work fail fast because the database was found down."""
        return self._fail_fast.open

    @contextmanager
    def _unit(self, deadline_s: float, *, admit: bool = True) -> Iterator[_Unit]:
        """Fail fast while down (unless `admit` is False: the readiness check always tries), bound the work by
        `deadline_s`, translate errors and keep the fail-fast state up to date. While SQLite is found locked
        (DATABASE_BUSY) only a unit that wrote proves it free again: reads pass under another writer's lock."""
        would_block("a database unit of work")
        unit, observer, began, outer = _Unit(), self.observer, time.perf_counter(), getattr(_Unit.current, "unit", None)
        operation: Callable[[], str] = (lambda: "write" if unit.writes else "read") if admit else (lambda: "probe")
        if admit:
            wait = self._fail_fast.admit()
            unit.trial = wait == TRIAL
            if wait is not None and not unit.trial:
                code = self._fail_fast.code or DATABASE_UNAVAILABLE
                if observer is not None:  # refused before it began: an error, no duration
                    observer.database_error("read", code)
                raise UnavailableError(code, MESSAGES[code] + " (so it was moments ago)", retry_after=wait)
        try:
            with self._sqlite_turn() if admit else nullcontext(), self._deadlines.bound(deadline_s):
                _Unit.current.unit = unit
                with self.translate_errors():
                    yield unit
        except UnavailableError as error:
            if observer is not None:
                observer.database_error(operation(), error.code)
            if isinstance(error, _TurnTimeoutError):  # this process's own queue, not a locked file
                raise
            # SQLite: a busy timeout means the whole file is locked (by another process), not one table.
            if error.code == DATABASE_UNAVAILABLE or (error.code == DATABASE_BUSY and self.dialect == "sqlite"):
                self._fail_fast.failed(error.code)
                error.retry_after = error.retry_after or 1.0
                if not admit and error.code == DATABASE_UNAVAILABLE:  # the readiness check: the server is gone
                    self._deadlines.sever_all()
            raise
        finally:
            _Unit.current.unit = outer
            if observer is not None:
                observer.database_unit(operation(), time.perf_counter() - began)
        if unit.wrote or self._fail_fast.code != DATABASE_BUSY:  # a read (readiness too) passes a writer's lock
            self._fail_fast.succeeded()

    @contextmanager
    def _sqlite_turn(self) -> Iterator[None]:
        """SQLite takes one writer at a time (WAL: readers do not wait). This process's units of work take turns
        here, in-process, so concurrent requests of one process queue on a lock instead of meeting SQLite's busy
        timeout (issue 13 item 5: under 64 clients they did, and each DATABASE_BUSY tripped the fail-fast state
        as if another process held the file); only another process can still make SQLite busy. Re-entrant, so a
        unit opened inside another on the same thread does not wait for itself. Raises UnavailableError
        DATABASE_BUSY after `SQLITE_TURN_WAIT_S` (this process is overloaded: the fail-fast state is left alone).
        PostgreSQL: no turn."""
        turn = self._turn
        if turn is None:
            yield
            return
        if not turn.acquire(timeout=SQLITE_TURN_WAIT_S):
            raise _TurnTimeoutError(DATABASE_BUSY, MESSAGES[DATABASE_BUSY], retry_after=1.0)
        try:
            yield
        finally:
            turn.release()

    @property
    def redacted_url(self) -> str:
        return self._redacted

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _unavailable(self, error: BaseException) -> UnavailableError | None:
        fault = classify(error)
        if fault is None:
            return None
        log.warning("database %s: %s (%s)", self._redacted, fault.code, self._scrub(fault.detail))
        return UnavailableError(fault.code, fault.message)

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn database availability errors into `UnavailableError` (see `db_faults.classify`) with a generic
        message; constraint violations and programming errors pass through unchanged."""
        try:
            yield
        except (exc.DBAPIError, exc.TimeoutError) as error:
            mapped = self._unavailable(error)
            if mapped is None:
                raise
            raise mapped from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back on an error. Raises `UnavailableError`."""
        with self._unit(self._deadline_s) as unit, self._sessions.begin() as session:
            quick = unit.trial and self.dialect == "sqlite" and self._fail_fast.code == DATABASE_BUSY
            if quick:  # a trial against a file found locked waits briefly, not the full busy timeout
                session.connection().exec_driver_sql(f"PRAGMA busy_timeout={TRIAL_BUSY_TIMEOUT_MS}")
            try:
                yield session
                if self._fail_fast.open and self.dialect == "sqlite":
                    session.flush()
                    unit.wrote = _sqlite_wrote(session)
            finally:
                if quick:
                    _restore_busy_timeout(session, self._busy_timeout_ms)

    def run(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a unit of work, retried once on a fresh connection if the connection was lost before
        the commit was sent (nothing was committed then). A loss during the commit is not retried: its outcome is
        unknown. Raises `UnavailableError` like `session()`."""
        for attempt in (1, 2):
            with self._unit(self._deadline_s):
                session = self._sessions()
                try:
                    try:
                        result = work(session)
                        session.flush()
                    except exc.DBAPIError as error:
                        session.rollback()
                        if attempt == 1 and is_disconnect(error):
                            log.info("database %s: connection lost, retrying once", self._redacted)
                            continue
                        raise
                    session.commit()
                    return result
                finally:
                    session.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def probe(self, read: Callable[[Connection], T]) -> T:
        """`read` on a connection of the readiness check (`migrate.check`: the database answers and is at the head
        revision): runs even while units of work fail fast, on its own connection, within `CHECK_DEADLINE_S` on
        PostgreSQL; passing ends the fail-fast state, DATABASE_UNAVAILABLE starts it. Raises `UnavailableError`."""
        deadline = CHECK_DEADLINE_S if self._deadline_s > 0 else 0.0
        with self._unit(deadline, admit=False), (self.probe_engine or self.engine).connect() as connection:
            return read(connection)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.probe_engine is not None:
            self.probe_engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self._redacted!r})"
