"""Manifests (YAML/JSON, nitro-cli) and `plan`/`apply`: exactly the planned changes, idempotent, all or nothing,
only for the labels the manifests manage; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.errors import RequestError
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.workloads.manifest import load_manifest_file, load_manifests
from verifier.workloads.manifest_model import Manifest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "measurements").rglob("*") if p.suffix in (".json", ".yaml", ".yml"))
T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
A, B, C = "aa" * 48, "bb" * 48, "cc" * 48


@pytest.fixture
def store(db: Database) -> SqlReferenceValueStore:
    return SqlReferenceValueStore(db)


def write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document) if name.endswith(".json") else document)
    return path


def manifest(tmp_path: Path, name: str, entries: list[dict[str, Any]], **top: Any) -> Manifest:
    return load_manifest_file(write(tmp_path, name, {"reference_values": entries, **top}))


def live(store: SqlReferenceValueStore, at: dt.datetime) -> set[tuple[str, str, str]]:
    return {
        (r.kind, r.value.hex(), r.label)
        for r in store.list(include_inactive=True, at=at)
        if r.state(at) in ("active", "pending")
    }


# --- loading --------------------------------------------------------------------------------------------------


def test_every_example_loads_and_covers_each_tee() -> None:
    kinds = set()
    for path in EXAMPLES:
        m = load_manifest_file(path)
        assert m.entries, path
        kinds |= {e.kind for e in m.entries}
    assert {
        "nitro.pcr0",
        "nitro.pcr1",
        "nitro.pcr2",
        "nitro.pcr8",
        "snp.measurement",
        "snp.host_data",
        "snp.id_key_digest",
        "tdx.mr_td",
        "tdx.rtmr0",
        "tdx.rtmr3",
    } <= kinds


def test_yaml_with_dates_version_and_scope(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        f"""
label_scope: ["app *"]
reference_values:
  - {{kind: nitro.pcr0, value: "{A}", label: app 1.5, version: "1.5", valid_from: 2026-01-01T00:00:00Z,
     expires_at: "2027-01-01T00:00:00+01:00"}}
revoke:
  - {{kind: nitro.pcr0, value: "{B}", reason: CVE}}
""",
    )
    m = load_manifest_file(path)
    [e] = m.entries
    assert (e.label, e.version) == ("app 1.5", "1.5")
    assert e.valid_from == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert e.expires_at == dt.datetime(2026, 12, 31, 23, tzinfo=dt.UTC)
    assert m.manages("app 1.4") and m.manages("app 1.5") and not m.manages("other")
    assert m.revoke[0].reason == "CVE"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'reference_values: [{{kind: nitro.pcr0, value: "{A}", expire_at: 2026-01-01T00:00:00Z}}]', "unknown keys"),
        (f'reference_values: [{{kind: nitro.pcr0, value: "{A}", valid_from: 2026-01-01T00:00:00}}]', "time zone"),
        (f'reference_values: [{{kind: nitro.pcr0, value: "{A}", version: 1.10}}]', "version"),
        (f'managed_labels: [x]\nreference_values: [{{kind: nitro.pcr0, value: "{A}", label: y}}]', "does not manage"),
        ('reference_values: [{kind: nitro.pcr0, value: "abcd"}]', "48 bytes"),
        ('reference_values: [{kind: nitro.pcr99, value: "ab"}]', "unknown reference-value kind"),
        (f'revoke: [{{kind: nitro.pcr0, value: "{A}"}}]', "reason"),
        ("bogus: 1\nreference_values: []", "unknown top-level"),
        ("[1, 2", "not YAML"),
    ],
)
def test_invalid_manifests_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RequestError, match=message):
        load_manifest_file(write(tmp_path, "bad.yaml", text))


def test_nitro_cli_json_with_pcr8(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "build.json",
        {"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": A, "PCR1": B, "PCR2": C, "PCR8": "dd" * 48}},
    )
    m = load_manifest_file(path, default_label="app 2")
    assert [(e.kind, e.label) for e in m.entries] == [
        ("nitro.pcr0", "app 2"),
        ("nitro.pcr1", "app 2"),
        ("nitro.pcr2", "app 2"),
        ("nitro.pcr8", "app 2"),
    ]
    assert m.managed_labels == {"app 2"}
    bad = write(tmp_path, "sha256.json", {"Measurements": {"HashAlgorithm": "Sha256", "PCR0": A}})
    with pytest.raises(RequestError, match="Sha384"):
        load_manifest_file(bad)


# --- plan / apply ---------------------------------------------------------------------------------------------


def test_examples_apply_exactly_the_plan_and_twice_changes_nothing(db: Database, store: SqlReferenceValueStore) -> None:
    manifests = load_manifests(EXAMPLES)
    expected = {(e.kind, e.value.hex(), e.label) for m in manifests for e in m.entries}
    plan = store.plan(manifests, now=T0)
    assert {(e.kind, e.value.hex(), e.label) for e in plan.add} == expected
    assert plan.expire == () and plan.revoke == ()
    version = audit.reference_set_version(db)
    applied = store.apply(manifests, now=T0, actor="cli:test")
    assert applied.add == plan.add
    assert live(store, T0) == expected
    assert all(r.created_by == "cli:test" for r in store.list(at=T0))
    assert audit.reference_set_version(db) == version + 1  # one bump for the whole apply
    adds = [e for e in audit.entries(db, limit=1000) if e.action == "ref.add"]
    assert len(adds) == len(expected)
    assert store.plan(manifests, now=T0 + HOUR).empty
    assert store.apply(manifests, now=T0 + HOUR).empty
    assert audit.reference_set_version(db) == version + 1
    assert audit.verify_chain(db).ok


def test_dropping_a_value_expires_it_and_other_labels_are_untouched(
    tmp_path: Path, store: SqlReferenceValueStore
) -> None:
    foreign = store.add("nitro.pcr0", bytes.fromhex(C), "someone else", now=T0)
    v1 = manifest(
        tmp_path,
        "v1.json",
        [{"kind": "nitro.pcr0", "value": A, "label": "app"}, {"kind": "nitro.pcr1", "value": B, "label": "app"}],
    )
    store.apply([v1], now=T0)
    v2 = manifest(tmp_path, "v2.json", [{"kind": "nitro.pcr0", "value": A, "label": "app"}])
    plan = store.plan([v2], now=T0 + HOUR)
    assert plan.add == () and plan.revoke == ()
    assert [(r.kind, r.value.hex()) for r in plan.expire] == [("nitro.pcr1", B)]
    store.apply([v2], now=T0 + HOUR, actor="cli:ops")
    states = {(r.kind, r.label): r.state(T0 + HOUR) for r in store.list(include_inactive=True, at=T0 + HOUR)}
    assert states == {
        ("nitro.pcr0", "app"): "active",
        ("nitro.pcr1", "app"): "expired",
        ("nitro.pcr0", "someone else"): "active",
    }
    [expired] = store.list(state="expired", at=T0 + HOUR)
    assert expired.expires_at == T0 + HOUR
    assert [e.action for e in store.history(expired.id)] == ["ref.add", "ref.expire"]
    assert store.history(expired.id)[-1].actor == "cli:ops"
    assert store.history(foreign.id)[-1].action == "ref.add"
    assert store.plan([v2], now=T0 + 2 * HOUR).empty


def test_label_scope_retires_the_previous_release(tmp_path: Path, store: SqlReferenceValueStore) -> None:
    store.apply(
        [manifest(tmp_path, "a.json", [{"kind": "nitro.pcr0", "value": A, "label": "app 1.4"}], label_scope="app *")],
        now=T0,
    )
    store.add("nitro.pcr0", bytes.fromhex(C), "application", now=T0)  # does not match "app *"
    nxt = manifest(
        tmp_path,
        "b.json",
        [{"kind": "nitro.pcr0", "value": B, "label": "app 1.5", "version": "1.5"}],
        label_scope=["app *"],
    )
    plan = store.apply([nxt], now=T0 + HOUR)
    assert [e.label for e in plan.add] == ["app 1.5"] and [r.label for r in plan.expire] == ["app 1.4"]
    assert {r.label for r in store.list(at=T0 + HOUR)} == {"app 1.5", "application"}


def test_explicit_revoke_revokes_and_a_revoked_value_is_never_reapproved(
    tmp_path: Path, store: SqlReferenceValueStore
) -> None:
    store.apply([manifest(tmp_path, "v1.json", [{"kind": "nitro.pcr0", "value": A, "label": "app"}])], now=T0)
    other = store.add("nitro.pcr0", bytes.fromhex(A), "elsewhere", now=T0)
    rv = manifest(
        tmp_path,
        "rv.json",
        [{"kind": "nitro.pcr0", "value": B, "label": "app"}],
        revoke=[{"kind": "nitro.pcr0", "value": A, "reason": "CVE-2025-1"}],
    )
    plan = store.apply([rv], now=T0 + HOUR, actor="cli:sec")
    assert {(r.ref.label, r.reason) for r in plan.revoke} == {("app", "CVE-2025-1"), ("elsewhere", "CVE-2025-1")}
    assert plan.expire == ()  # a revoked row is not also expired
    revoked = store.list(state="revoked", at=T0 + HOUR)
    assert {r.id for r in revoked} >= {other.id}
    assert all(r.revoked_by == "cli:sec" and r.revoke_reason == "CVE-2025-1" for r in revoked)
    assert store.plan([rv], now=T0 + 2 * HOUR).empty
    again = manifest(tmp_path, "again.json", [{"kind": "nitro.pcr0", "value": A, "label": "app"}])
    with pytest.raises(RequestError, match=r"REFERENCE_VALUE_REVOKED.*never approved again by adding it"):
        store.plan([again], now=T0 + 2 * HOUR)
    both = manifest(
        tmp_path,
        "both.json",
        [{"kind": "nitro.pcr0", "value": C, "label": "app"}],
        revoke=[{"kind": "nitro.pcr0", "value": C, "reason": "x"}],
    )
    with pytest.raises(RequestError, match="both approved and revoked"):
        store.plan([both], now=T0)


def test_revoke_entry_is_per_value_and_cannot_name_a_label(tmp_path: Path, store: SqlReferenceValueStore) -> None:
    store.add("nitro.pcr0", bytes.fromhex(A), "x", now=T0)
    store.add("nitro.pcr0", bytes.fromhex(A), "y", now=T0)
    kept = store.add("nitro.pcr0", bytes.fromhex(B), "y", now=T0)
    with pytest.raises(RequestError, match="revocation is per value"):
        manifest(
            tmp_path,
            "r.json",
            [],
            managed_labels=["x"],
            revoke=[{"kind": "nitro.pcr0", "value": A, "reason": "r", "label": "x"}],
        )
    m = manifest(
        tmp_path, "r2.json", [], managed_labels=["x"], revoke=[{"kind": "nitro.pcr0", "value": A, "reason": "r"}]
    )
    plan = store.apply([m], now=T0)
    assert sorted(r.ref.label for r in plan.revoke) == ["x", "y"] and plan.expire == ()
    assert store.list(at=T0) == [kept]


def test_pending_and_changed_dates(tmp_path: Path, store: SqlReferenceValueStore) -> None:
    entry = {"kind": "nitro.pcr0", "value": A, "label": "app", "valid_from": "2025-03-01T13:00:00Z"}
    m = manifest(tmp_path, "p.json", [entry])
    store.apply([m], now=T0)
    assert [r.state(T0) for r in store.list(state="pending", at=T0)] == ["pending"]
    assert store.plan([m], now=T0).empty
    changed = manifest(tmp_path, "q.json", [{**entry, "expires_at": "2026-01-01T00:00:00Z"}])
    plan = store.plan([changed], now=T0)
    assert len(plan.add) == 1 and len(plan.expire) == 1  # a changed window replaces the row
    past = manifest(tmp_path, "old.json", [{**entry, "valid_from": None, "expires_at": "2025-01-01T00:00:00Z"}])
    assert store.plan([past], now=T0).add == ()  # already expired: not added


def test_failing_apply_changes_nothing(
    tmp_path: Path, db: Database, store: SqlReferenceValueStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = store.add("nitro.pcr0", bytes.fromhex(C), "app", now=T0)
    before = (
        store.list(include_inactive=True, at=T0),
        audit.reference_set_version(db),
        len(audit.entries(db, limit=1000)),
    )
    m = manifest(
        tmp_path,
        "m.json",
        [{"kind": "nitro.pcr0", "value": A, "label": "app"}, {"kind": "nitro.pcr1", "value": B, "label": "app"}],
    )
    calls = {"n": 0}
    real = SqlReferenceValueStore._insert

    def failing(self: SqlReferenceValueStore, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RequestError("BOOM", "the second insert fails")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqlReferenceValueStore, "_insert", failing)
    with pytest.raises(RequestError, match="BOOM"):
        store.apply([m], now=T0 + HOUR)
    assert calls["n"] == 2  # the expire of `kept` and the first add ran, then everything rolled back
    after = (
        store.list(include_inactive=True, at=T0),
        audit.reference_set_version(db),
        len(audit.entries(db, limit=1000)),
    )
    assert after == before
    assert store.list(at=T0 + HOUR) == [kept]
    assert audit.verify_chain(db).ok
