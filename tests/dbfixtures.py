"""Database fixtures (a pytest plugin loaded by conftest).

`database_url` runs a test on SQLite (a file in tmp_path) and on PostgreSQL when VERIFIER_TEST_DATABASE_URL is
set; each PostgreSQL test gets its own fresh schema. If that variable is set but the server cannot be reached the
test FAILS: a configured database that is down is a broken environment, not a reason to skip.
`db` is a `Database` on that URL migrated with the alembic migrations (never `create_all`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from verifier.storage.engine import Database, normalize_url, redact_url
from verifier.storage.migrate import upgrade

PG_ENV = "VERIFIER_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'verifier.db'}"


def with_search_path(url: str, schema: str) -> str:
    """`url` with psycopg connection options that put `schema` first on the search_path."""
    parsed = make_url(normalize_url(url))
    existing = parsed.query.get("options", "")
    existing = existing if isinstance(existing, str) else " ".join(existing)
    options = f"{existing} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL on a freshly created, uniquely named PostgreSQL schema, dropped (CASCADE) afterwards."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests skipped (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    schema = f"verifier_test_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool)
    problem = ""
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError as error:
        problem = (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
    if problem:  # fail outside the except block: no chained traceback showing the password in locals
        admin.dispose()
        pytest.fail(f"{PG_ENV}={redact_url(base)} is set but unreachable: {problem}", pytrace=False)
    try:
        yield with_search_path(base, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, not migrated: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


# The PostgreSQL unit-of-work deadline for fixture databases: generous, because a shared 2-core CI machine can
# stall commits for seconds (one CI run saw 8 s); the deadline itself is tested with its own short bounds in
# tests/integration/test_database_deadline.py.
FIXTURE_DEADLINE_S = 30.0


def _migrated(url: str) -> Iterator[Database]:
    upgrade(url)
    database = Database(url, deadline_s=FIXTURE_DEADLINE_S)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A `Database` migrated to head, on each backend."""
    yield from _migrated(database_url)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite `Database` only, for fast tests."""
    yield from _migrated(sqlite_url(tmp_path))
