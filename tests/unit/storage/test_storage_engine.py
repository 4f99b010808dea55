"""Database: URL handling, sessions, health check and error translation."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from verifier.errors import ConfigError, UnavailableError
from verifier.storage import migrate
from verifier.storage.engine import DEFAULT_DATABASE_URL, Database, normalize_url, redact_url
from verifier.storage.tables import ChallengeRow

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_default_url_is_sqlite() -> None:
    assert DEFAULT_DATABASE_URL == "sqlite:///verifier.db"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgres://u@h:5433/d", "postgresql+psycopg://u@h:5433/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_redact_url_hides_password() -> None:
    assert "s3cret" not in redact_url("postgresql://u:s3cret@h/d")


def test_invalid_url_is_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        Database("not a url")
    assert info.value.code == "DATABASE_URL_INVALID"


def test_sqlite_pragmas(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 2_000  # bounded (issue 11)


def test_session_commits_and_rolls_back(db: Database) -> None:
    with db.session() as session:
        session.add(ChallengeRow(nonce=b"a", created_at=NOW, expires_at=NOW))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(ChallengeRow(nonce=b"b", created_at=NOW, expires_at=NOW))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        assert [row.nonce for row in session.query(ChallengeRow)] == [b"a"]


def test_check_passes_when_migrated(db: Database) -> None:
    migrate.check(db)


def test_check_not_migrated(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(UnavailableError) as info:
            migrate.check(database)
        assert info.value.code == "DATABASE_NOT_MIGRATED"
    finally:
        database.dispose()


def test_query_on_unmigrated_database_is_unavailable(database_url: str) -> None:
    database = Database(database_url)
    try:
        with pytest.raises(UnavailableError) as info, database.session() as session:
            session.query(ChallengeRow).all()
        assert info.value.code == "DATABASE_NOT_MIGRATED"
    finally:
        database.dispose()


@pytest.mark.parametrize(
    "url",
    ["postgresql://admin:hunter2pw@127.0.0.1:1/x", "sqlite:////nonexistent-dir/hunter2pw/verifier.db"],
)
def test_unreachable_database_is_unavailable_without_password(url: str) -> None:
    database = Database(url)

    def query() -> None:
        with database.session() as session:
            session.execute(text("SELECT 1"))

    try:
        for action in (lambda: migrate.check(database), query):
            with pytest.raises(UnavailableError) as info:
                action()
            assert info.value.code == "DATABASE_UNAVAILABLE"
            assert info.value.retryable
            if "postgresql" in url:
                assert "hunter2pw" not in str(info.value)
                assert "hunter2pw" not in repr(info.value)
    finally:
        database.dispose()


def test_repr_hides_password() -> None:
    database = Database("postgresql://admin:hunter2pw@127.0.0.1:1/x")
    assert "hunter2pw" not in repr(database)
    assert "hunter2pw" not in database.redacted_url
    database.dispose()


def test_pool_exhaustion_is_unavailable(sqlite_db: Database) -> None:
    database = Database(sqlite_db.url, engine_options={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.05})
    try:
        with database.engine.connect():
            with pytest.raises(UnavailableError) as info, database.session() as session:
                session.execute(text("SELECT 1"))
            assert info.value.code == "DATABASE_BUSY"
    finally:
        database.dispose()
