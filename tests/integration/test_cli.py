"""The `verifier` command line on the real Nitro vectors and a real database (the ARCHITECTURE.md contract)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors, vector_ids
from verifier.cli import main

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db_url = db_url
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> tuple[int, Any]:
        code, out, err = self(*args)
        assert out, err
        return code, json.loads(out)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


def _verify_args(vector: dict[str, Any], vectors_dir: Path, anchors: Path, at: str | None = None) -> list[str]:
    return [
        "verify",
        "--tee",
        "nitro",
        "--evidence",
        str(vectors_dir / vector["dir"] / "evidence.bin"),
        "--trust-anchors",
        str(anchors),
        "--at",
        at or vector["verify_at"],
        "--json",
    ]


@pytest.mark.parametrize("vector", manifest_vectors("nitro"), ids=vector_ids("nitro"))
def test_every_nitro_vector_agrees_with_the_manifest(
    cli: Cli, vector: dict[str, Any], vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    facts = vector["facts"]
    args = _verify_args(vector, vectors_dir, trust_anchors_dir)
    code, result = cli.json(*args)
    claims = result["claims"]
    assert claims["module_id"] == facts["module_id"]
    assert claims["digest"] == facts["digest"]
    assert claims["timestamp"] == facts["timestamp_ms"]
    for index, value in facts["pcrs"].items():
        assert claims["pcrs"][index] == value
    for field in ("nonce", "user_data", "public_key"):
        assert (claims[field] or "") == (facts[field] or "")
    assert set(result) >= {"tee", "status", "trust_vector", "claims", "findings", "token"}
    assert code == 2  # nothing registered yet: the default policy requires PCR0..2
    for index in ("0", "1", "2"):
        assert cli("refs", "add", f"nitro.pcr{index}", facts["pcrs"][index], "--label", "vector")[0] == 0
    code, result = cli.json(*args)
    if vector["expected"]["debug_mode"]:
        assert code == 2
        assert [f["code"] for f in result["findings"]] == ["NITRO_DEBUG_MODE"]
    else:
        assert vector["expected"]["verdict"] == "valid"
        assert code == 0, result["findings"]
        assert result["status"] == "affirming"
    late = (
        dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00")) + dt.timedelta(hours=3, seconds=1)
    ).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, result = cli.json(*_verify_args(vector, vectors_dir, trust_anchors_dir, late))
    assert code == 2
    assert result["findings"][0]["code"] == "CERT_EXPIRED"


def test_unknown_pcr0_exits_2_and_says_what_was_expected(cli: Cli, vectors_dir: Path, trust_anchors_dir: Path) -> None:
    vector = next(v for v in manifest_vectors("nitro") if v["id"] == "nitro-prod-2024-blocky")
    pcrs = vector["facts"]["pcrs"]
    for index, value in (("0", "ab" * 48), ("1", pcrs["1"]), ("2", pcrs["2"])):
        cli("refs", "add", f"nitro.pcr{index}", value, "--label", "other image")
    code, result = cli.json(*_verify_args(vector, vectors_dir, trust_anchors_dir))
    assert code == 2
    finding, summary = result["findings"]
    assert summary["code"] == "WORKLOAD_NOT_MATCHED" and "other image" in summary["actual"]
    assert finding["code"] == "REFERENCE_VALUE_MISMATCH"
    assert finding["expected"] == "ab" * 48
    assert finding["actual"] == pcrs["0"]


def test_nonce_flag(cli: Cli, vectors_dir: Path, trust_anchors_dir: Path) -> None:
    vector = next(v for v in manifest_vectors("nitro") if v["id"] == "nitro-debug-2021-hf-nitrite")
    args = _verify_args(vector, vectors_dir, trust_anchors_dir)
    _, result = cli.json(*args, "--nonce", vector["facts"]["nonce"])
    assert "NONCE_MISMATCH" not in [f["code"] for f in result["findings"]]
    _, result = cli.json(*args, "--nonce", "00" * 20)
    assert "NONCE_MISMATCH" in [f["code"] for f in result["findings"]]


def test_refs_lifecycle_and_import(cli: Cli) -> None:
    code, added = cli.json("refs", "add", "nitro.pcr0", "AA" * 48, "--label", "v1", "--json")
    assert code == 0 and added["value"] == "aa" * 48 and added["state"] == "active"
    assert cli("refs", "revoke", added["id"], "--reason", "superseded")[0] == 0
    assert cli.json("refs", "list", "--json")[1] == []
    (listed,) = cli.json("refs", "list", "--all", "--json")[1]
    assert listed["state"] == "revoked" and listed["revoke_reason"] == "superseded"
    assert cli("refs", "revoke", added["id"], "--reason", "again")[0] == 64
    assert cli("refs", "revoke", "no-such-id", "--reason", "x")[0] == 64
    assert cli("refs", "add", "nitro.pcr0", "abcd")[0] == 64  # wrong length
    assert cli("refs", "add", "nitro.pcr99", "aa" * 48)[0] == 64  # unknown kind
    manifest = ROOT / "measurements" / "nitro" / "example-blocky-2024.json"
    code, out, _ = cli("refs", "import", str(manifest))
    assert code == 0 and "3 added" in out
    code, out, _ = cli("refs", "import", str(manifest))
    assert code == 0 and "0 added, 3 already present" in out
    code, out, _ = cli("refs", "import", str(ROOT / "measurements" / "nitro" / "example-nitro-cli-describe-eif.json"))
    assert code == 0 and "3 added" in out
    labels = {r["label"] for r in cli.json("refs", "list", "--json")[1]}
    assert "blocky-example" in labels


def test_keys_generate_show_and_signed_verify(
    cli: Cli, tmp_path: Path, vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    key = tmp_path / "signing.pem"
    assert cli("keys", "generate", "--out", str(key))[0] == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cli("keys", "generate", "--out", str(key))[0] == 64  # refuses to overwrite
    code, jwks = cli.json("keys", "show", "--signing-key", str(key))
    assert code == 0 and jwks["keys"][0]["alg"] == "ES256" and "d" not in jwks["keys"][0]
    vector = manifest_vectors("nitro")[0]
    _, result = cli.json(*_verify_args(vector, vectors_dir, trust_anchors_dir), "--signing-key", str(key))
    from joserfc import jwt
    from joserfc.jwk import KeySet

    token = jwt.decode(result["token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert token.header["kid"] == jwks["keys"][0]["kid"]


def test_usage_and_unavailable_exit_codes(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    evidence = tmp_path / "e.bin"
    evidence.write_bytes(b"\x84\x40")
    assert cli("verify", "--evidence", str(evidence), "--at", "yesterday")[0] == 64
    assert cli("verify", "--evidence", str(tmp_path / "missing.bin"))[0] == 64
    assert cli("verify", "--evidence", str(evidence), "--collateral", str(tmp_path / "nope"))[0] == 64
    assert cli("no-such-command")[0] == 64
    code, result = cli.json("verify", "--evidence", str(evidence), "--json")
    assert code == 2 and result["status"] == "contraindicated"
    monkeypatch.setenv("VERIFIER_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert cli("verify", "--evidence", str(evidence))[0] == 3  # schema not migrated: could not appraise
    assert cli("refs", "list")[0] == 3


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("verifier")
    env = dict(os.environ, VERIFIER_DATABASE_URL=f"sqlite:///{tmp_path / 'v.db'}")
    subprocess.run([str(exe), "db", "upgrade"], check=True, env=env, capture_output=True)
    evidence = tmp_path / "e.bin"
    evidence.write_bytes(b"\xd2\x84")
    proc = subprocess.run(
        [str(exe), "verify", "--evidence", str(evidence), "--json"], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["code"].startswith("NITRO_")
    assert "Traceback" not in proc.stderr


def test_serve_refuses_to_start_without_a_signing_key(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
    assert code == 64
    assert "SIGNING_KEY_MISSING" in err and "--dev" in err
    bad = tmp_path / "open.pem"
    assert cli("keys", "generate", "--out", str(bad))[0] == 0
    bad.chmod(0o644)
    code, _, err = cli("serve", "--signing-key", str(bad), "--listen", "127.0.0.1:0")
    assert code == 64 and "SIGNING_KEY_PERMISSIONS" in err
