"""Database driver errors map to stable UnavailableError codes by SQLSTATE / SQLite result, with generic text."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import exc
from sqlalchemy.engine import make_url

from verifier.errors import UnavailableError
from verifier.storage.connect_options import pg_connect_args
from verifier.storage.db_faults import classify
from verifier.storage.engine import Database

SECRET_DETAIL = 'connection to server at "db.internal.example" (10.9.8.7), port 5432 failed: user "svc_verifier"'


def _pg(state: str, text: str = SECRET_DETAIL) -> exc.DBAPIError:
    orig = psycopg.errors.lookup(state)(text)
    return exc.DBAPIError.instance("INSERT INTO challenges ...", {}, orig, psycopg.Error)


def _sqlite(text: str, kind: type[sqlite3.Error] = sqlite3.OperationalError) -> exc.DBAPIError:
    return exc.DBAPIError.instance("INSERT INTO challenges ...", {}, kind(text), sqlite3.Error)


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ("25006", "DATABASE_READ_ONLY"),  # psycopg raises this one as InternalError: INTERNAL before
        ("55P03", "DATABASE_BUSY"),
        ("57014", "DATABASE_BUSY"),
        ("40001", "DATABASE_BUSY"),
        ("40P01", "DATABASE_BUSY"),
        ("53300", "DATABASE_BUSY"),
        ("53100", "DATABASE_FULL"),
        ("53200", "DATABASE_UNAVAILABLE"),
        ("57P01", "DATABASE_UNAVAILABLE"),
        ("57P02", "DATABASE_UNAVAILABLE"),
        ("57P03", "DATABASE_UNAVAILABLE"),
        ("08006", "DATABASE_UNAVAILABLE"),
        ("08001", "DATABASE_UNAVAILABLE"),
        ("58030", "DATABASE_UNAVAILABLE"),
        ("42P01", "DATABASE_NOT_MIGRATED"),
    ],
)
def test_postgresql_sqlstates(state: str, code: str) -> None:
    fault = classify(_pg(state))
    assert fault is not None and fault.code == code
    assert "db.internal.example" not in fault.message and "svc_verifier" not in fault.message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("attempt to write a readonly database", "DATABASE_READ_ONLY"),
        ("database is locked", "DATABASE_BUSY"),
        ("database table is locked", "DATABASE_BUSY"),
        ("database or disk is full", "DATABASE_FULL"),
        ("disk I/O error", "DATABASE_UNAVAILABLE"),
        ("unable to open database file", "DATABASE_UNAVAILABLE"),
        ("no such table: challenges", "DATABASE_NOT_MIGRATED"),
    ],
)
def test_sqlite_messages(text: str, code: str) -> None:
    fault = classify(_sqlite(text))
    assert fault is not None and fault.code == code


@pytest.mark.parametrize(
    "error",
    [
        _pg("23505"),  # unique_violation: callers rely on IntegrityError (nonce exists, exactly one winner)
        _pg("22P02"),  # invalid_text_representation: a bug or bad data, not an outage
        _pg("42703"),  # undefined_column: a bug
        _sqlite("UNIQUE constraint failed: challenges.nonce", sqlite3.IntegrityError),
    ],
)
def test_non_availability_errors_are_not_mapped(error: exc.DBAPIError) -> None:
    assert classify(error) is None


def test_pool_checkout_timeout_is_busy() -> None:
    fault = classify(exc.TimeoutError("QueuePool limit of size 5 overflow 5 reached"))
    assert fault is not None and fault.code == "DATABASE_BUSY"


def test_translate_errors_hides_host_user_and_name() -> None:
    database = Database("postgresql://svc_verifier:hunter2pw@db.internal.example:5432/verifier_prod")
    try:
        for error in (_pg("25006"), _pg("08006"), _pg("57P01")):
            with pytest.raises(UnavailableError) as info, database.translate_errors():
                raise error
            shown = f"{info.value} {info.value!r} {info.value.message}"
            assert info.value.retryable
            for secret in ("db.internal.example", "10.9.8.7", "svc_verifier", "verifier_prod", "hunter2pw"):
                assert secret not in shown
            assert info.value.__cause__ is None and info.value.__suppress_context__
        with pytest.raises(exc.IntegrityError), database.translate_errors():
            raise _pg("23505")
    finally:
        database.dispose()


def test_postgres_timeouts_are_connection_options() -> None:
    url = make_url("postgresql+psycopg://u@h/x?options=-csearch_path%3Dmine")
    args = pg_connect_args(url, 3, 5000, 2000, {})
    options = "-c statement_timeout=5000 -c lock_timeout=2000 -csearch_path=mine"  # the URL's own come last: they win
    assert args == {"connect_timeout": 3, "options": options}
    own = make_url("postgresql+psycopg://u@h/x?connect_timeout=9")
    assert pg_connect_args(own, 3, 0, 0, {}) == {}  # the URL's connect_timeout wins; 0 disables a timeout
