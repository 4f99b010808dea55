"""`verifier policy|tokens|audit ... --server HOST:PORT`: the same commands against a real TLS server on port 0 (its
admin API: PolicyService, AdminTokenService, AuditService) give the output and exit code they give on the database;
changes are audited with the credential's principal; an auditor reads but cannot change or manage tokens; a created
token's text reaches stdout once and no log; the server-side chain check finds a tampered row."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import update

from tests.integration.test_admin_auth import _ca, _key_pem, _leaf
from verifier.bootstrap import build
from verifier.cli import audit_port, main
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.admin_tokens import SqlAdminTokens
from verifier.storage.engine import Database
from verifier.storage.tables import AuditRow
from verifier.transport.grpc import admin_servicers
from verifier.transport.grpc.server import VerifierServer

NOW = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Served:
    port: int
    admin_port: int
    files: dict[str, Path]


@pytest.fixture
def served(db: Database, database_url: str, tmp_path: Path) -> Iterator[Served]:
    """A TLS server (and its admin mTLS port) on the test database, in a thread with its own event loop."""
    server_ca, admin_ca = _ca("server ca"), _ca("admin ca")
    server, alice = _leaf(server_ca, "localhost", server=True), _leaf(admin_ca, "alice")
    files = {}
    for name, data in {
        "ca.pem": server_ca.pem,
        "server.crt": server.pem,
        "server.key": _key_pem(server.key),
        "admin-ca.pem": admin_ca.pem,
        "alice.crt": alice.pem,
        "alice.key": _key_pem(alice.key),
    }.items():
        (tmp_path / name).write_bytes(data)
        files[name] = tmp_path / name
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0.2,
        tls_cert=files["server.crt"],
        tls_key=files["server.key"],
        admin_client_ca=files["admin-ca.pem"],
        admin_listen="127.0.0.1:0",
    )
    components = build(settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server_obj = VerifierServer(components)
    try:
        port, _ = asyncio.run_coroutine_threadsafe(server_obj.start(), loop).result(30)
        yield Served(port, server_obj.admin_port, files)
    finally:
        asyncio.run_coroutine_threadsafe(server_obj.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        components.close()


class Cli:
    """`main(argv)` in process, on the database (`local`) or against the server with a token file (`remote`)."""

    def __init__(self, url: str, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        self.url, self.served, self.capsys, self.tmp = url, served, capsys, tmp_path

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main(["--log-level", "DEBUG", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def local(self, *args: str) -> tuple[int, str, str]:
        return self.run([*args, "--db", self.url])

    def token_file(self, token: str) -> Path:
        path = self.tmp / f"token-{abs(hash(token))}"
        path.write_text(token + "\n")
        path.chmod(0o600)
        return path

    def remote(self, token: str, *args: str) -> tuple[int, str, str]:
        ca = str(self.served.files["ca.pem"])
        server = f"localhost:{self.served.port}"
        return self.run([*args, "--server", server, "--ca-cert", ca, "--token-file", str(self.token_file(token))])


@dataclass
class Setup:
    cli: Cli
    db: Database
    admin: str
    auditor: str


@pytest.fixture
def setup(db: Database, database_url: str, served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Setup:
    store = SqlAdminTokens(db)
    _, admin = store.create("deployer", "admin", now=NOW, actor="cli:test")
    _, auditor = store.create("dashboards", "auditor", now=NOW, actor="cli:test")
    return Setup(Cli(database_url, served, capsys, tmp_path), db, admin, auditor)


def _append(db: Database, n: int) -> None:
    with db.session() as session:
        for i in range(n):
            audit.append(session, at=NOW, actor="cli:test", action="test.row", subject=f"s{i}", details={"i": i})


def _policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "strict.json"
    path.write_text(json.dumps({"require_nonce": True, "snp": {"minimum_tcb": {"snp": 8}}}))
    return path


def test_every_read_gives_the_same_output_on_the_database_and_on_the_server(setup: Setup, tmp_path: Path) -> None:
    cli = setup.cli
    assert cli.local("policy", "set", "enclave-strict", "--file", str(_policy_file(tmp_path)))[0] == 0
    _append(setup.db, 3)
    key = tmp_path / "audit.key"
    assert cli.run(["audit", "keygen", "--out", str(key)])[0] == 0
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    assert cli.local("audit", "checkpoint", "--key", str(key), "--dir", str(checkpoints))[0] == 0
    _append(setup.db, 2)
    commands = [
        ["policy", "list"],
        ["policy", "list", "--json"],
        ["policy", "show"],
        ["policy", "show", "enclave-strict", "--json"],
        ["tokens", "list"],
        ["tokens", "list", "--json"],
        ["audit", "list"],
        ["audit", "list", "--json", "--after", "2", "--limit", "3"],
        ["audit", "list", "--json", "--action", "policy.set"],
        ["audit", "verify"],
        ["audit", "verify", "--checkpoint", str(checkpoints), "--key-public", f"{key}.pub"],
        ["policy", "show", "nope"],
    ]
    for argv in commands:
        token = setup.admin if argv[0] == "tokens" else setup.auditor
        remote = cli.remote(token, *argv)  # first: authenticating refreshes last_used_at, which `tokens list` shows
        local = cli.local(*argv)
        assert remote[:2] == local[:2], argv
    assert "NAME" in cli.local("policy", "list")[1].splitlines()[0]  # an aligned table with a header
    code, _, err = cli.remote(setup.auditor, "policy", "show", "nope")
    assert code == 64 and "POLICY_UNKNOWN" in err


def test_changes_through_the_server_are_audited_with_the_principal(setup: Setup, tmp_path: Path) -> None:
    cli = setup.cli
    code, out, err = cli.remote(setup.admin, "policy", "set", "enclave-strict", "--file", str(_policy_file(tmp_path)))
    assert code == 0 and out.startswith("policy enclave-strict set: sha256 "), err
    shown = json.loads(cli.local("policy", "show", "enclave-strict", "--json")[1])
    assert shown["source"] == "database" and shown["sha256"] in out
    code, out, err = cli.remote(setup.admin, "tokens", "create", "--role", "auditor", "--name", "grafana", "--json")
    assert code == 0, err
    created = json.loads(out)
    assert (created["role"], created["created_by"], created["state"]) == ("auditor", "token:deployer", "active")
    assert cli.remote(created["token"], "audit", "verify")[0] == 0  # the new token works at once
    code, out, _ = cli.remote(setup.admin, "tokens", "revoke", created["id"])
    assert (code, out) == (0, f"revoked {created['id']} (grafana, auditor)\n")
    code, _, err = cli.remote(created["token"], "audit", "verify")
    assert code == 77 and "ADMIN_TOKEN_INVALID" in err
    assert cli.remote(setup.admin, "tokens", "revoke", created["id"])[0] == 64  # TOKEN_REVOKED, as on the database
    assert cli.remote(setup.admin, "tokens", "revoke", "no-such-id")[0] == 64
    changes = [e for e in audit.entries(setup.db) if e.action in ("policy.set", "token.create", "token.revoke")]
    assert [(e.action, e.actor) for e in changes] == [
        ("token.create", "cli:test"),
        ("token.create", "cli:test"),
        ("policy.set", "token:deployer"),
        ("token.create", "token:deployer"),
        ("token.revoke", "token:deployer"),
    ]


def test_an_auditor_reads_but_cannot_change_or_manage_tokens(setup: Setup, tmp_path: Path) -> None:
    cli = setup.cli
    for argv in (["policy", "list"], ["audit", "list"], ["audit", "verify"], ["policy", "show", "default"]):
        assert cli.remote(setup.auditor, *argv)[0] == 0, argv
    refused = [
        ["tokens", "create", "--role", "admin", "--name", "escalate"],
        ["tokens", "list"],
        ["tokens", "revoke", "x"],
        ["policy", "set", "p", "--file", str(_policy_file(tmp_path))],
    ]
    for argv in refused:
        code, out, err = cli.remote(setup.auditor, *argv)
        assert code == 77 and "ADMIN_ROLE_INSUFFICIENT" in err and "Traceback" not in err, argv
        assert out == ""
    assert {t.name for t in SqlAdminTokens(setup.db).list()} == {"deployer", "dashboards"}
    assert [e.details["reason"] for e in audit.entries(setup.db, action="admin.refused")] == [
        "ADMIN_ROLE_INSUFFICIENT"
    ] * len(refused)


def test_the_created_token_is_printed_once_and_never_logged(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        code, out, err = setup.cli.remote(setup.admin, "tokens", "create", "--role", "admin", "--name", "ci")
    token = out.strip()
    assert code == 0 and token.startswith("vat_") and out == token + "\n"
    assert "shown only now" in err and token not in err
    assert "admin call /verifier.v1.AdminTokenService/CreateAdminToken" in caplog.text  # the server did log the call
    rows = json.dumps([e.details for e in audit.entries(setup.db)])
    for secret in (token, setup.admin):
        assert secret not in caplog.text and secret not in rows
    info = SqlAdminTokens(setup.db).authenticate(token, now=NOW)
    assert info is not None and (info.role, info.created_by) == ("admin", "token:deployer")


def test_remote_verify_detects_a_tampered_row_and_checkpoints_are_signed_here(setup: Setup, tmp_path: Path) -> None:
    cli = setup.cli
    _append(setup.db, 4)
    key = tmp_path / "audit.key"
    assert cli.run(["audit", "keygen", "--out", str(key), "--name", "verifier.example/audit"])[0] == 0
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    code, out, err = cli.remote(setup.auditor, "audit", "checkpoint", "--key", str(key), "--dir", str(directory))
    assert code == 0 and "checkpoint written to" in out, err
    verify = ["audit", "verify", "--checkpoint", str(directory), "--key-public", f"{key}.pub"]
    code, out, _ = cli.remote(setup.auditor, *verify)
    assert code == 0 and out.startswith("audit log intact: 6 rows\n"), out  # 2 token.create + 4 rows
    table = AuditRow.__table__
    with setup.db.session() as session:
        session.execute(update(table).where(table.c.seq == 4).values(details={"i": 99}))
    code, out, _ = cli.remote(setup.auditor, "audit", "verify")
    assert code == 2 and "BROKEN at row 4" in out and "edited" in out
    assert (code, out) == cli.local("audit", "verify")[:2]
    code, out, _ = cli.remote(setup.auditor, *verify)
    assert code == 2 and "REWRITTEN: row 6" not in out and "BROKEN at row 4" in out
    code, out, _ = cli.remote(setup.auditor, "audit", "checkpoint", "--key", str(key), "--dir", str(directory))
    assert code == 2 and out.startswith("not signing") and len(list(directory.iterdir())) == 1


def test_audit_list_pages_through_the_server(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(setup.db, 7)
    monkeypatch.setattr(admin_servicers, "MAX_PAGE_ROWS", 2)
    monkeypatch.setattr(audit_port, "PAGE_ROWS", 2)
    for argv in (["--limit", "5"], ["--after", "3"], ["--action", "test.row", "--limit", "6"]):
        remote = setup.cli.remote(setup.auditor, "audit", "list", "--json", *argv)
        assert remote[:2] == setup.cli.local("audit", "list", "--json", *argv)[:2], argv
    monkeypatch.setattr(admin_servicers, "MAX_PAGE_BYTES", 1)  # one row a page
    remote = setup.cli.remote(setup.auditor, "audit", "list", "--json")
    assert [r["seq"] for r in json.loads(remote[1])] == list(range(1, 10))


def _reflection_knows_the_admin_services(served: Served) -> None:
    credentials = grpc.ssl_channel_credentials(served.files["ca.pem"].read_bytes())
    with grpc.secure_channel(f"localhost:{served.port}", credentials) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="verifier.v1.AuditService"),
        ]
        listed, described = stub.ServerReflectionInfo(iter(requests), timeout=10)
    services = {s.name for s in listed.list_services_response.service}
    assert {"verifier.v1.PolicyService", "verifier.v1.AdminTokenService", "verifier.v1.AuditService"} <= services
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    assert "verifier/v1/admin.proto" in {f.name for f in files}


def test_client_certificate_usage_errors_and_an_unreachable_server(setup: Setup, served: Served) -> None:
    cli, files = setup.cli, served.files
    cert = ["--client-cert", str(files["alice.crt"]), "--client-key", str(files["alice.key"])]
    admin_port = ["--server", f"localhost:{served.admin_port}", "--ca-cert", str(files["ca.pem"])]
    code, out, err = cli.run(["tokens", "list", "--json", *admin_port, *cert])
    assert code == 0 and {t["name"] for t in json.loads(out)} == {"deployer", "dashboards"}, err
    _reflection_knows_the_admin_services(served)
    token = ["--token-file", str(cli.token_file(setup.admin))]
    assert cli.run(["policy", "list", "--server", "localhost:1", "--db", cli.url, *token])[0] == 64
    assert cli.run(["policy", "list", "--server", "localhost:1", "--policy-file", "p.json", *token])[0] == 64
    assert cli.run(["audit", "list", "--token-file", "t"])[0] == 64  # a credential without --server
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, _, err = cli.run(["audit", "list", "--server", f"127.0.0.1:{closed}", *token])
    assert code == 3 and "UNAVAILABLE" in err and "Traceback" not in err
