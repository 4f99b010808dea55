"""`verifier db prune --appraisals-older-than / --audit-checkpoint --checkpoint-key` and `verifier audit verify`
after a prune, through the CLI on SQLite and PostgreSQL; migration 0007 (`audit_prune`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from tests.integration.test_audit_cli import Cli, record
from verifier.results.signed_note import load_signer, sign
from verifier.storage import audit, migrate
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow, AuditPruneRow, AuditRow


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


@pytest.fixture
def keys(tmp_path: Path, cli: Cli) -> tuple[Path, Path]:
    key = tmp_path / "audit.key"
    assert cli("audit", "keygen", "--out", str(key), "--name", "verifier.example/audit", db=False)[0] == 0
    return key, Path(f"{key}.pub")


def checkpoint(cli: Cli, key: Path, directory: Path) -> Path:
    before = set(directory.iterdir())
    code, out, err = cli("audit", "checkpoint", "--key", str(key), "--dir", str(directory))
    assert code == 0, out + err
    (new,) = set(directory.iterdir()) - before
    return new


@pytest.fixture
def pruned(cli: Cli, database: Database, keys: tuple[Path, Path], tmp_path: Path) -> Path:
    """Checkpoints at 3 and 6 rows, two more rows, then `db prune` under the directory: rows 1..6 go."""
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    record(database, 3)
    checkpoint(cli, keys[0], directory)
    record(database, 3)
    checkpoint(cli, keys[0], directory)
    record(database, 2)
    code, out, err = cli(
        "db", "prune", "--audit-checkpoint", str(directory), "--checkpoint-key", str(keys[1]), "--audit-older-than", "0"
    )
    assert code == 0, out + err
    assert "audit_log: rows 1..6 pruned, 6 rows deleted now" in out
    return directory


def _seqs(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.scalars(select(AuditRow.seq).order_by(AuditRow.seq)))


def test_prune_then_verify_is_intact(cli: Cli, database: Database, keys: tuple[Path, Path], pruned: Path) -> None:
    assert _seqs(database) == [7, 8, 9]  # 9: the audit.prune row
    code, out, err = cli("audit", "verify")
    assert code == 0, out
    assert out.startswith("audit log intact: 3 rows after the pruned rows 1..6") and "signature not verified" in out
    assert f"head: size 9 hash {audit.entries(database, after=8)[0].hash}" in out
    assert "was not verified either" in err
    code, out, _ = cli("audit", "verify", "--checkpoint", str(pruned), "--key-public", str(keys[1]))
    assert code == 0, out
    assert "signature verified" in out
    assert "PRUNED: it covers rows 1..3" in out and "cannot check" in out  # the older checkpoint
    assert "size 6" in out and "matches; 3 rows new since (1 checkpoints checked)" in out
    # signing goes on from the real size, and the new checkpoint verifies as well
    new = checkpoint(cli, keys[0], pruned)
    assert new.name.startswith("000000000009-")
    assert cli("audit", "verify", "--checkpoint", str(pruned), "--key-public", str(keys[1]))[0] == 0
    assert cli.json("audit", "list", "--action", "audit.prune")[0]["subject"] == "1..6"


@pytest.mark.parametrize("tamper", ["edit", "truncate", "truncate_all", "forge_record"])
def test_tampering_after_a_prune_is_detected(
    cli: Cli, database: Database, keys: tuple[Path, Path], pruned: Path, tmp_path: Path, tamper: str
) -> None:
    table = AuditRow.__table__
    with database.session() as session:
        if tamper == "edit":
            session.execute(update(table).where(table.c.seq == 8).values(subject="forged"))
        elif tamper == "truncate":  # after a checkpoint of all 9 rows
            checkpoint(cli, keys[0], pruned)
            session.execute(delete(table).where(table.c.seq > 7))
        elif tamper == "truncate_all":  # no checkpoint after the prune: the audit.prune row must still be there
            session.execute(delete(table))
        else:  # replace the recorded checkpoint by one signed with another key
            other = tmp_path / "other.key"
            assert cli("audit", "keygen", "--out", str(other), "--name", "verifier.example/audit", db=False)[0] == 0
            (path,) = [p for p in pruned.iterdir() if p.name.startswith("000000000006")]
            body = path.read_text().partition("\n\n")[0] + "\n"
            session.execute(update(AuditPruneRow.__table__).values(checkpoint=sign(body, load_signer(other))))
    code, out, _ = cli("audit", "verify", "--checkpoint", str(pruned), "--key-public", str(keys[1]))
    assert code == 2, out
    expected = {
        "edit": "row 8 was edited",
        "truncate": "TRUNCATED: it covers 9 rows",
        "truncate_all": "BROKEN at row 7: the log ends at row 6",
        "forge_record": "NOTE_UNKNOWN_KEY",
    }[tamper]
    assert expected in out


def test_deleting_audit_rows_without_a_prune_record_is_detected(cli: Cli, database: Database) -> None:
    record(database, 4)
    with database.session() as session:
        session.execute(delete(AuditRow.__table__).where(AuditRow.seq <= 2))
    code, out, _ = cli("audit", "verify")
    assert code == 2 and "BROKEN at row 1: row 1 is missing (next row is 3); no prune is recorded" in out


def test_prune_is_refused_without_a_valid_checkpoint(
    cli: Cli, database: Database, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    record(database, 4)
    path = checkpoint(cli, keys[0], directory)
    other = tmp_path / "other.key"
    assert cli("audit", "keygen", "--out", str(other), "--name", "verifier.example/audit", db=False)[0] == 0
    args = ("db", "prune", "--audit-older-than", "0", "--audit-checkpoint")
    code, _, err = cli(*args, str(path), "--checkpoint-key", f"{other}.pub")  # signed by another key
    assert code == 64 and "AUDIT_PRUNE_NEEDS_CHECKPOINT" in err and "NOTE_UNKNOWN_KEY" in err
    code, _, err = cli(*args, str(directory), "--checkpoint-key", f"{other}.pub")
    assert code == 64 and "AUDIT_PRUNE_NEEDS_CHECKPOINT" in err
    assert cli(*args, str(path))[0] == 64  # no key
    assert cli("db", "prune", "--checkpoint-key", str(keys[1]))[0] == 64  # no checkpoint
    assert cli("db", "prune", "--audit-older-than", "3")[0] == 64
    # a checkpoint of another log (same key, same size, another head): the log is not what was signed
    with database.session() as session:
        session.execute(update(AuditRow.__table__).where(AuditRow.seq == 2).values(subject="edited"))
    code, out, _ = cli(*args, str(path), "--checkpoint-key", str(keys[1]))
    assert code == 2 and "AUDIT_PRUNE_CHAIN_BROKEN" in out
    with database.session() as session:
        session.execute(delete(AuditRow.__table__))
    record(database, 4)  # a different log of 4 rows
    code, out, _ = cli(*args, str(path), "--checkpoint-key", str(keys[1]))
    assert code == 2 and "AUDIT_PRUNE_CHECKPOINT_MISMATCH" in out
    assert _seqs(database) == [1, 2, 3, 4]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditPruneRow)) == 0


def test_appraisals_older_than(cli: Cli, database: Database) -> None:
    ids = record(database, 3)  # appraised in 2025
    code, out, _ = cli("db", "prune", "--appraisals-older-than", "36500")
    assert code == 0 and out.rstrip().endswith("appraisals 0")
    code, out, _ = cli("db", "prune", "--appraisals-older-than", "30")
    assert code == 0 and out.rstrip().endswith("appraisals 3")
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(AppraisalRow)) == 0
    assert cli("audit", "verify")[0] == 0 and [e.subject for e in audit.entries(database)] == ids


def test_0007_adds_audit_prune_to_a_database_at_0006(database_url: str) -> None:
    migrate.upgrade(database_url, "0006")
    database = Database(database_url)
    try:
        record(database, 3)
        migrate.upgrade(database_url)
        migrate.check(database)
        assert audit.verify_chain(database).ok and audit.verify_chain(database).pruned == 0
        with database.session() as session:
            session.add(
                AuditPruneRow(
                    through_seq=1,
                    head="00" * 32,
                    checkpoint_size=1,
                    checkpoint_head="00" * 32,
                    checkpoint="x",
                    pruned_at=dt.datetime.now(dt.UTC),
                    pruned_by="t",
                )
            )
        with pytest.raises(RuntimeError, match="not downgrading"):
            migrate.downgrade(database_url, "0006")
        with database.session() as session:
            session.execute(delete(AuditPruneRow.__table__))
        migrate.downgrade(database_url, "0006")
        assert migrate.current(database_url) == "0006"
    finally:
        database.dispose()
