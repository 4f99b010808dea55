"""`verifier refs ...` through verifier.cli.main on SQLite and PostgreSQL: lifecycle flags, plan/apply (text and
--json), history, import-nitro, compute snp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.test_cli import Cli
from tests.unit.reference_values.test_snp_measure import real_ovmf
from verifier.storage.engine import Database
from verifier.storage.workloads import SqlWorkloads

ROOT = Path(__file__).resolve().parents[2]
M = ROOT / "measurements"
NITRO_YAML = M / "nitro" / "example-blocky-2024.yaml"
SNP_YAML = M / "snp" / "example-aws-constellation-2025.yaml"
TDX_JSON = M / "tdx" / "example-gcp-cos-2024.json"
A, B = "aa" * 48, "bb" * 48


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


def test_add_list_states_revoke_and_history(cli: Cli) -> None:
    code, pending = cli.json(
        "refs",
        "add",
        "nitro.pcr0",
        A,
        "--label",
        "app 2",
        "--version",
        "2.0",
        "--valid-from",
        "2999-01-01T00:00:00Z",
        "--json",
    )
    assert code == 0 and pending["state"] == "pending" and pending["version"] == "2.0"
    assert pending["created_by"].startswith("cli:")
    assert cli.json("refs", "list", "--json")[1] == []
    assert [r["id"] for r in cli.json("refs", "list", "--state", "pending", "--json")[1]] == [pending["id"]]
    _, active = cli.json("refs", "add", "nitro.pcr1", B, "--label", "app 1", "--json")
    code, out, _ = cli("refs", "revoke", active["id"], "--reason", "CVE-2025-7")
    assert code == 0 and "revoked" in out
    everything = {r["id"]: r for r in cli.json("refs", "list", "--all", "--json")[1]}
    assert everything[active["id"]]["state"] == "revoked"
    assert everything[active["id"]]["revoke_reason"] == "CVE-2025-7"
    assert everything[active["id"]]["revoked_by"].startswith("cli:")
    assert everything[pending["id"]]["state"] == "pending"
    code, history = cli.json("refs", "history", active["id"], "--json")
    assert code == 0 and [h["action"] for h in history] == ["ref.add", "ref.revoke"]
    assert history[1]["details"]["reason"] == "CVE-2025-7"
    code, out, _ = cli("refs", "history", "--label", "app 2")
    assert code == 0 and "ref.add" in out
    assert cli("refs", "history")[0] == 64
    assert cli("refs", "history", "no-such-id")[0] == 64
    assert (
        cli(
            "refs", "add", "nitro.pcr0", A, "--valid-from", "2030-01-01T00:00:00Z", "--expires", "2029-01-01T00:00:00Z"
        )[0]
        == 64
    )


def test_plan_apply_text_and_json_twice_is_a_no_op(cli: Cli) -> None:
    files = [str(NITRO_YAML), str(SNP_YAML), str(TDX_JSON)]
    code, plan = cli.json("refs", "plan", *files, "--json")
    assert code == 0 and plan["changes"] == 4 + 3 + 5 and not plan["applied"]
    assert cli.json("refs", "list", "--json")[1] == []  # plan changes nothing
    assert [w["workload"] for w in plan["workloads"]] == [
        "example-blocky-nitro",
        "example-constellation-aws",
        "example-gcp-cos-td",
    ]
    code, out, _ = cli("refs", "apply", *files)
    assert code == 0 and "12 to add, 0 to expire, 0 to revoke" in out and "applied" in out
    assert "workload example-constellation-aws (new snp workload, policy default):" in out
    assert "  + version 2025-06 (snp.host_data, snp.id_key_digest, snp.measurement)" in out
    assert len(cli.json("refs", "list", "--json")[1]) == 12
    db = Database(cli.db_url)
    try:  # apply set the workload metadata (SqlWorkloads.ensure)
        metas = SqlWorkloads(db).metadata(["example-blocky-nitro", "example-constellation-aws", "example-gcp-cos-td"])
    finally:
        db.dispose()
    assert {n: (m.tee, m.policy) for n, m in metas.items()} == {
        "example-blocky-nitro": ("nitro", None),
        "example-constellation-aws": ("snp", "default"),
        "example-gcp-cos-td": ("tdx", None),
    }
    code, out, _ = cli("refs", "apply", *files)
    assert code == 0 and "nothing to do" in out and "workload" not in out
    code, again = cli.json("refs", "plan", *files, "--json")
    assert again["changes"] == 0 and again["add"] == again["expire"] == again["revoke"] == []


def test_apply_expires_revokes_and_leaves_other_labels(cli: Cli, tmp_path: Path) -> None:
    cli("refs", "add", "nitro.pcr0", B, "--label", "not managed")
    v1 = tmp_path / "v1.yaml"
    v1.write_text(
        f"managed_labels: [app]\nreference_values:\n"
        f"  - {{kind: nitro.pcr0, value: '{A}', label: app}}\n"
        f"  - {{kind: nitro.pcr1, value: '{A}', label: app}}\n"
    )
    assert cli("refs", "apply", str(v1))[0] == 0
    v2 = tmp_path / "v2.yaml"
    v2.write_text(
        f"managed_labels: [app]\nreference_values:\n  - {{kind: nitro.pcr1, value: '{A}', label: app}}\n"
        f"revoke:\n  - {{kind: nitro.pcr1, value: '{B}', reason: never existed}}\n"
    )
    code, plan = cli.json("refs", "apply", str(v2), "--json")
    assert code == 0 and plan["applied"]
    assert [(r["kind"], r["label"]) for r in plan["expire"]] == [("nitro.pcr0", "app")]
    states = {(r["kind"], r["label"]): r["state"] for r in cli.json("refs", "list", "--all", "--json")[1]}
    assert states == {
        ("nitro.pcr0", "not managed"): "active",
        ("nitro.pcr0", "app"): "expired",
        ("nitro.pcr1", "app"): "active",
    }
    v3 = tmp_path / "v3.json"
    v3.write_text(
        json.dumps(
            {
                "managed_labels": ["app"],
                "reference_values": [],
                "revoke": [{"kind": "nitro.pcr1", "value": A, "reason": "bad build"}],
            }
        )
    )
    code, out, _ = cli("refs", "apply", str(v3))
    assert code == 0 and f"  - unversioned values revoked (nitro.pcr1 {A} revoked: bad build)" in out
    code, out, _ = cli("refs", "plan", str(v3), "--values")
    assert code == 0 and "nothing to do" in out
    [revoked] = cli.json("refs", "list", "--state", "revoked", "--json")[1]
    assert revoked["revoke_reason"] == "bad build"
    code, _, err = cli("refs", "apply", str(v1))  # would re-approve the revoked value
    assert code == 64 and "REFERENCE_VALUE_REVOKED" in err


def test_workload_manifest_versions_policy_and_legacy_note(cli: Cli, tmp_path: Path) -> None:
    def manifest(versions: str, policy: str = "") -> Path:
        path = tmp_path / "app.yaml"
        path.write_text(f"workload: app\ntee: nitro\n{policy}versions:\n{versions}")
        return path

    def version(name: str, pcr8: str) -> str:
        return (
            f"  - version: '{name}'\n    values: {{nitro.pcr0: '{A}', nitro.pcr1: '{A}', nitro.pcr2: '{A}', "
            f"nitro.pcr8: {pcr8}}}\n"
        )

    code, _, err = cli("refs", "apply", str(manifest(version("1.4", f"'{A}'"), "policy: no-such-policy\n")))
    assert code == 64 and "POLICY_UNKNOWN" in err
    assert cli.json("refs", "list", "--all", "--json")[1] == []  # nothing written, no workload created
    assert cli("refs", "apply", str(manifest(version("1.3", f"'{B}'") + version("1.4", f"'{A}'"))))[0] == 0
    code, out, _ = cli(
        "refs",
        "apply",
        str(manifest(version("1.4", f"'{B}'") + version("1.5", f"['{A}', '{B}']"), "policy: nonce-required\n")),
    )
    assert code == 0, out
    assert "workload app (policy (verifier default) -> nonce-required):" in out
    assert "  - version 1.3 expired" in out and f"  ~ version 1.4: nitro.pcr8 + {B} - {A}" in out
    assert "  + version 1.5 (nitro.pcr0, nitro.pcr1, nitro.pcr2, nitro.pcr8)" in out
    active = cli.json("refs", "list", "--label", "app", "--json")[1]
    assert sorted({r["version"] for r in active}) == ["1.4", "1.5"]
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text(f"reference_values:\n  - {{kind: nitro.pcr0, value: '{A}', label: old}}\n")
    code, _, err = cli("refs", "plan", str(legacy))
    assert code == 0 and "pre-workload format" in err
    snp = tmp_path / "app-snp.yaml"
    snp.write_text(f"workload: app\ntee: snp\nversions:\n  - version: '9'\n    values: {{snp.measurement: '{A}'}}\n")
    code, _, err = cli("refs", "plan", str(snp))
    assert code == 64 and "WORKLOAD_TEE_MISMATCH" in err


def test_failing_apply_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"reference_values:\n  - {{kind: nitro.pcr0, value: '{A}', label: app}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("reference_values:\n  - {kind: nitro.pcr0, value: 'abcd', label: other}\n")
    code, _, err = cli("refs", "apply", str(good), str(bad))
    assert code == 64 and "REFERENCE_VALUE_LENGTH" in err and "bad.yaml" in err
    assert cli.json("refs", "list", "--all", "--json")[1] == []


def test_nitro_cli_json_plan_apply_and_import_nitro(cli: Cli, tmp_path: Path) -> None:
    build = tmp_path / "build.json"
    build.write_text(
        json.dumps({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": A, "PCR1": A, "PCR2": A, "PCR8": B}})
    )
    out = tmp_path / "app.yaml"
    code, stdout, _ = cli("refs", "import-nitro", str(build), "--label", "app 3", "--version", "3.0", "--out", str(out))
    assert code == 0 and "version 3.0 of workload 'app 3' created" in stdout
    document = yaml.safe_load(out.read_text())
    assert document == {
        "workload": "app 3",
        "tee": "nitro",
        "versions": [
            {"version": "3.0", "values": {"nitro.pcr0": A, "nitro.pcr1": A, "nitro.pcr2": A, "nitro.pcr8": B}}
        ],
    }
    assert cli("refs", "import-nitro", str(build), "--workload", "app 3", "--out", str(out))[0] == 64  # no version
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"Measurements": {"PCR0": B, "PCR1": A, "PCR2": A, "PCR8": B}}))
    code, _, err = cli("refs", "import-nitro", str(other), "--workload", "app 3", "--version", "3.0", "--out", str(out))
    assert code == 64 and "MANIFEST_VERSION_EXISTS" in err  # a released version is never changed by an import
    code, stdout, _ = cli(
        "refs", "import-nitro", str(other), "--workload", "app 3", "--version", "3.1", "--out", str(out)
    )
    assert code == 0 and "version 3.1 of workload 'app 3' added" in stdout
    assert [v["version"] for v in yaml.safe_load(out.read_text())["versions"]] == ["3.0", "3.1"]
    assert cli.json("refs", "plan", str(out), "--json")[1]["changes"] == 8
    code, _, _ = cli("refs", "import-nitro", str(build), "--label", "app 3", "--version", "3.1", "--out", str(out))
    assert code == 64
    out.write_text(yaml.safe_dump({**yaml.safe_load(out.read_text()), "versions": document["versions"]}))
    assert cli.json("refs", "plan", str(out), "--json")[1]["changes"] == 4
    assert cli.json("refs", "plan", str(build), "--label", "app 3", "--json")[1]["changes"] == 4
    assert cli("refs", "apply", str(out))[0] == 0
    # the nitro-cli file itself (no version) differs from the rows (version 3.0): it would replace them
    plan = cli.json("refs", "plan", str(build), "--label", "app 3", "--json")[1]
    assert (len(plan["add"]), len(plan["expire"])) == (4, 4)
    code, stdout, _ = cli("refs", "import-nitro", str(build), "--label", "direct")
    assert code == 0 and "4 added" in stdout
    code, stdout, _ = cli("refs", "import-nitro", str(build), "--label", "direct")
    assert code == 0 and "0 added, 4 already present" in stdout
    code, stdout, _ = cli("refs", "import-nitro", str(build), "--workload", "direct", "--version", "1")
    assert code == 0 and "4 added" in stdout
    code, _, err = cli("refs", "import-nitro", str(other), "--workload", "direct", "--version", "1")
    assert code == 64 and "WORKLOAD_VERSION_EXISTS" in err  # the two builds never become alternatives silently
    code, stdout, _ = cli("refs", "import-nitro", str(other), "--workload", "direct", "--version", "1", "--alternative")
    assert code == 0 and "1 added, 3 already present" in stdout
    db = Database(cli.db_url)
    try:
        assert SqlWorkloads(db).get("direct").tee == "nitro"
    finally:
        db.dispose()
    assert cli("refs", "import-nitro", str(TDX_JSON), "--label", "x")[0] == 64  # not nitro-cli JSON


def test_old_import_still_works(cli: Cli) -> None:
    code, out, _ = cli("refs", "import", str(M / "nitro" / "example-blocky-2024.json"))
    assert code == 0 and "3 added" in out
    code, out, _ = cli("refs", "import", str(M / "nitro" / "example-blocky-2024.json"))
    assert code == 0 and "0 added, 3 already present" in out
    code, out, _ = cli("refs", "import", str(NITRO_YAML))
    assert code == 0 and "4 added" in out


def test_compute_snp(cli: Cli, tmp_path: Path) -> None:
    ovmf = real_ovmf()
    base = ["refs", "compute", "snp", "--ovmf", str(ovmf), "--vcpus", "2", "--vcpu-type", "EPYC-v4"]
    code, out, err = cli(*base)
    assert code == 0, err
    measurement = out.strip()
    assert len(bytes.fromhex(measurement)) == 48
    out_file = tmp_path / "guest.yaml"
    assert cli(*base, "--label", "guest", "--version", "1", "--out", str(out_file))[0] == 0
    assert yaml.safe_load(out_file.read_text()) == {
        "workload": "guest",
        "tee": "snp",
        "versions": [{"version": "1", "values": {"snp.measurement": measurement}}],
    }
    assert (
        cli(
            *base,
            "--workload",
            "guest",
            "--version",
            "2",
            "--host-data",
            "11" * 32,
            "--policy",
            "default",
            "--out",
            str(out_file),
        )[0]
        == 0
    )
    document = yaml.safe_load(out_file.read_text())
    assert document["policy"] == "default"
    assert document["versions"][1] == {
        "version": "2",
        "values": {"snp.host_data": "11" * 32, "snp.measurement": measurement},
    }
    assert cli(*base, "--out", str(tmp_path / "x.yaml"))[0] == 64  # --workload required
    assert cli(*base, "--workload", "g", "--out", str(tmp_path / "x.yaml"))[0] == 64  # --version required
    code, result = cli.json(*base, "--label", "guest 1", "--add", "--json")
    assert code == 0 and result["result"] == "1 added, 0 already present"
    [listed] = cli.json("refs", "list", "--kind", "snp.measurement", "--json")[1]
    assert listed["value"] == measurement
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel" * 1000)
    code, _, err = cli(*base, "--kernel", str(kernel), "--append", "console=ttyS0")
    assert (code == 64 and "SNP_OVMF_NO_KERNEL_HASHES" in err) or code == 0  # 0 only with an AmdSev OVMF
    assert cli(*base[:-1], "Pentium")[0] == 64


@pytest.mark.parametrize("args", [["refs", "plan"], ["refs", "compute", "snp", "--vcpus", "1"]])
def test_usage_errors(cli: Cli, args: list[str]) -> None:
    assert cli(*args)[0] == 64
