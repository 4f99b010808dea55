"""`verifier audit verify|list|keygen|checkpoint` and `verifier policy show|set|list` through the CLI, on SQLite and
PostgreSQL. Signed checkpoints (C2SP signed notes) detect what a bare hash chain cannot: a row inserted or rewritten
with every later hash recomputed, and truncation."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from verifier.appraisal.policy import Policy, policy_from_json, policy_sha256
from verifier.cli import main
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore
from verifier.storage.engine import Database
from verifier.storage.tables import AuditRow

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


class Cli:
    def __init__(self, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.db_url = db_url
        self.capsys = capsys

    def __call__(self, *args: str, db: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args, "--db", self.db_url] if db else list(args))
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
        store.record(
            appraisal_id=ids[-1],
            appraised_at=T0 + dt.timedelta(seconds=i),
            tee="nitro",
            status="affirming",
            policy_id="default",
            evidence_sha256=f"{i:064x}",
            findings=[],
            token_id=f"jti-{i}",
            request_id=None,
            policy_sha256=policy_sha256(Policy()),
            reference_set_version=3,
        )
    return ids


def test_audit_verify_and_list(cli: Cli, database: Database) -> None:
    assert cli("audit", "verify")[:2] == (0, f"audit log intact: 0 rows\nhead: size 0 hash {'0' * 64}\n")
    ids = record(database, 3)
    code, out, err = cli("audit", "verify")
    head = audit.entries(database)[-1].hash
    assert (code, out) == (0, f"audit log intact: 3 rows\nhead: size 3 hash {head}\n")
    assert "no signed checkpoint" in err
    rows = cli.json("audit", "list")
    assert [r["subject"] for r in rows] == ids and [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["action"] == "appraisal" and rows[0]["details"]["reference_set_version"] == 3
    assert rows[1]["prev_hash"] == rows[0]["hash"]
    assert [r["seq"] for r in cli.json("audit", "list", "--after", "1", "--limit", "1")] == [2]
    assert cli.json("audit", "list", "--action", "policy.set") == []
    code, out, _ = cli("audit", "list")
    assert code == 0 and len(out.splitlines()) == 4 and ids[2] in out  # a header line, then the rows


def test_audit_verify_names_an_edited_row(cli: Cli, database: Database) -> None:
    record(database, 3)
    with database.session() as session:
        session.execute(
            update(AuditRow.__table__)
            .where(AuditRow.__table__.c.seq == 2)
            .values(details={"status": "contraindicated"})
        )
    code, out, _ = cli("audit", "verify")
    assert code == 2
    assert "row 2" in out and "edited" in out


def test_audit_usage_errors(cli: Cli) -> None:
    assert cli("audit", "list", "--limit", "0")[0] == 64
    assert cli("audit", "frobnicate")[0] == 64


def _rehash(db: Database) -> None:
    """What an attacker with SQL access does after changing a row: recompute every prev_hash and hash in order."""
    table = AuditRow.__table__
    with db.session() as session:
        prev = audit.GENESIS
        for row in session.execute(select(table).order_by(table.c.seq)).mappings().all():
            digest = audit._digest(
                prev, row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["details"]
            )
            session.execute(update(table).where(table.c.seq == row["seq"]).values(prev_hash=prev, hash=digest))
            prev = digest


def _insert_in_the_middle(db: Database, seq: int) -> None:
    table = AuditRow.__table__
    with db.session() as session:
        last = max(session.scalars(select(table.c.seq)))
        for s in range(last, seq - 1, -1):
            session.execute(update(table).where(table.c.seq == s).values(seq=s + 1))
        session.execute(
            insert(table).values(
                seq=seq,
                at=T0,
                actor="cli:attacker",
                action="appraisal",
                subject="forged",
                details={"status": "affirming"},
                prev_hash="x" * 64,
                hash="y" * 64,
            )
        )
    _rehash(db)


@pytest.fixture
def keys(tmp_path: Path, cli: Cli) -> tuple[Path, Path]:
    key = tmp_path / "audit.key"
    code, out, err = cli("audit", "keygen", "--out", str(key), "--name", "verifier.example/audit", db=False)
    assert code == 0, err
    assert (key.stat().st_mode & 0o777) == 0o600
    assert out.strip() == Path(f"{key}.pub").read_text().strip() and out.startswith("verifier.example/audit+")
    return key, Path(f"{key}.pub")


def _checkpoint(cli: Cli, key: Path, directory: Path) -> None:
    code, out, err = cli("audit", "checkpoint", "--key", str(key), "--dir", str(directory))
    assert code == 0, out + err
    assert "checkpoint written to" in out


@pytest.fixture
def checkpointed(cli: Cli, database: Database, keys: tuple[Path, Path], tmp_path: Path) -> Path:
    """Four rows, a signed checkpoint of all four in a directory outside the database, then two more rows."""
    record(database, 4)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    _checkpoint(cli, keys[0], directory)
    record(database, 2)
    return directory


def test_verify_against_a_checkpoint_prints_the_head_and_the_new_rows(
    cli: Cli, database: Database, keys: tuple[Path, Path], checkpointed: Path
) -> None:
    code, out, err = cli("audit", "verify", "--checkpoint", str(checkpointed), "--key-public", str(keys[1]))
    head = audit.entries(database)[-1].hash
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[:2] == ["audit log intact: 6 rows", f"head: size 6 hash {head}"]
    assert "origin verifier.example/audit size 4" in lines[2] and "matches; 2 rows new since" in lines[2]
    vkey = keys[1].read_text().strip()  # the key line itself works as well as its file
    assert cli("audit", "verify", "--checkpoint", str(checkpointed), "--key-public", vkey)[0] == 0


@pytest.mark.parametrize("tamper", ["insert_rehash", "rewrite_rehash", "truncate", "truncate_all"])
def test_each_kind_of_tampering_is_detected_against_the_checkpoint(
    cli: Cli, database: Database, keys: tuple[Path, Path], checkpointed: Path, tamper: str
) -> None:
    table = AuditRow.__table__
    if tamper == "insert_rehash":
        _insert_in_the_middle(database, 2)
    elif tamper == "rewrite_rehash":
        with database.session() as session:
            session.execute(update(table).where(table.c.seq == 3).values(details={"status": "affirming"}))
        _rehash(database)
    else:
        with database.session() as session:
            session.execute(delete(table).where(table.c.seq > (0 if tamper == "truncate_all" else 3)))
    assert cli("audit", "verify")[0] == 0  # the bare chain still looks intact: that is the bug being fixed
    code, out, _ = cli("audit", "verify", "--checkpoint", str(checkpointed), "--key-public", str(keys[1]))
    assert code == 2, out
    assert out.startswith("audit log TAMPERED") and "\nhead: size " in out
    assert ("TRUNCATED" if tamper.startswith("truncate") else "REWRITTEN: row 4") in out
    # a new checkpoint is refused while the directory holds one the log contradicts
    code, out, _ = cli("audit", "checkpoint", "--key", str(keys[0]), "--dir", str(checkpointed))
    assert code == 2 and out.startswith("not signing") and len(list(checkpointed.iterdir())) == 1


def test_a_rewrite_after_the_checkpoint_is_caught_by_the_next_one(
    cli: Cli, database: Database, keys: tuple[Path, Path], checkpointed: Path
) -> None:
    _checkpoint(cli, keys[0], checkpointed)  # now covers all 6 rows
    table = AuditRow.__table__
    with database.session() as session:
        session.execute(update(table).where(table.c.seq == 6).values(subject="other"))
    _rehash(database)
    code, out, _ = cli("audit", "verify", "--checkpoint", str(checkpointed), "--key-public", str(keys[1]))
    assert code == 2 and "REWRITTEN: row 6" in out and "REWRITTEN: row 4" not in out


def test_a_forged_or_foreign_checkpoint_is_refused(
    cli: Cli, keys: tuple[Path, Path], checkpointed: Path, tmp_path: Path
) -> None:
    (path,) = checkpointed.iterdir()
    good = path.read_text()
    body, _, signature = good.partition("\n\n")
    forged = checkpointed / "forged.checkpoint"
    forged.write_text(body.replace("\n4\n", "\n3\n") + "\n\n" + signature)  # claims a shorter log
    code, out, _ = cli("audit", "verify", "--checkpoint", str(forged), "--key-public", str(keys[1]))
    assert code == 2 and "NOTE_SIGNATURE_INVALID" in out
    code, out, _ = cli("audit", "verify", "--checkpoint", str(checkpointed), "--key-public", str(keys[1]))
    assert code == 2 and "NOTE_SIGNATURE_INVALID" in out  # one bad file in the directory fails the whole check
    forged.unlink()
    other = tmp_path / "other.key"
    assert cli("audit", "keygen", "--out", str(other), "--name", "verifier.example/audit", db=False)[0] == 0
    code, out, _ = cli("audit", "verify", "--checkpoint", str(path), "--key-public", f"{other}.pub")
    assert code == 2 and "NOTE_UNKNOWN_KEY" in out


def test_checkpoint_usage_errors(cli: Cli, keys: tuple[Path, Path], tmp_path: Path) -> None:
    key, pub = keys
    assert cli("audit", "keygen", "--out", str(key), db=False)[0] == 64  # never overwrites a key
    assert cli("audit", "verify", "--checkpoint", str(tmp_path))[0] == 64  # no --key-public
    assert cli("audit", "verify", "--key-public", str(pub))[0] == 64  # no --checkpoint
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("audit", "verify", "--checkpoint", str(empty), "--key-public", str(pub))[0] == 64
    assert cli("audit", "verify", "--checkpoint", str(tmp_path / "nope"), "--key-public", str(pub))[0] == 64
    assert cli("audit", "verify", "--checkpoint", str(empty), "--key-public", "not-a-key")[0] == 64
    assert cli("audit", "checkpoint", "--key", str(pub))[0] == 64  # a public key is not a signing key
    key.chmod(0o644)
    assert cli("audit", "checkpoint", "--key", str(key))[0] == 64  # readable by others
    key.chmod(0o600)
    code, out, _ = cli("audit", "checkpoint", "--key", str(key))  # stdout
    assert code == 0 and out.startswith("verifier.example/audit\n0\n") and "\n\n\u2014 verifier.example/audit " in out


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
