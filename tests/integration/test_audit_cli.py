"""`verifier audit verify|list` and `verifier policy show|set|list` through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from verifier.appraisal.policy import Policy, policy_from_json, policy_sha256
from verifier.cli import main
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.tables import AuditRow

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class Cli:
    def __init__(self, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db_url = db_url
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args, "--db", self.db_url])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


@pytest.fixture
def database(cli: Cli) -> Iterator[Database]:
    db = Database(cli.db_url)
    yield db
    db.dispose()


def record(db: Database, n: int) -> list[str]:
    store, ids = SqlAppraisalStore(db), []
    for i in range(n):
        ids.append(str(uuid.uuid4()))
        store.record(appraisal_id=ids[-1], appraised_at=T0 + dt.timedelta(seconds=i), tee="nitro",
                     status="affirming", policy_id="default", evidence_sha256=f"{i:064x}", findings=[],
                     token_id=f"jti-{i}", request_id=None, policy_sha256=policy_sha256(Policy()),
                     reference_set_version=3)
    return ids


def test_audit_verify_and_list(cli: Cli, database: Database) -> None:
    assert cli("audit", "verify")[:2] == (0, "audit log intact: 0 rows\n")
    ids = record(database, 3)
    code, out, _ = cli("audit", "verify")
    assert (code, out) == (0, "audit log intact: 3 rows\n")
    rows = cli.json("audit", "list")
    assert [r["subject"] for r in rows] == ids and [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["action"] == "appraisal" and rows[0]["details"]["reference_set_version"] == 3
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert [r["seq"] for r in cli.json("audit", "list", "--after", "1", "--limit", "1")] == [2]
    assert cli.json("audit", "list", "--action", "policy.set") == []
    code, out, _ = cli("audit", "list")
    assert code == 0 and len(out.splitlines()) == 3 and ids[2] in out


def test_audit_verify_names_an_edited_row(cli: Cli, database: Database) -> None:
    record(database, 3)
    with database.session() as session:
        session.execute(update(AuditRow.__table__).where(AuditRow.__table__.c.seq == 2)
                        .values(details={"status": "contraindicated"}))
    code, out, _ = cli("audit", "verify")
    assert code == 2
    assert "row 2" in out and "edited" in out


def test_audit_usage_errors(cli: Cli) -> None:
    assert cli("audit", "list", "--limit", "0")[0] == 64
    assert cli("audit", "frobnicate")[0] == 64


def test_policy_set_show_list(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("policy", "show")
    assert code == 0 and out.startswith(f"default (built-in) sha256 {policy_sha256(Policy())}\n")
    body = {"id": "enclave-strict", "require_nonce": True, "snp": {"minimum_tcb": {"snp": 8}}}
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(body))
    code, out, err = cli("policy", "set", "enclave-strict", "--file", str(path))
    digest = policy_sha256(policy_from_json(body))
    assert (code, out) == (0, f"policy enclave-strict set: sha256 {digest}\n"), err
    shown = cli.json("policy", "show", "enclave-strict")
    assert (shown["source"], shown["sha256"], shown["policy"]["require_nonce"]) == ("database", digest, True)
    listed = {r["name"]: r for r in cli.json("policy", "list")}
    assert set(listed) == {"default", "nonce-required", "enclave-strict"}
    assert listed["enclave-strict"]["sha256"] == digest and listed["enclave-strict"]["updated_by"].startswith("cli")
    assert listed["default"]["source"] == "built-in"
    audit_rows = cli.json("audit", "list", "--action", "policy.set")
    assert [(r["subject"], r["details"]["sha256"]) for r in audit_rows] == [("enclave-strict", digest)]


def test_policy_errors(cli: Cli, tmp_path: Path) -> None:
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"snp": {"crl_fail_open": True}}))
    code, _, err = cli("policy", "set", "default", "--file", str(loose))
    assert code == 64 and "POLICY_LOOSENS_BUILT_IN" in err
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"requir_nonce": True}))
    code, _, err = cli("policy", "set", "x", "--file", str(typo))
    assert code == 64 and "POLICY_INVALID" in err
    assert cli("policy", "set", "x", "--file", str(tmp_path / "missing.json"))[0] == 64
    code, _, err = cli("policy", "show", "nope")
    assert code == 64 and "POLICY_UNKNOWN" in err
    assert cli.json("audit", "list") == []
