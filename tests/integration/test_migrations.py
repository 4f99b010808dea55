"""Alembic migrations: empty -> head, models agree with migrations, downgrade and upgrade again; the data step of
0004 (per-value revocation) and of 0005 (workloads from the flat values, from a database populated at 0004);
0006 (per-version policies) keeps a database populated at 0005 and adds the table."""

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
from verifier.storage.tables import Base, ReferenceValueRow, RevokedValueRow, WorkloadRow, new_id
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.model import group_versions

TABLES = {
    "reference_values",
    "challenges",
    "appraisals",
    "collateral_cache",
    "reference_set",
    "admin_tokens",
    "audit_log",
    "kept_evidence",
    "policies",
    "revoked_values",
    "workloads",
    "workload_version_states",
    "workload_version_policies",
    "audit_prune",
}


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
        migrate.check(database)
        assert _tables(database) == TABLES
        assert _diff(database) == []

        migrate.downgrade(database_url, "base")
        assert migrate.current(database_url) is None
        assert _tables(database) == set()
        with pytest.raises(UnavailableError) as info:
            migrate.check(database)
        assert info.value.code == "DATABASE_NOT_MIGRATED"

        migrate.upgrade(database_url)
        assert _diff(database) == []
        migrate.check(database)
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
            return ReferenceValueRow(
                id=new_id(), kind=kind, value=value, label=label, created_at=t0 - hour, created_by="cli:old", **extra
            )

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
            "x": "revoked",
            "x2": "revoked",
            "y": "revoked",
            "w": "revoked",
            "z": "expired",
            "b": "active",
            "k": "active",
        }
        for label in ("y", "w"):
            assert states[label].revoked_at == t0 + hour and states[label].revoked_by == "migration 0004"
            assert states[label].revoke_reason == f"value revoked with {first.id}: CVE-1"
        assert states["x2"].revoke_reason == "again"  # rows revoked before are left as they were
        with database.session() as session:
            [revocation] = session.scalars(select(RevokedValueRow)).all()
            assert (revocation.id, revocation.ref_id, revocation.kind, bytes(revocation.value)) == (
                first.id,
                first.id,
                "nitro.pcr0",
                a,
            )
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


def test_0005_turns_flat_values_into_workloads(database_url: str) -> None:
    """A database populated at 0004 (today's schema, through today's store): every non-empty label becomes one
    workload with the TEE of its kinds and no policy; labels with several live values of one kind in a (label,
    version) group, or with values of several TEEs, are marked for review with the reason; the rows themselves are
    untouched and every version that matched before is still formed from the same values, naming its workload."""
    t0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    hour = dt.timedelta(hours=1)
    migrate.upgrade(database_url, "0004")
    database = Database(database_url)
    try:
        store = SqlReferenceValueStore(database)

        def add(kind: str, byte: int, label: str, **extra: Any) -> None:
            length = 32 if kind == "snp.host_data" else 48
            store.add(kind, bytes([byte]) * length, label, now=t0 - hour, actor="cli:old", **extra)

        for i, kind in enumerate(("nitro.pcr0", "nitro.pcr1", "nitro.pcr2")):
            add(kind, 0x10 + i, "enclave", version="1.0")
            add(kind, 0x20 + i, "enclave", version="1.1")  # a second version: not alternatives
        add("snp.measurement", 0x30, "vm")
        add("snp.measurement", 0x31, "vm", expires_at=t0)  # rotated out before the upgrade: not an alternative
        add("snp.host_data", 0x32, "vm")
        add("tdx.mr_td", 0x40, "td", version="2")
        add("tdx.rtmr2", 0x41, "td", version="2")
        add("tdx.rtmr2", 0x42, "td", version="2")  # two live RTMR2 values of one version: alternatives, review
        add("nitro.pcr0", 0x50, "mixed")
        add("nitro.pcr1", 0x51, "mixed")
        add("snp.measurement", 0x52, "mixed")  # one label, two TEEs: the majority (nitro) wins, review
        add("nitro.pcr0", 0x60, "")  # no label: no workload
        add("nitro.pcr0", 0x10, "shares-a-value")
        before = {tee: _versions(store, None, tee, t0) for tee in ("nitro", "snp", "tdx")}
        rows_before = sorted((r.id, r.label, r.version, r.kind) for r in store.list(include_inactive=True, at=t0))

        migrate.upgrade(database_url)
        workloads = SqlWorkloads(database)
        records = {r.meta.name: r for r in workloads.records()}
        assert {n: (r.meta.tee, r.meta.policy, r.meta.review) for n, r in records.items()} == {
            "enclave": ("nitro", None, False),
            "vm": ("snp", None, False),
            "td": ("tdx", None, True),
            "mixed": ("nitro", None, True),
            "shares-a-value": ("nitro", None, False),
        }
        assert records["td"].review_reason is not None and "tdx.rtmr2" in records["td"].review_reason
        assert records["mixed"].review_reason is not None and "several TEEs" in records["mixed"].review_reason
        assert all(r.created_by == "migration 0005" and r.created_at == t0 - hour for r in records.values())
        assert len({r.meta.id for r in records.values()}) == len(records)
        assert [m.name for m in workloads.list(review_only=True)] == ["mixed", "td"]
        assert (
            sorted((r.id, r.label, r.version, r.kind) for r in store.list(include_inactive=True, at=t0)) == rows_before
        )
        catalog = workloads.metadata(records)
        after = {tee: _versions(store, catalog, tee, t0) for tee in ("nitro", "snp", "tdx")}
        assert after["nitro"] == before["nitro"] and after["tdx"] == before["tdx"]
        # the SNP value of "mixed" no longer forms a version: the workload is nitro (flagged for review)
        assert after["snp"] == [v for v in before["snp"] if v[0] != "mixed"]
        assert ("td", "2", {"tdx.mr_td": 1, "tdx.rtmr2": 2}) in after["tdx"]
        with database.session() as session:
            assert session.get(WorkloadRow, records["vm"].meta.id) is not None
        assert _diff(database) == []

        migrate.downgrade(database_url, "0004")
        assert "workloads" not in _tables(database)
        migrate.upgrade(database_url)
        assert {m.name for m in SqlWorkloads(database).list()} == set(records)
    finally:
        database.dispose()


def _versions(
    store: SqlReferenceValueStore, catalog: Any, tee: str, at: dt.datetime
) -> list[tuple[str, str, dict[str, int]]]:
    """The workload versions of `tee` at `at` as (name, version, {kind: number of accepted values})."""
    refs = store.active([r.kind for r in store.list(at=at) if r.kind.startswith(f"{tee}.")], at)
    return [
        (v.workload, v.version, {k: len(m) for k, m in v.members.items()})
        for v in group_versions(tee, refs, catalog or {}, at)
    ]


def test_0006_adds_version_policies_to_a_database_populated_at_0005(database_url: str) -> None:
    """Every workload keeps its policy (each version appraised under it, as before); afterwards one version can
    have its own, and a downgrade to 0005 drops only that table."""
    t0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    migrate.upgrade(database_url, "0005")
    database = Database(database_url)
    try:
        assert "workload_version_policies" not in _tables(database)
        store = SqlReferenceValueStore(database)
        for i in range(3):
            store.add(f"nitro.pcr{i}", bytes([i + 1]) * 48, "app", now=t0, actor="cli:old", version="1")
        with database.session() as session:
            session.add(
                WorkloadRow(
                    id=new_id(),
                    name="app",
                    tee="nitro",
                    policy="default",
                    created_at=t0,
                    created_by="cli:old",
                    review=False,
                )
            )
        migrate.upgrade(database_url)
        assert "workload_version_policies" in _tables(database)
        assert _diff(database) == []
        workloads = SqlWorkloads(database)
        before = workloads.get("app")
        assert before.policy == "default" and dict(before.version_policies) == {}
        meta = workloads.set_version_policy("app", "1", "nonce-required", now=t0, actor="cli:admin")
        assert dict(meta.version_policies) == {"1": "nonce-required"}
        assert workloads.metadata(["app"])["app"].version_policies == {"1": "nonce-required"}
        [version] = group_versions(
            "nitro", store.active(["nitro.pcr0", "nitro.pcr1", "nitro.pcr2"], t0), workloads.metadata(["app"]), t0
        )
        assert version.policy == "nonce-required"

        migrate.downgrade(database_url, "0005")
        assert "workload_version_policies" not in _tables(database) and "workloads" in _tables(database)
        migrate.upgrade(database_url)
        assert dict(SqlWorkloads(database).get("app").version_policies) == {}
    finally:
        database.dispose()
