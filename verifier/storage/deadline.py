"""Client-side deadlines on database work, and failing fast while the database is known to be down.

PostgreSQL's `statement_timeout` is enforced by the server: a server that does not answer at all (a stopped
process, a partition behind a proxy or load balancer that still acknowledges TCP) leaves the client waiting on
its socket for ever, and TCP keepalives or `tcp_user_timeout` do not fire while something acknowledges. So every
unit of work of `Database` runs under a `Deadlines.bound`: when it has not finished in time, a watchdog thread
shuts the socket of each connection the work has checked out (`shutdown(SHUT_RDWR)` on a duplicate of libpq's
descriptor), the blocked driver call fails at once with a lost connection, SQLAlchemy invalidates that connection,
and the caller gets DATABASE_UNAVAILABLE. Nothing is committed by a severed unit of work (the commit, if it was
sent, is the server's to finish or roll back, as on any dropped connection).

`FailFast` is a small circuit breaker over the same unit of work: once the database is known to be down (a unit of
work failed as DATABASE_UNAVAILABLE, or on SQLite waited out its busy timeout, the whole file being locked; when the
readiness check finds the server gone, the work still waiting on it is severed at once as well), new units of work
fail at once with DATABASE_UNAVAILABLE and a retry delay instead of each waiting out the deadline, while one trial
per `trial_every` seconds goes through; any success (a trial, a readiness check) closes it again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Watch:
    deadlines: list[float]  # innermost last
    connections: set[Any] = field(default_factory=set)
    severed: bool = False


class Deadlines:
    """Per-thread deadlines over the DBAPI connections a thread uses (`attach` from the pool's checkout event)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._watches: dict[int, _Watch] = {}
        self._thread: threading.Thread | None = None

    @contextmanager
    def bound(self, seconds: float) -> Iterator[None]:
        """The calling thread's database work inside the block ends within `seconds` (nested bounds: the
        earliest wins). A severed block raises the driver's connection error, which `Database` maps."""
        if seconds <= 0:
            yield
            return
        me = threading.get_ident()
        with self._lock:
            watch = self._watches.get(me)
            deadline = time.monotonic() + seconds
            if watch is None:
                watch = self._watches[me] = _Watch([deadline])
            else:
                watch.deadlines.append(min(deadline, watch.deadlines[-1]))
            self._ensure_thread()
            self._lock.notify()
        try:
            yield
        finally:
            with self._lock:
                watch.deadlines.pop()
                if not watch.deadlines:
                    del self._watches[me]

    def severed_here(self) -> bool:
        """True when the calling thread's current bound has severed its connections."""
        with self._lock:
            watch = self._watches.get(threading.get_ident())
            return watch is not None and watch.severed

    def attach(self, dbapi_connection: Any) -> None:
        """Watch `dbapi_connection` for the calling thread's current bound (no bound: nothing to do)."""
        with self._lock:
            watch = self._watches.get(threading.get_ident())
            if watch is not None:
                watch.connections.add(dbapi_connection)

    def detach(self, dbapi_connection: Any) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.connections.discard(dbapi_connection)

    def sever_all(self) -> int:
        """Sever every watched connection now (the readiness check found the server gone: work waiting on it
        would only wait out its deadline). Returns how many were cut."""
        with self._lock:
            cut = 0
            for watch in self._watches.values():
                for connection in watch.connections:
                    _sever(connection)
                    cut += 1
                watch.connections.clear()
            return cut

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watchdog, name="db-deadline", daemon=True)
            self._thread.start()

    def _watchdog(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                due = [w for w in self._watches.values() if w.deadlines and w.deadlines[-1] <= now]
                for watch in due:
                    for connection in watch.connections:
                        _sever(connection)
                    watch.connections.clear()
                    watch.deadlines[-1] = float("inf")  # severed once; the block unwinds on its own
                    watch.severed = True
                pending = [w.deadlines[-1] for w in self._watches.values() if w.deadlines]
                wait = min(pending, default=now + 60.0) - now
                self._lock.wait(timeout=max(0.01, min(wait, 60.0)))


def _sever(dbapi_connection: Any) -> None:
    """Shut the connection's socket down so a driver call blocked on it returns at once (psycopg 3)."""
    try:
        fd = int(dbapi_connection.pgconn.socket)
    except Exception:  # noqa: BLE001 - not psycopg, or already closed: nothing to cut
        return
    try:
        duplicate = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        duplicate.shutdown(socket.SHUT_RDWR)
        log.warning("database work passed its deadline: connection severed")
    except OSError:
        pass
    finally:
        duplicate.close()


TRIAL = 0.0  # `FailFast.admit`: go ahead as the trial (a distinct value from None, never a real delay)


class FailFast:
    """Open while the database is known to be down; see the module docstring."""

    def __init__(self, trial_every: float = 1.0) -> None:
        self._trial_every = trial_every
        self._lock = threading.Lock()
        self._open = False
        self._next_trial = 0.0
        self.code = ""  # the error code that opened it, answered while open

    @property
    def open(self) -> bool:
        return self._open

    def admit(self) -> float | None:
        """None: go ahead (closed); TRIAL: go ahead, this caller is the trial; else seconds until the next trial."""
        now = time.monotonic()
        with self._lock:
            if not self._open:
                return None
            if now >= self._next_trial:
                self._next_trial = now + self._trial_every
                return TRIAL
            return max(0.001, self._next_trial - now)

    def failed(self, code: str) -> None:
        with self._lock:
            if not self._open:
                log.warning("database %s: new work fails fast, one trial every %gs", code, self._trial_every)
            self._open = True
            self.code = code
            self._next_trial = time.monotonic() + self._trial_every

    def succeeded(self) -> None:
        with self._lock:
            if self._open:
                log.warning("database answers again: fail-fast off")
            self._open = False
