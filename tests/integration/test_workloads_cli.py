"""`verifier workloads ...` and `refs add --label` through verifier.cli.main on SQLite and PostgreSQL; a database
migrated from 0004 lists its flagged workloads with `list --review` and `confirm` clears them."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.integration.test_cli import Cli
from verifier.storage import migrate
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore

P0, P1, P2, P8 = "10" * 48, "11" * 48, "12" * 48, "18" * 48


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


def test_create_add_version_show_list_and_revoke(cli: Cli) -> None:
    code, made = cli.json("workloads", "create", "my-enclave", "--tee", "nitro", "--policy", "default", "--json")
    assert code == 0 and (made["tee"], made["policy"], made["state"], made["review"]) == (
        "nitro",
        "default",
        "active",
        False,
    )
    assert made["created_by"].startswith("cli:")
    assert cli("workloads", "create", "my-enclave", "--tee", "nitro")[0] == 64  # WORKLOAD_EXISTS
    code, _, err = cli("workloads", "create", "other", "--tee", "nitro", "--policy", "no-such-policy")
    assert code == 64 and "POLICY_UNKNOWN" in err
    code, version = cli.json(
        "workloads",
        "add-version",
        "my-enclave",
        "--version",
        "1.5",
        "--value",
        f"nitro.pcr0={P0}",
        "--value",
        f"nitro.pcr1={P1}",
        "--value",
        f"nitro.pcr2={P2}",
        "--value",
        f"nitro.pcr8=0x{P8}",
        "--json",
    )
    assert code == 0
    [v] = version["versions"]
    assert v["version"] == "1.5" and v["state"] == "active"
    assert sorted(r["kind"] for r in v["values"]) == ["nitro.pcr0", "nitro.pcr1", "nitro.pcr2", "nitro.pcr8"]
    assert {r["label"] for r in v["values"]} == {"my-enclave"}
    code, _, err = cli("workloads", "add-version", "my-enclave", "--version", "1.5", "--value", f"nitro.pcr0={P1}")
    assert code == 64 and "WORKLOAD_VERSION_EXISTS" in err
    code, _, err = cli("workloads", "add-version", "my-enclave", "--version", "1.6", "--value", f"snp.measurement={P0}")
    assert code == 64 and "WORKLOAD_TEE_MISMATCH" in err
    assert cli("workloads", "add-version", "my-enclave", "--version", "1.6", "--value", "nitro.pcr0")[0] == 64
    # creates the workload when missing, with the TEE of its kinds
    code, vm = cli.json(
        "workloads", "add-version", "vm", "--version", "1", "--value", f"snp.measurement={P0}", "--json"
    )
    assert code == 0 and vm["tee"] == "snp" and vm["created_by"].startswith("cli:")

    code, shown = cli.json("workloads", "show", "my-enclave", "--json")
    assert code == 0 and [v["version"] for v in shown["versions"]] == ["1.5"]
    code, out, _ = cli("workloads", "show", "my-enclave")
    assert code == 0 and "version 1.5: active" in out and P8 in out
    assert cli("workloads", "show", "nope")[0] == 64
    code, listed = cli.json("workloads", "list", "--json")
    assert [w["name"] for w in listed] == ["my-enclave", "vm"]
    assert cli.json("workloads", "list", "--review", "--json")[1] == []

    assert cli("workloads", "set-policy", "vm", "nope")[0] == 64
    code, vm = cli.json("workloads", "set-policy", "vm", "default", "--json")
    assert code == 0 and vm["policy"] == "default"
    assert cli.json("workloads", "set-policy", "vm", "--default", "--json")[1]["policy"] is None
    assert cli("workloads", "set-policy", "vm")[0] == 64

    code, out, _ = cli("workloads", "revoke-version", "my-enclave", "1.5", "--reason", "bad build")
    assert code == 0 and "revoked version 1.5" in out
    code, shown = cli.json("workloads", "show", "my-enclave", "--json")
    assert shown["versions"][0]["state"] == "revoked" and shown["revoked_versions"] == ["1.5"]
    assert shown["versions"][0]["revoke_reason"] == "bad build"
    assert cli("workloads", "revoke-version", "my-enclave", "1.5", "--reason", "again")[0] == 64
    assert cli("workloads", "revoke", "my-enclave", "--reason", " ")[0] == 64
    code, revoked = cli.json("workloads", "revoke", "my-enclave", "--reason", "retired", "--json")
    assert code == 0 and revoked["state"] == "revoked" and revoked["revoke_reason"] == "retired"
    code, _, err = cli("refs", "add", "nitro.pcr0", P0, "--label", "my-enclave", "--version", "2.0")
    assert code == 64 and "WORKLOAD_REVOKED" in err


def test_refs_add_with_a_label_ensures_the_workload(cli: Cli) -> None:
    code, ref = cli.json("refs", "add", "tdx.mr_td", P0, "--label", "my-td", "--version", "3", "--json")
    assert code == 0 and ref["label"] == "my-td"
    code, shown = cli.json("workloads", "show", "my-td", "--json")
    assert code == 0 and shown["tee"] == "tdx" and shown["policy"] is None
    assert [[r["id"] for r in v["values"]] for v in shown["versions"]] == [[ref["id"]]]
    code, again = cli.json("refs", "add", "tdx.mr_td", P0, "--label", "my-td", "--version", "3", "--json")
    assert code == 0 and again["id"] != ref["id"]  # refs add keeps adding its row, as before
    code, _, err = cli("refs", "add", "snp.measurement", P0, "--label", "my-td")
    assert code == 64 and "WORKLOAD_TEE_MISMATCH" in err
    assert {r["kind"] for r in cli.json("refs", "list", "--label", "my-td", "--json")[1]} == {"tdx.mr_td"}
    code, _ = cli.json("refs", "add", "nitro.pcr0", P1, "--json")  # no label: no workload
    assert code == 0 and [w["name"] for w in cli.json("workloads", "list", "--json")[1]] == ["my-td"]


def test_refs_add_of_a_revoked_value_creates_no_workload(cli: Cli) -> None:
    _, ref = cli.json("refs", "add", "nitro.pcr0", P0, "--label", "a", "--json")
    assert cli("refs", "revoke", ref["id"], "--reason", "CVE")[0] == 0
    code, _, err = cli("refs", "add", "nitro.pcr0", P0, "--label", "b")
    assert code == 64 and "REFERENCE_VALUE_REVOKED" in err
    code, _, err = cli(
        "workloads", "add-version", "c", "--version", "1", "--value", f"nitro.pcr1={P1}", "--value", f"nitro.pcr0={P0}"
    )
    assert code == 64 and "REFERENCE_VALUE_REVOKED" in err
    assert [w["name"] for w in cli.json("workloads", "list", "--json")[1]] == ["a"]


def test_migrated_workloads_for_review_are_listed_and_confirmed(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    migrate.upgrade(database_url, "0004")
    db = Database(database_url)
    try:
        store = SqlReferenceValueStore(db)
        t = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        for value in (P1, P2):
            store.add("tdx.rtmr2", bytes.fromhex(value), "td", version="2", now=t, actor="cli:old")
        store.add("tdx.mr_td", bytes.fromhex(P0), "td", version="2", now=t, actor="cli:old")
        store.add("snp.measurement", bytes.fromhex(P0), "vm", now=t, actor="cli:old")
    finally:
        db.dispose()
    cli = Cli(database_url, capsys)
    assert cli("db", "upgrade")[0] == 0
    code, out, _ = cli("workloads", "list", "--review")
    assert code == 0 and "td" in out and "REVIEW" in out and "tdx.rtmr2" in out and "vm" not in out
    code, out, _ = cli("workloads", "confirm", "td")
    assert code == 0 and "confirmed td" in out
    assert cli.json("workloads", "list", "--review", "--json")[1] == []
    assert cli("workloads", "confirm", "td")[0] == 64  # WORKLOAD_NOT_IN_REVIEW
    code, history = cli.json("refs", "history", "--label", "td", "--json")
    assert code == 0 and {h["action"] for h in history} == {"ref.add"}
