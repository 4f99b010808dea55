"""Issue 11 item 1: a database that stops answering (a hung server or a partition: the TCP connection stays up,
nothing comes back) cannot hold a thread past the client-side deadline, new work fails fast while it is down, and
service resumes within about a second of it answering again, without a restart.

Before: `statement_timeout` is the server's, so a silent server left every session waiting on its socket for the
whole fault. The fault is a loopback proxy in front of PostgreSQL switched to silent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.fakes.tcp_proxy import TcpProxy
from verifier.errors import UnavailableError
from verifier.storage import migrate
from verifier.storage.engine import Database, normalize_url
from verifier.storage.migrate import upgrade

T = TypeVar("T")
DEADLINE = 1.5


@pytest.fixture
def proxied(postgres_schema_url: str) -> Iterator[tuple[TcpProxy, Database]]:
    upgrade(postgres_schema_url)
    parsed = make_url(normalize_url(postgres_schema_url))
    with TcpProxy(str(parsed.host or "127.0.0.1"), int(parsed.port or 5432)) as proxy:
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        database = Database(url, deadline_s=DEADLINE, connect_timeout_s=2)
        try:
            yield proxy, database
        finally:
            proxy.forward()
            database.dispose()


def _within(seconds: float, call: Callable[[], T]) -> tuple[float, T | BaseException]:
    """Run `call` in a daemon thread; (elapsed, result or error). Fails the test if it is still running after
    `seconds` (without a client deadline it would never return)."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still blocked after {seconds}s"
    return time.monotonic() - started, outcome[0]


def _select(database: Database) -> int:
    with database.session() as session:
        return int(session.execute(text("SELECT 1")).scalar_one())


def test_a_silent_database_cannot_hold_a_session(proxied: tuple[TcpProxy, Database]) -> None:
    proxy, database = proxied
    assert _select(database) == 1  # a pooled connection is established through the proxy
    proxy.silent()
    elapsed, outcome = _within(20, lambda: _select(database))
    assert isinstance(outcome, UnavailableError) and outcome.code == "DATABASE_UNAVAILABLE", outcome
    assert elapsed < DEADLINE + 4
    assert database.down


def test_work_fails_fast_while_down_and_resumes_when_it_answers(proxied: tuple[TcpProxy, Database]) -> None:
    proxy, database = proxied
    assert _select(database) == 1
    proxy.silent()
    _within(20, lambda: _select(database))
    elapsed, outcome = _within(5, lambda: _select(database))
    assert isinstance(outcome, UnavailableError) and outcome.code == "DATABASE_UNAVAILABLE"
    assert outcome.retry_after is not None and 0 < outcome.retry_after <= 1.5
    assert elapsed < 0.5  # no wait: the database was found down moments ago
    proxy.forward()
    started = time.monotonic()
    while True:  # what the readiness task does every second
        try:
            migrate.check(database)
            break
        except UnavailableError:
            assert time.monotonic() - started < 10, "the database never came back"
            time.sleep(0.05)
    assert not database.down
    assert _select(database) == 1
    assert time.monotonic() - started < 5


def test_the_readiness_check_is_bounded_even_with_the_pool_exhausted(proxied: tuple[TcpProxy, Database]) -> None:
    proxy, database = proxied
    migrate.check(database)
    proxy.silent()
    stuck = [threading.Thread(target=lambda: _within(20, lambda: _select(database)), daemon=True) for _ in range(12)]
    for thread in stuck:
        thread.start()
    elapsed, outcome = _within(20, lambda: migrate.check(database))
    assert isinstance(outcome, UnavailableError), outcome
    assert elapsed < 4
    for thread in stuck:
        thread.join(20)


def test_a_failed_readiness_check_severs_the_work_still_waiting(postgres_schema_url: str) -> None:
    """Work in flight when the server went silent ends when the readiness check finds it gone (about 1 s), not at
    its own, longer deadline."""
    upgrade(postgres_schema_url)
    parsed = make_url(normalize_url(postgres_schema_url))
    with TcpProxy(str(parsed.host or "127.0.0.1"), int(parsed.port or 5432)) as proxy:
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        database = Database(url, deadline_s=30, connect_timeout_s=2)
        try:
            assert _select(database) == 1
            migrate.check(database)
            proxy.silent()
            outcome: list[float] = []

            def stuck() -> None:
                started = time.monotonic()
                try:
                    _select(database)
                except UnavailableError:
                    outcome.append(time.monotonic() - started)

            worker = threading.Thread(target=stuck, daemon=True)
            worker.start()
            time.sleep(0.3)
            _within(20, lambda: migrate.check(database))
            worker.join(10)
            assert outcome and outcome[0] < 8, outcome
        finally:
            proxy.forward()
            database.dispose()
