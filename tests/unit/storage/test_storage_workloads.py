"""SqlWorkloads on SQLite and PostgreSQL: the catalog the service reads, every change audited and versioned, the
add rule shared with the reference-value store (a revoked value is refused, all or nothing)."""

from __future__ import annotations

import datetime as dt

import pytest

from verifier.errors import NotFoundError, RequestError
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest_model import ManifestEntry
from verifier.workloads.model import group_versions

NOW = dt.datetime(2026, 5, 1, 9, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)


def _entry(kind: str, byte: int, version: str | None = "1.0") -> ManifestEntry:
    return ManifestEntry(kind, bytes([byte]) * 48, "", None, version)


def _codes(error: pytest.ExceptionInfo[RequestError] | pytest.ExceptionInfo[NotFoundError]) -> str:
    return error.value.code


def test_ensure_create_get_list_metadata(db: Database) -> None:
    w = SqlWorkloads(db)
    set_before = audit.reference_set_version(db)
    made = w.ensure("enclave", "nitro", now=NOW, actor="cli:alice")
    assert (made.name, made.tee, made.policy, made.review, made.revoked_at) == ("enclave", "nitro", None, False, None)
    assert made.id and audit.reference_set_version(db) == set_before + 1
    assert w.ensure("enclave", "nitro", now=LATER, actor="cli:bob") == made  # existing: unchanged
    with pytest.raises(RequestError) as info:
        w.ensure("enclave", "snp", now=NOW, actor="cli:alice")
    assert _codes(info) == "WORKLOAD_TEE_MISMATCH"
    with_policy = w.ensure("enclave", "nitro", now=LATER, actor="cli:bob", policy="strict")
    assert with_policy.policy == "strict" and with_policy.id == made.id
    with pytest.raises(RequestError) as info:
        w.create("enclave", "nitro", now=NOW, actor="cli:alice")
    assert _codes(info) == "WORKLOAD_EXISTS"
    w.create("vm", "snp", now=NOW, actor="cli:alice", policy="default")
    assert [m.name for m in w.list()] == ["enclave", "vm"]
    assert w.get("vm").policy == "default"
    assert set(w.metadata(["vm", "nope", ""])) == {"vm"}
    with pytest.raises(NotFoundError) as nf:
        w.get("nope")
    assert _codes(nf) == "WORKLOAD_NOT_FOUND"
    assert [e.action for e in w.history("enclave")] == ["workload.create", "workload.policy"]
    assert w.history("enclave")[1].actor == "cli:bob"
    assert audit.verify_chain(db).ok


@pytest.mark.parametrize(
    ("name", "tee", "policy", "code"),
    [
        ("", "nitro", None, "WORKLOAD_NAME_INVALID"),
        ("x" * 201, "nitro", None, "WORKLOAD_NAME_INVALID"),
        ("ok", "sgx", None, "WORKLOAD_TEE_UNKNOWN"),
        ("ok", "nitro", "", "WORKLOAD_POLICY_INVALID"),
        ("ok", "nitro", "p" * 101, "WORKLOAD_POLICY_INVALID"),
    ],
)
def test_invalid_input_is_refused(sqlite_db: Database, name: str, tee: str, policy: str | None, code: str) -> None:
    with pytest.raises(RequestError) as info:
        SqlWorkloads(sqlite_db).create(name, tee, now=NOW, actor="cli:a", policy=policy)
    assert _codes(info) == code
    assert SqlWorkloads(sqlite_db).list() == []


def test_nul_in_a_name_is_stored_as_the_visible_symbol(db: Database) -> None:
    made = SqlWorkloads(db).create("a\x00b", "tdx", now=NOW, actor="cli:a")
    assert made.name == "a\u2400b" and SqlWorkloads(db).get("a\x00b") == made


def test_add_values_creates_the_workload_and_forms_one_version(db: Database) -> None:
    w, store = SqlWorkloads(db), SqlReferenceValueStore(db)
    entries = [_entry("nitro.pcr0", 1), _entry("nitro.pcr1", 2), _entry("nitro.pcr2", 3)]
    meta, added = w.add_values("enclave", entries, now=NOW, actor="cli:a", new_version=True)
    assert meta.tee == "nitro" and {(r.label, r.version) for r in added} == {("enclave", "1.0")}
    [version] = group_versions(
        "nitro", store.active(["nitro.pcr0", "nitro.pcr1", "nitro.pcr2"], NOW), w.metadata(["enclave"]), NOW
    )
    assert (version.workload, version.version, sorted(version.members), version.workload_id) == (
        "enclave",
        "1.0",
        ["nitro.pcr0", "nitro.pcr1", "nitro.pcr2"],
        meta.id,
    )
    with pytest.raises(RequestError) as info:  # a released version is not changed by adding values
        w.add_values("enclave", [_entry("nitro.pcr8", 4)], now=LATER, actor="cli:a", new_version=True)
    assert _codes(info) == "WORKLOAD_VERSION_EXISTS"
    _, again = w.add_values("enclave", entries, now=LATER, actor="cli:a")  # already present: skipped
    assert again == []
    [v] = w.versions("enclave")
    assert (v.version, len(v.values), v.state(NOW)) == ("1.0", 3, "active")


def test_add_values_is_all_or_nothing_and_refuses_a_revoked_value(db: Database) -> None:
    w, store = SqlWorkloads(db), SqlReferenceValueStore(db)
    old = store.add("nitro.pcr1", bytes([2]) * 48, "elsewhere", now=NOW, actor="cli:a")
    store.revoke(old.id, "CVE", now=NOW, actor="cli:sec")
    set_before = audit.reference_set_version(db)
    with pytest.raises(RequestError) as info:
        w.add_values("enclave", [_entry("nitro.pcr0", 1), _entry("nitro.pcr1", 2)], now=LATER, actor="cli:a")
    assert _codes(info) == "REFERENCE_VALUE_REVOKED"
    assert w.list() == [] and store.list(label="enclave", include_inactive=True, at=LATER) == []
    assert audit.reference_set_version(db) == set_before


@pytest.mark.parametrize(
    "entries",
    [
        [_entry("nitro.pcr0", 1), _entry("snp.measurement", 2)],
        [_entry("snp.measurement", 2)],
    ],
)
def test_add_values_of_another_tee_is_refused(sqlite_db: Database, entries: list[ManifestEntry]) -> None:
    w = SqlWorkloads(sqlite_db)
    w.create("enclave", "nitro", now=NOW, actor="cli:a")
    with pytest.raises(RequestError) as info:
        w.add_values("enclave", entries, now=NOW, actor="cli:a")
    assert _codes(info) == "WORKLOAD_TEE_MISMATCH"


def test_revoke_version_and_workload(db: Database) -> None:
    w, store = SqlWorkloads(db), SqlReferenceValueStore(db)
    w.add_values("enclave", [_entry("nitro.pcr0", 1, "1.0")], now=NOW, actor="cli:a")
    w.add_values("enclave", [_entry("nitro.pcr0", 5, "1.1")], now=NOW, actor="cli:a")
    with pytest.raises(NotFoundError) as nf:
        w.revoke_version("enclave", "9.9", "no such", now=LATER, actor="cli:a")
    assert _codes(nf) == "WORKLOAD_VERSION_NOT_FOUND"
    with pytest.raises(RequestError) as info:
        w.revoke_version("enclave", "1.0", "  ", now=LATER, actor="cli:a")
    assert _codes(info) == "REVOKE_REASON_REQUIRED"
    meta = w.revoke_version("enclave", "1.0", "bad build", now=LATER, actor="cli:sec")
    assert meta.revoked_versions == frozenset({"1.0"})
    with pytest.raises(RequestError) as info:
        w.revoke_version("enclave", "1.0", "again", now=LATER, actor="cli:sec")
    assert _codes(info) == "WORKLOAD_VERSION_REVOKED"
    with pytest.raises(RequestError) as info:  # adding to a revoked version never brings it back
        w.add_values("enclave", [_entry("nitro.pcr1", 6, "1.0")], now=LATER, actor="cli:a")
    assert _codes(info) == "WORKLOAD_VERSION_REVOKED"
    refs = store.active(["nitro.pcr0"], LATER)
    assert [v.version for v in group_versions("nitro", refs, w.metadata(["enclave"]), LATER)] == ["1.1"]
    assert store.list(label="enclave", at=LATER) != []  # the values stay approved (other workloads may hold them)
    versions = {v.version: v for v in w.versions("enclave")}
    assert versions["1.0"].state(LATER) == "revoked" and versions["1.1"].state(LATER) == "active"

    revoked = w.revoke("enclave", "retired", now=LATER, actor="cli:sec")
    assert revoked.revoked_at == LATER and not revoked.live_at(LATER)
    assert group_versions("nitro", refs, w.metadata(["enclave"]), LATER) == []
    for change in (
        lambda: w.revoke("enclave", "again", now=LATER, actor="cli:sec"),
        lambda: w.add_values("enclave", [_entry("nitro.pcr1", 7, "2.0")], now=LATER, actor="cli:a"),
        lambda: w.set_policy("enclave", "strict", now=LATER, actor="cli:a"),
    ):
        with pytest.raises(RequestError) as info:
            change()
        assert _codes(info) == "WORKLOAD_REVOKED"
    assert [e.action for e in w.history("enclave")] == ["workload.create", "workload.version.revoke", "workload.revoke"]
    assert w.history("enclave")[1].details["version"] == "1.0"
    assert audit.verify_chain(db).ok


def test_unversioned_values_are_version_empty_string(sqlite_db: Database) -> None:
    w = SqlWorkloads(sqlite_db)
    w.add_values("vm", [ManifestEntry("snp.measurement", b"\x01" * 48, "", None, None)], now=NOW, actor="cli:a")
    assert [v.version for v in w.versions("vm")] == [""]
    assert w.revoke_version("vm", "", "gone", now=LATER, actor="cli:a").revoked_versions == frozenset({""})


def test_set_policy_and_confirm_review(db: Database) -> None:
    w = SqlWorkloads(db)
    w.create("vm", "snp", now=NOW, actor="cli:a")
    before = audit.reference_set_version(db)
    assert w.set_policy("vm", "strict", now=LATER, actor="cli:a").policy == "strict"
    assert w.set_policy("vm", "strict", now=LATER, actor="cli:a").policy == "strict"  # no change, no audit row
    assert w.set_policy("vm", None, now=LATER, actor="cli:a").policy is None
    assert audit.reference_set_version(db) == before + 2
    assert [e.details["policy"] for e in w.history("vm") if e.action == "workload.policy"] == ["strict", "(default)"]
    with pytest.raises(RequestError) as info:
        w.confirm_review("vm", now=LATER, actor="cli:a")
    assert _codes(info) == "WORKLOAD_NOT_IN_REVIEW"
    with pytest.raises(NotFoundError):
        w.set_policy("nope", None, now=LATER, actor="cli:a")
