"""Workload manifests (issue 10): one file per workload owning exactly its rows; `refs plan` grouped per workload
(+ new version, - expired version, ~ changed values); the importers' `add_version`; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from verifier.errors import RequestError
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest import load_manifest_file, load_manifests
from verifier.workloads.manifest_model import Manifest, VersionSpec
from verifier.workloads.manifest_writer import add_version
from verifier.workloads.model import WorkloadMeta

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p for p in (ROOT / "measurements").rglob("*") if p.suffix in (".json", ".yaml", ".yml"))
T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
P0, P1, P2, P8, P8B, X = "a0" * 48, "a1" * 48, "a2" * 48, "a8" * 48, "b8" * 48, "ee" * 48


@pytest.fixture
def store(db: Database) -> SqlReferenceValueStore:
    return SqlReferenceValueStore(db)


def nitro(pcr0: str = P0, pcr8: Any = P8) -> dict[str, Any]:
    return {"nitro.pcr0": pcr0, "nitro.pcr1": P1, "nitro.pcr2": P2, "nitro.pcr8": pcr8}


def write(tmp_path: Path, document: dict[str, Any], name: str = "w.yaml") -> Manifest:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if name.endswith(".yaml") else json.dumps(document))
    return load_manifest_file(path)


def workload(tmp_path: Path, versions: list[dict[str, Any]], name: str = "my-enclave", **top: Any) -> Manifest:
    return write(tmp_path, {"workload": name, "tee": "nitro", "versions": versions, **top}, f"{name}.yaml")


def rows(store: SqlReferenceValueStore, at: dt.datetime) -> set[tuple[str, str, str, str | None]]:
    return {
        (r.label, r.version, r.kind, r.value.hex())
        for r in store.list(include_inactive=True, at=at)
        if r.state(at) in ("active", "pending")
    }


# --- loading --------------------------------------------------------------------------------------------------


def test_a_workload_manifest_owns_its_workload_and_flattens_alternatives(tmp_path: Path) -> None:
    m = workload(
        tmp_path,
        [{"version": "1.4", "values": nitro(pcr8=[P8, P8B]), "expires_at": "2027-01-01T00:00:00Z"}],
        policy="prod-nitro",
    )
    assert m.workload is not None and (m.workload.name, m.workload.tee, m.workload.policy) == (
        "my-enclave",
        "nitro",
        "prod-nitro",
    )
    assert m.manages("my-enclave") and not m.manages("my-enclave 1.4") and not m.legacy
    [v] = m.workload.versions
    assert dict(v.values)["nitro.pcr8"] == (bytes.fromhex(P8), bytes.fromhex(P8B))
    assert sorted((e.kind, e.label, e.version) for e in m.entries) == [
        ("nitro.pcr0", "my-enclave", "1.4"),
        ("nitro.pcr1", "my-enclave", "1.4"),
        ("nitro.pcr2", "my-enclave", "1.4"),
        ("nitro.pcr8", "my-enclave", "1.4"),
        ("nitro.pcr8", "my-enclave", "1.4"),
    ]
    assert {e.expires_at for e in m.entries} == {dt.datetime(2027, 1, 1, tzinfo=dt.UTC)}


def test_every_example_is_a_workload_manifest_and_covers_each_tee() -> None:
    kinds: set[str] = set()
    for path in EXAMPLES:
        m = load_manifest_file(path)
        assert not m.legacy, path  # converted to the workload schema
        assert m.workload is not None or m.nitro_cli, path
        kinds |= {e.kind for e in m.entries}
    assert {
        "nitro.pcr0",
        "nitro.pcr1",
        "nitro.pcr2",
        "nitro.pcr8",
        "snp.measurement",
        "snp.host_data",
        "tdx.mr_td",
        "tdx.rtmr0",
        "tdx.rtmr3",
        "tdx.mr_servicetd",
    } <= kinds
    policies = {m.workload.name: m.workload.policy for m in load_manifests(EXAMPLES) if m.workload is not None}
    assert policies["example-constellation-aws"] == "default"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": nitro()}], "label": "x"},
            "unknown top-level",
        ),
        ({"workload": "w", "tee": "sgx", "versions": []}, "tee must be one of"),
        ({"workload": " w", "tee": "nitro", "versions": []}, "printable"),
        ({"workload": "w", "tee": "nitro"}, "'versions' is required"),
        ({"workload": "w", "tee": "nitro", "versions": [{"version": 1.1, "values": nitro()}]}, "quote it"),
        (
            {"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": nitro(), "expire_at": "x"}]},
            "unknown keys",
        ),
        (
            {
                "workload": "w",
                "tee": "nitro",
                "versions": [{"version": "1", "values": {**nitro(), "snp.measurement": X}}],
            },
            "not a nitro kind",
        ),
        (
            {"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": {"nitro.pcr0": P0}}]},
            r"must pin \['nitro.pcr1', 'nitro.pcr2'\]",
        ),
        ({"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": nitro(pcr8=[])}]}, "non-empty list"),
        ({"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": nitro(pcr8=[P8, P8])}]}, "twice"),
        ({"workload": "w", "tee": "nitro", "versions": [{"version": "1", "values": nitro(pcr8="abcd")}]}, "48 bytes"),
        (
            {
                "workload": "w",
                "tee": "nitro",
                "versions": [{"version": "1", "values": nitro()}, {"version": "1", "values": nitro()}],
            },
            "listed twice",
        ),
        (
            {
                "workload": "w",
                "tee": "nitro",
                "versions": [{"version": "1", "values": nitro(), "valid_from": "2026-01-01T00:00:00"}],
            },
            "no timezone",
        ),
        (
            {
                "workload": "w",
                "tee": "nitro",
                "versions": [],
                "revoke": [{"kind": "nitro.pcr0", "value": P0, "reason": "r", "label": "w"}],
            },
            "revocation is per value",
        ),
        ({"workload": "w", "tee": "nitro", "policy": "", "versions": []}, "policy name"),
    ],
)
def test_invalid_workload_manifests_are_refused(tmp_path: Path, document: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError, match=message):
        write(tmp_path, document, "bad.json")


# --- plan: per workload -----------------------------------------------------------------------------------------


def test_plan_shows_new_expired_and_changed_versions_per_workload(
    tmp_path: Path, store: SqlReferenceValueStore
) -> None:
    store.add("nitro.pcr0", bytes.fromhex(P0), "my-enclave 1.4", now=T0)  # another workload (legacy label)
    v1 = workload(tmp_path, [{"version": "1.3", "values": nitro(pcr0=X)}, {"version": "1.4", "values": nitro()}])
    store.apply([v1], now=T0)
    v2 = workload(
        tmp_path,
        [
            {"version": "1.4", "values": nitro(pcr8=P8B)},
            {"version": "1.5", "values": nitro(pcr0="c0" * 48, pcr8=[P8, P8B])},
        ],
    )
    plan = store.plan([v2], now=T0 + HOUR)
    [change] = plan.workloads
    assert change.workload == "my-enclave" and change.managed
    by_version = {v.version: v for v in change.versions}
    assert by_version["1.3"].change == "expired"
    assert by_version["1.5"].change == "new"
    assert by_version["1.5"].kinds == ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2", "nitro.pcr8")
    assert by_version["1.4"].change == "changed"
    assert by_version["1.4"].added == (("nitro.pcr8", bytes.fromhex(P8B)),)
    assert by_version["1.4"].expired == (("nitro.pcr8", bytes.fromhex(P8)),)
    lines = plan.lines()
    assert lines[0] == "workload my-enclave:"
    assert "  - version 1.3 expired" in lines
    assert "  + version 1.5 (nitro.pcr0, nitro.pcr1, nitro.pcr2, nitro.pcr8)" in lines
    assert f"  ~ version 1.4: nitro.pcr8 + {P8B} - {P8}" in lines
    assert lines[-1] == "6 to add, 5 to expire, 0 to revoke"
    document = plan.to_json()
    [w] = document["workloads"]
    assert {v["version"]: v["change"] for v in w["versions"]} == {"1.3": "expired", "1.4": "changed", "1.5": "new"}
    store.apply([v2], now=T0 + HOUR)
    assert ("my-enclave 1.4", None, "nitro.pcr0", P0) in rows(store, T0 + HOUR)  # not owned: untouched
    assert {(label, version) for label, version, _, _ in rows(store, T0 + HOUR)} == {
        ("my-enclave", "1.4"),
        ("my-enclave", "1.5"),
        ("my-enclave 1.4", None),
    }
    assert store.plan([v2], now=T0 + 2 * HOUR).empty


def test_a_changed_window_is_a_window_change(tmp_path: Path, store: SqlReferenceValueStore) -> None:
    store.apply([workload(tmp_path, [{"version": "1", "values": nitro()}])], now=T0)
    later = workload(tmp_path, [{"version": "1", "values": nitro(), "expires_at": "2030-01-01T00:00:00Z"}])
    plan = store.plan([later], now=T0)
    [change] = plan.workloads
    assert [(v.version, v.change) for v in change.versions] == [("1", "window")]
    assert "  ~ version 1: validity window changed" in plan.lines()


def test_one_owner_per_workload(tmp_path: Path, store: SqlReferenceValueStore) -> None:
    a = workload(tmp_path, [{"version": "1", "values": nitro()}])
    b = write(tmp_path, {"workload": "my-enclave", "tee": "nitro", "versions": []}, "b.json")
    with pytest.raises(RequestError, match=r"MANIFEST_CONFLICT.*described by both"):
        store.plan([a, b], now=T0)
    legacy = write(tmp_path, {"label_scope": ["my-*"], "reference_values": []}, "legacy.json")
    assert legacy.legacy
    with pytest.raises(RequestError, match=r"MANIFEST_CONFLICT.*owns"):
        store.plan([a, legacy], now=T0)


def test_a_revoke_entry_reaches_every_workload_and_says_what_it_unpins(
    tmp_path: Path, store: SqlReferenceValueStore
) -> None:
    store.apply([workload(tmp_path, [{"version": "1", "values": nitro()}], name="other")], now=T0)
    mine = workload(
        tmp_path,
        [{"version": "2", "values": nitro(pcr0=X)}],
        revoke=[{"kind": "nitro.pcr0", "value": P0, "reason": "CVE-2026-1"}],
    )
    plan = store.plan([mine], now=T0 + HOUR)
    changes = {w.workload: w for w in plan.workloads}
    assert not changes["other"].managed
    [v] = changes["other"].versions
    assert (v.change, v.revoked, v.unpinned) == (
        "changed",
        (("nitro.pcr0", bytes.fromhex(P0), "CVE-2026-1"),),
        ("nitro.pcr0",),
    )
    text = "\n".join(plan.lines())
    assert f"~ version 1: nitro.pcr0 ! {P0} revoked: CVE-2026-1" in text
    assert "version 1 would have no live value of nitro.pcr0" in text
    assert [x.change for x in changes["my-enclave"].versions] == ["new"]


def test_with_catalog_reports_metadata_and_refuses_what_ensure_would(
    tmp_path: Path, db: Database, store: SqlReferenceValueStore
) -> None:
    m = workload(tmp_path, [{"version": "1", "values": nitro()}], policy="strict")
    plan = store.plan([m], now=T0)
    fresh = plan.with_catalog([m], {})
    assert fresh.workloads[0].metadata == ("new nitro workload, policy strict",)
    assert fresh.lines()[0] == "workload my-enclave (new nitro workload, policy strict):"
    stored = WorkloadMeta("my-enclave", "nitro", policy="lenient")
    assert plan.with_catalog([m], {"my-enclave": stored}).workloads[0].metadata == ("policy lenient -> strict",)
    with pytest.raises(RequestError, match="WORKLOAD_TEE_MISMATCH"):
        plan.with_catalog([m], {"my-enclave": WorkloadMeta("my-enclave", "snp")})
    # A metadata-only change is a change: `apply` must run it.
    store.apply([m], now=T0)
    same = store.plan([m], now=T0 + HOUR)
    assert same.empty and not same.with_catalog([m], {"my-enclave": stored}).metadata_empty
    # A revoked version is never re-approved by a manifest.
    workloads = SqlWorkloads(db)
    workloads.ensure("my-enclave", "nitro", now=T0, actor="t")
    both = workload(tmp_path, [{"version": "1", "values": nitro()}, {"version": "2", "values": nitro(pcr0=X)}])
    store.apply([both], now=T0)
    workloads.revoke_version("my-enclave", "2", "bad build", now=T0, actor="t")
    meta = workloads.metadata(["my-enclave"])
    kept = store.plan([both], now=T0 + HOUR).with_catalog([both], meta)
    assert kept.workloads[0].metadata == ("revoked versions 2 do not match",)
    again = workload(tmp_path, [{"version": "1", "values": nitro()}, {"version": "2", "values": nitro(pcr0="c0" * 48)}])
    with pytest.raises(RequestError, match="WORKLOAD_VERSION_REVOKED"):
        store.plan([again], now=T0 + HOUR).with_catalog([again], meta)


# --- importers: add_version -------------------------------------------------------------------------------------


def version(name: str, **values: Any) -> VersionSpec:
    return VersionSpec(name, tuple(sorted((k.replace("_", ".", 1), (bytes.fromhex(v),)) for k, v in values.items())))


def test_add_version_creates_extends_and_refuses_changing_a_version(tmp_path: Path) -> None:
    path = tmp_path / "guest.yaml"
    one = version("1.0", snp_measurement=X)
    spec, action = add_version(path, "guest", "snp", one, policy="default")
    assert action == "created" and spec.policy == "default"
    path.write_text("# my comment\n" + path.read_text())
    two = version("2.0", snp_measurement="f0" * 48)
    spec, action = add_version(path, "guest", "snp", two)
    assert action == "added" and [v.version for v in spec.versions] == ["1.0", "2.0"] and spec.policy == "default"
    assert path.read_text().startswith("# my comment\n")
    reread = load_manifest_file(path).workload
    assert reread is not None and reread == spec
    assert add_version(path, "guest", "snp", two)[1] == "unchanged"
    other = version("2.0", snp_measurement="f1" * 48)
    with pytest.raises(RequestError, match="MANIFEST_VERSION_EXISTS"):
        add_version(path, "guest", "snp", other)
    spec, action = add_version(path, "guest", "snp", other, alternative=True)
    assert action == "extended"
    v2 = spec.version("2.0")
    assert v2 is not None and dict(v2.values)["snp.measurement"] == (bytes.fromhex("f0" * 48), bytes.fromhex("f1" * 48))
    with pytest.raises(RequestError, match="describes snp workload 'guest'"):
        add_version(path, "other", "snp", one)
    with pytest.raises(RequestError, match="must pin"):  # what the loader refuses is never written
        add_version(tmp_path / "x.yaml", "guest", "snp", version("1", snp_host_data="00" * 32))
    assert not (tmp_path / "x.yaml").exists()
