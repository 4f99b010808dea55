"""Alembic migrations: empty -> head, models agree with migrations, downgrade and upgrade again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from verifier.errors import UnavailableError
from verifier.storage import migrate
from verifier.storage.engine import Database
from verifier.storage.tables import Base

TABLES = {"reference_values", "challenges", "appraisals", "collateral_cache", "reference_set", "admin_tokens",
          "audit_log", "kept_evidence", "policies"}


def _tables(database: Database) -> set[str]:
    return set(inspect(database.engine).get_table_names()) - {"alembic_version"}


def _diff(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_compare_downgrade_upgrade(database_url: str) -> None:
    assert migrate.current(database_url) is None
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()
    database = Database(database_url)
    try:
        database.check()
        assert _tables(database) == TABLES
        assert _diff(database) == []

        migrate.downgrade(database_url, "base")
        assert migrate.current(database_url) is None
        assert _tables(database) == set()
        with pytest.raises(UnavailableError) as info:
            database.check()
        assert info.value.code == "DATABASE_NOT_MIGRATED"

        migrate.upgrade(database_url)
        assert _diff(database) == []
        database.check()
    finally:
        database.dispose()


def test_upgrade_is_idempotent(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()


def test_config_works_from_any_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/cwd.db"
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert migrate.alembic_config(url).get_main_option("script_location") == str(migrate.MIGRATIONS_DIR)


def test_url_with_percent_escapes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a%25b.db"
    assert migrate.alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_upgrade_unreachable_is_unavailable() -> None:
    with pytest.raises(UnavailableError) as info:
        migrate.upgrade("postgresql://admin:hunter2pw@127.0.0.1:1/x")
    assert info.value.code == "DATABASE_UNAVAILABLE"
    assert "hunter2pw" not in str(info.value)
