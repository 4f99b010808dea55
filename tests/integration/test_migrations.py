"""Alembic migrations: empty -> head, models agree with migrations, downgrade and upgrade again; the data step of
0004 (per-value revocation)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from verifier.errors import RequestError, UnavailableError
from verifier.storage import migrate
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.tables import Base, ReferenceValueRow, RevokedValueRow, new_id

TABLES = {"reference_values", "challenges", "appraisals", "collateral_cache", "reference_set", "admin_tokens",
          "audit_log", "kept_evidence", "policies", "revoked_values"}


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


def test_0004_brings_existing_revocations_under_the_per_value_rule(database_url: str) -> None:
    """A value revoked in one row before 0004 was still matching through its other rows: the upgrade records one
    open revocation per such value and revokes the rows that were live at that instant (and only those)."""
    t0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    a, b = b"\xaa" * 48, b"\xbb" * 48
    migrate.upgrade(database_url, "0003")
    database = Database(database_url)
    try:
        def row(label: str, kind: str = "nitro.pcr0", value: bytes = a, **extra: Any) -> ReferenceValueRow:
            return ReferenceValueRow(id=new_id(), kind=kind, value=value, label=label, created_at=t0 - hour,
                                     created_by="cli:old", **extra)

        first = row("x", revoked_at=t0 + hour, revoked_by="cli:sec", revoke_reason="CVE-1")
        later = row("x2", revoked_at=t0 + 2 * hour, revoked_by="cli:sec", revoke_reason="again")
        live, expiring = row("y"), row("w", expires_at=t0 + 3 * hour)
        expired_before, other_value, other_kind = row("z", expires_at=t0), row("b", value=b), row("k", "nitro.pcr1")
        with database.session() as session:
            session.add_all([first, later, live, expiring, expired_before, other_value, other_kind])
        migrate.upgrade(database_url)
        store = SqlReferenceValueStore(database)
        at = t0 + 5 * hour
        states = {r.label: r for r in store.list(include_inactive=True, at=at)}
        assert {label: r.state(at) for label, r in states.items()} == {
            "x": "revoked", "x2": "revoked", "y": "revoked", "w": "revoked", "z": "expired", "b": "active",
            "k": "active"}
        for label in ("y", "w"):
            assert states[label].revoked_at == t0 + hour and states[label].revoked_by == "migration 0004"
            assert states[label].revoke_reason == f"value revoked with {first.id}: CVE-1"
        assert states["x2"].revoke_reason == "again"  # rows revoked before are left as they were
        with database.session() as session:
            [revocation] = session.scalars(select(RevokedValueRow)).all()
            assert (revocation.id, revocation.ref_id, revocation.kind, bytes(revocation.value)) == (
                first.id, first.id, "nitro.pcr0", a)
            assert (revocation.revoked_at, revocation.revoked_by, revocation.reason) == (t0 + hour, "cli:sec", "CVE-1")
            assert revocation.reapproved_at is None
        assert {r.label for r in store.active(["nitro.pcr0", "nitro.pcr1"], at)} == {"b", "k"}
        with pytest.raises(RequestError) as info:
            store.add("nitro.pcr0", a, "y", now=at)
        assert info.value.code == "REFERENCE_VALUE_REVOKED"
        store.reapprove("nitro.pcr0", a, "checked after the upgrade", now=at, actor="cli:lead", label="y")
        assert {r.label for r in store.active(["nitro.pcr0"], at)} == {"b", "y"}
        assert _diff(database) == []
    finally:
        database.dispose()
