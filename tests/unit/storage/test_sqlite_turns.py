"""SQLite, the embedded default, under one process's concurrent load (issue 13 item 5): units of work take turns on
an in-process lock (`Database._sqlite_turn`), so concurrent writers of one process never meet SQLite's busy timeout.
Before, the side-by-side benchmark's 64 clients got UNAVAILABLE DATABASE_BUSY from a single server process, and each
one tripped the fail-fast state as if another process held the file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from verifier.errors import UnavailableError
from verifier.storage import engine as engine_module
from verifier.storage.engine import Database

WRITERS = 24
HOLD_S = 0.02  # each unit of work holds SQLite's write lock this long: 24 x 20 ms is far over the busy timeout


def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}", busy_timeout_ms=50, pool_size=WRITERS, max_overflow=0)
    with db.session() as session:
        session.execute(text("CREATE TABLE t (n INTEGER)"))
    return db


def _write(db: Database, n: int) -> None:
    with db.session() as session:
        session.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
        time.sleep(HOLD_S)


def test_concurrent_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    db = _database(tmp_path)
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        start.wait()
        try:
            _write(db, n)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []  # before: DATABASE_BUSY for most of them (busy timeout 50 ms)
    assert not db.down
    with db.session() as session:
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == WRITERS


def test_a_unit_opened_inside_another_on_the_same_thread_does_not_wait_for_itself(tmp_path: Path) -> None:
    db = _database(tmp_path)
    with db.session() as outer:
        outer.execute(text("SELECT 1"))
        with db.session() as inner:  # re-entrant turn: no deadlock, no DATABASE_BUSY
            assert inner.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_waiting_too_long_for_a_turn_is_busy_without_failing_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _database(tmp_path)
    monkeypatch.setattr(engine_module, "SQLITE_TURN_WAIT_S", 0.05)
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with db.session():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(5)
        with pytest.raises(UnavailableError) as info:
            _write(db, 1)
        assert info.value.code == "DATABASE_BUSY" and info.value.retry_after == 1.0
        assert not db.down  # this process's queue, not a file locked by another process
    finally:
        release.set()
        thread.join(5)
    _write(db, 2)  # the turn is free again


def test_the_connection_just_returned_serves_the_next_unit(tmp_path: Path) -> None:
    """The pool is last in, first out: after a burst opened several connections, sequential units keep using one
    of them. A first-in-first-out pool rotated them, and on SQLite each connection then found the file changed by
    the others and read its pages again (8-11 pread calls per appraisal under the side-by-side benchmark)."""
    db = _database(tmp_path)
    held = [db.engine.connect() for _ in range(4)]
    raw = [c.connection.dbapi_connection for c in held]
    assert len({id(r) for r in raw}) == 4
    for connection in held:
        connection.close()
    used = []
    for n in range(6):
        with db.session() as session:
            used.append(id(session.connection().connection.dbapi_connection))
            session.execute(text("INSERT INTO t (n) VALUES (:n)"), {"n": n})
    assert len(set(used)) == 1 and used[0] == id(raw[-1])
    db.dispose()
