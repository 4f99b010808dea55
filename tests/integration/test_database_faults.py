"""Database faults (issue 11 items 1 and 4): read-only database, held locks, killed backends, a silent server.

Every fault is injected with bounded time (timeouts of a fraction of a second here) and must come out as a
retryable UnavailableError with a stable code (over gRPC: UNAVAILABLE, never INTERNAL) whose text names no host,
user, database or file; a dropped connection is recovered from without the caller seeing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from tests.dbfixtures import sqlite_url
from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.bootstrap import build
from verifier.clock import FixedClock
from verifier.errors import UnavailableError
from verifier.service import AppraisalRequest
from verifier.settings import Settings
from verifier.storage import audit, migrate
from verifier.storage.engine import Database, normalize_url
from verifier.storage.migrate import upgrade
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

AT = FakeAwsPki().now


def _pg_options(url: str, extra: str) -> str:
    parsed = make_url(normalize_url(url))
    existing = parsed.query.get("options", "")
    existing = existing if isinstance(existing, str) else " ".join(existing)
    return parsed.update_query_dict({"options": f"{existing} {extra}".strip()}).render_as_string(hide_password=False)


def read_only_url(url: str) -> str:
    """The same database opened read-only: SQLite `mode=ro`, PostgreSQL `default_transaction_read_only` for this
    session only (as a failed-over standby answers)."""
    if url.startswith("sqlite:///"):
        return f"sqlite:///file:{url.removeprefix('sqlite:///')}?mode=ro&uri=true"
    return _pg_options(url, "-cdefault_transaction_read_only=on")


def private_parts(url: str) -> list[str]:
    """What a caller must never see: host, user, database name or file path."""
    parsed = make_url(normalize_url(url))
    parts = [str(parsed.database or "")]
    if parsed.get_backend_name() != "sqlite":
        parts += [str(parsed.host), str(parsed.username)]
    return [part for part in parts if part]


def assert_unavailable(info: pytest.ExceptionInfo[UnavailableError], code: str, url: str) -> None:
    assert info.value.code == code
    assert info.value.retryable
    for part in private_parts(url):
        assert part not in str(info.value), part


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason among the status details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    raise AssertionError("no ErrorInfo in the status details")


@pytest.fixture
def pg_url(postgres_schema_url: str) -> str:
    upgrade(postgres_schema_url)
    return postgres_schema_url


@pytest.fixture
def pg_admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    connection = psycopg.connect(os.environ["VERIFIER_TEST_DATABASE_URL"])
    try:
        yield connection
    finally:
        connection.close()


# --- read-only database (both backends) -------------------------------------------------------------------------


def test_read_only_database_is_database_read_only(db: Database, database_url: str) -> None:
    make_harness(db).approve()
    read_only = Database(read_only_url(database_url))
    try:
        harness = make_harness(read_only)
        with pytest.raises(UnavailableError) as info:
            harness.service.create_challenge()
        assert_unavailable(info, "DATABASE_READ_ONLY", database_url)
        with pytest.raises(UnavailableError) as info:
            harness.service.appraise(AppraisalRequest(tee="nitro", evidence=harness.pki.mint()))
        assert_unavailable(info, "DATABASE_READ_ONLY", database_url)
    finally:
        read_only.dispose()


def test_read_only_database_over_grpc_is_unavailable(db: Database, database_url: str) -> None:
    pki = FakeAwsPki()
    settings = Settings(
        database_url=read_only_url(database_url),
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        admin_token_sha256=(hashlib.sha256(b"t").hexdigest(),),
        grace_seconds=0.5,
    )
    components = build(settings, clock=FixedClock(pki.now))

    async def scenario() -> None:
        server = VerifierServer(components)
        port, _http_port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.VerifierStub(channel).CreateChallenge(pb.CreateChallengeRequest())
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_reason(info.value) == "DATABASE_READ_ONLY"
            for part in private_parts(database_url):
                assert part not in (info.value.details() or "")
        finally:
            await channel.close()
            await server.stop(0)

    try:
        asyncio.run(scenario())
    finally:
        components.close()


# --- SQLite locks -----------------------------------------------------------------------------------------------


def test_sqlite_locked_by_another_writer_is_busy(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    upgrade(url)
    holder = sqlite3.connect(tmp_path / "verifier.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an open write transaction: every other writer waits for it
    database = Database(url, busy_timeout_ms=800)
    service = make_harness(database).service  # made before any timing: minting its fake PKI takes a while
    try:
        with pytest.raises(UnavailableError) as info:
            service.create_challenge()
        assert_unavailable(info, "DATABASE_BUSY", url)
        started = time.monotonic()
        with pytest.raises(UnavailableError) as fast:  # the whole file is locked: the next call does not wait again
            service.create_challenge()
        assert fast.value.code == "DATABASE_BUSY" and fast.value.retry_after and time.monotonic() - started < 0.15
        time.sleep(1.1)  # a trial is due; a read passes under the writer's lock (WAL) and must not end fail-fast
        with database.session() as session:
            assert session.execute(text("SELECT count(*) FROM challenges")).scalar_one() >= 0
        started = time.monotonic()
        with pytest.raises(UnavailableError) as still:
            service.create_challenge()
        assert still.value.code == "DATABASE_BUSY" and time.monotonic() - started < 0.5  # no new busy wait
        time.sleep(1.1)  # the next trial is a write: it waits 50 ms for the lock, not the busy timeout
        started = time.monotonic()
        with pytest.raises(UnavailableError) as trial:
            service.create_challenge()
        assert trial.value.code == "DATABASE_BUSY" and time.monotonic() - started < 0.5
        holder.execute("ROLLBACK")
        deadline = time.monotonic() + 5
        while True:  # recovers by itself: the next trial (one a second) succeeds
            try:
                assert service.create_challenge().nonce
                break
            except UnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        holder.close()
        database.dispose()


def test_sqlite_busy_timeout_default(sqlite_db: Database) -> None:
    database = Database(sqlite_db.url)
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 2000
    finally:
        database.dispose()


def test_pool_checkout_timeout_is_busy(sqlite_db: Database) -> None:
    database = Database(sqlite_db.url, pool_size=1, max_overflow=0, pool_timeout_s=0.1)
    try:
        with database.engine.connect():
            with pytest.raises(UnavailableError) as info, database.session() as session:
                session.execute(text("SELECT 1"))
            assert_unavailable(info, "DATABASE_BUSY", sqlite_db.url)
    finally:
        database.dispose()


# --- PostgreSQL timeouts and dropped connections --------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_session_timeouts_default(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        with database.session() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "5s"
            assert session.execute(text("SHOW lock_timeout")).scalar() == "2s"
            assert (
                session.execute(text("SHOW search_path")).scalar() == make_url(pg_url).query["options"].split("=", 1)[1]
            )  # the URL's own options are kept
    finally:
        database.dispose()


@pytest.mark.postgres
def test_postgres_table_lock_is_busy(pg_url: str, pg_admin: psycopg.Connection[tuple[object, ...]]) -> None:
    schema = make_url(pg_url).query["options"].split("=", 1)[1]
    pg_admin.execute(f'LOCK TABLE "{schema}".challenges IN ACCESS EXCLUSIVE MODE')  # held until rollback
    database = Database(pg_url, lock_timeout_ms=200)
    try:
        with pytest.raises(UnavailableError) as info:
            make_harness(database).service.create_challenge()
        assert_unavailable(info, "DATABASE_BUSY", pg_url)
        pg_admin.rollback()
        assert make_harness(database).service.create_challenge().nonce
    finally:
        database.dispose()


@pytest.mark.postgres
def test_postgres_audit_lock_and_slow_statement_are_busy(
    pg_url: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    pg_admin.execute("SELECT pg_advisory_xact_lock(%s)", (audit._PG_LOCK_KEY,))  # a stuck audit writer
    database = Database(pg_url, lock_timeout_ms=200, statement_timeout_ms=300)
    try:
        with pytest.raises(UnavailableError) as info, database.session() as session:
            audit.append(session, at=AT, actor="test", action="probe", subject="lock")
        assert_unavailable(info, "DATABASE_BUSY", pg_url)
        with pytest.raises(UnavailableError) as info, database.session() as session:
            session.execute(text("SELECT pg_sleep(2)"))
        assert_unavailable(info, "DATABASE_BUSY", pg_url)
    finally:
        pg_admin.rollback()
        database.dispose()


@pytest.mark.postgres
def test_postgres_killed_backend_next_call_succeeds(
    pg_url: str, pg_admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    pg_admin.autocommit = True
    database = Database(pg_url, pool_size=1, max_overflow=0)
    try:
        with database.session() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the pooled, idle connection dies
        assert make_harness(database).service.create_challenge().nonce  # pre-ping replaces it

        attempts: list[int] = []

        def work(session: Session) -> int:
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar()
            attempts.append(int(str(backend)))
            if len(attempts) == 1:  # killed in the middle of the unit of work, before the commit
                pg_admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
            return int(str(session.execute(text("SELECT 41 + 1")).scalar()))

        assert database.run(work) == 42
        assert len(attempts) == 2 and attempts[0] != attempts[1]
    finally:
        database.dispose()


# --- a silent server --------------------------------------------------------------------------------------------


def test_postgres_connect_timeout_on_a_silent_server() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers the startup packet
    port = listener.getsockname()[1]
    url = f"postgresql://svc_verifier@127.0.0.1:{port}/verifier_prod"
    database = Database(url, connect_timeout_s=2)
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            migrate.check(database)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    worker = threading.Thread(target=call, daemon=True)
    try:
        worker.start()
        worker.join(timeout=20)  # generous: without a connect timeout this waits forever
        assert outcome, "connecting to a silent server did not time out"
        (error,) = outcome
        assert isinstance(error, UnavailableError) and error.code == "DATABASE_UNAVAILABLE"
        for part in ("svc_verifier", "verifier_prod", "127.0.0.1"):
            assert part not in str(error)
    finally:
        listener.close()
        database.dispose()
