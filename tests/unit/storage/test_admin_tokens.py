"""Admin tokens in SQL (SQLite and PostgreSQL): hashes only, roles, revocation, last use, audit rows, the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import select

from verifier.auth import CURRENT_PRINCIPAL, Principal, current_actor
from verifier.cli.main import main
from verifier.errors import NotFoundError, RequestError
from verifier.storage import audit
from verifier.storage.admin_tokens import SqlAdminTokens, new_token
from verifier.storage.engine import Database
from verifier.storage.tables import AdminTokenRow

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_create_stores_only_the_hash_and_audits(db: Database) -> None:
    tokens = SqlAdminTokens(db)
    info, token = tokens.create("ci deployer", "admin", now=NOW, actor="cli:alice")
    assert token.startswith("vat_") and len(token) == 4 + 43  # 32 bytes, base64url without padding
    assert (info.name, info.role, info.created_by, info.revoked_at) == ("ci deployer", "admin", "cli:alice", None)
    with db.session() as session:
        row = session.scalars(select(AdminTokenRow)).one()
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        stored = [str(v) for v in vars(row).values()]
    assert not any(token in value for value in stored)
    (entry,) = audit.entries(db, action="token.create")
    assert (entry.actor, entry.subject, entry.details) == (
        "cli:alice",
        info.id,
        {"name": "ci deployer", "role": "admin"},
    )
    assert token not in json.dumps(entry.details) and audit.verify_chain(db).ok


def test_authenticate_revoke_and_last_used(db: Database) -> None:
    tokens = SqlAdminTokens(db)
    info, token = tokens.create("auditor-1", "auditor", now=NOW, actor="cli:alice")
    assert tokens.authenticate(new_token(), now=NOW) is None
    assert tokens.authenticate("", now=NOW) is None
    assert tokens.authenticate("x" * 10_000, now=NOW) is None
    assert tokens.authenticate(token[:-1], now=NOW) is None
    first = tokens.authenticate(token, now=NOW)
    assert first is not None and first.role == "auditor" and first.last_used_at == NOW
    later = tokens.authenticate(token, now=NOW + dt.timedelta(seconds=30))
    assert later is not None and later.last_used_at == NOW  # at most one write a minute
    later = tokens.authenticate(token, now=NOW + dt.timedelta(seconds=61))
    assert later is not None and later.last_used_at == NOW + dt.timedelta(seconds=61)
    revoked = tokens.revoke(info.id, now=NOW + dt.timedelta(minutes=5), actor="token:root")
    assert revoked.revoked_at == NOW + dt.timedelta(minutes=5) and revoked.revoked_by == "token:root"
    assert tokens.authenticate(token, now=NOW + dt.timedelta(minutes=6)) is None
    with pytest.raises(RequestError) as again:
        tokens.revoke(info.id, now=NOW, actor="x")
    assert again.value.code == "TOKEN_REVOKED"
    with pytest.raises(NotFoundError):
        tokens.revoke("nope", now=NOW, actor="x")
    assert [a.action for a in audit.entries(db)] == ["token.create", "token.revoke"]
    assert [i.id for i in tokens.list()] == [info.id] and tokens.list(include_revoked=False) == []


@pytest.mark.parametrize(
    ("name", "role", "code"),
    [
        ("", "admin", "TOKEN_NAME_REQUIRED"),
        ("x" * 101, "admin", "TOKEN_NAME_TOO_LONG"),
        ("a\nb", "admin", "TOKEN_NAME_INVALID"),
        ("ok", "root", "TOKEN_ROLE_UNKNOWN"),
    ],
)
def test_create_refuses_bad_names_and_roles(sqlite_db: Database, name: str, role: str, code: str) -> None:
    with pytest.raises(RequestError) as caught:
        SqlAdminTokens(sqlite_db).create(name, role, now=NOW, actor="cli:a")
    assert caught.value.code == code
    assert SqlAdminTokens(sqlite_db).list() == [] and audit.entries(sqlite_db) == []


def test_current_actor() -> None:
    assert current_actor().startswith("cli:")
    token = CURRENT_PRINCIPAL.set(Principal("cert", "ops-laptop", "admin"))
    try:
        assert current_actor() == "cert:ops-laptop"
    finally:
        CURRENT_PRINCIPAL.reset(token)
    assert Principal("token", "a", "admin").may("auditor") and not Principal("token", "a", "auditor").may("admin")


def test_cli_create_list_revoke(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tokens", "create", "--role", "auditor", "--name", "dashboards", "--db", db.url]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("vat_") and "shown only now" in err
    info = SqlAdminTokens(db).authenticate(token, now=NOW)
    assert info is not None and info.role == "auditor" and info.created_by.startswith("cli:")
    assert main(["tokens", "list", "--json", "--db", db.url]) == 0
    out, _ = capsys.readouterr()
    (listed,) = json.loads(out)
    assert listed["id"] == info.id and listed["state"] == "active" and token not in out
    assert main(["tokens", "list", "--db", db.url]) == 0
    out, _ = capsys.readouterr()
    assert info.id in out and "dashboards" in out and token not in out
    assert main(["tokens", "revoke", info.id, "--db", db.url]) == 0
    capsys.readouterr()
    assert SqlAdminTokens(db).authenticate(token, now=NOW) is None
    assert main(["tokens", "revoke", info.id, "--db", db.url]) == 64
    with pytest.raises(SystemExit) as usage:
        main(["tokens", "create", "--role", "root", "--name", "x", "--db", db.url])
    assert usage.value.code == 64
