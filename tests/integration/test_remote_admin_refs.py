"""`verifier refs ...` and `verifier workloads ...` against a running server (`--server`, TLS, admin bearer tokens
from the database) give the output and exit codes they give on the database (`--db`): the same command sequence is
run on two databases, one directly and one through a real TLS server on port 0, and the outputs compared with ids,
times, actors and plan digests masked. An auditor token may list and plan but not change (exit 77, one line);
`plan --impact` runs on the server; `apply --plan-sha256` refuses a plan that moved; `--detailed-exitcode`; a bearer
token is never accepted without TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import _vectors_dir, manifest_vectors
from tests.integration.test_admin_auth import _ca, _key_pem, _leaf, reason_of
from tests.integration.test_cli import Cli
from verifier.bootstrap import build
from verifier.clock import SystemClock
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.admin_tokens import SqlAdminTokens
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import reference_values_pb2 as rv_pb
from verifier.v1 import reference_values_pb2_grpc as rv_grpc

ROOT = Path(__file__).resolve().parents[2]
NITRO_JSON = ROOT / "measurements" / "nitro" / "example-blocky-2024.json"
A, B, C = "aa" * 48, "bb" * 48, "cc" * 48
Run = Callable[..., tuple[int, str, str]]


@dataclass
class Served:
    port: int
    url: str
    ca: Path
    admin: Path  # token files
    auditor: Path

    def flags(self, token: Path | None = None) -> list[str]:
        return [
            "--server",
            f"localhost:{self.port}",
            "--ca-cert",
            str(self.ca),
            "--token-file",
            str(token or self.admin),
        ]


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[tuple[int, VerifierServer]]:
    """A VerifierServer on its own event loop in a thread; yields its gRPC port and itself."""
    components = build(settings)
    server = VerifierServer(components)
    loop = asyncio.new_event_loop()
    started: list[int] = []
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        port, _ = loop.run_until_complete(server.start())
        started.append(port)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    try:
        yield started[0], server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        components.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = _ca("server ca")
    server = _leaf(ca, "localhost", server=True)
    root = tmp_path_factory.mktemp("remote-tls")
    files = {"ca": ca.pem, "crt": server.pem, "key": _key_pem(server.key)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name: root / name for name in files}


@pytest.fixture
def served(pki: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Served]:
    """A TLS server on a fresh SQLite database with an admin and an auditor token (the vectors' trust anchors and
    offline collateral, for impact analysis)."""
    vectors = _vectors_dir()
    url = f"sqlite:///{tmp_path / 'served.db'}"
    assert Cli(url, capsys)("db", "upgrade", "--db", url)[0] == 0
    db = Database(url)
    try:
        now = SystemClock().now()
        tokens = SqlAdminTokens(db)
        _, admin = tokens.create("deployer", "admin", now=now, actor="cli:test")
        _, auditor = tokens.create("dashboards", "auditor", now=now, actor="cli:test")
    finally:
        db.dispose()
    (tmp_path / "admin.token").write_text(admin + "\n")
    (tmp_path / "auditor.token").write_text(auditor)
    settings = Settings(
        database_url=url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0.2,
        tls_cert=pki["crt"],
        tls_key=pki["key"],
        trust_anchors=vectors.parent / "trust-anchors" if vectors is not None else None,
        offline=True,
    )
    with serving(settings) as (port, _):
        yield Served(port, url, pki["ca"], tmp_path / "admin.token", tmp_path / "auditor.token")


@pytest.fixture
def local(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("VERIFIER_DATABASE_URL", raising=False)
    monkeypatch.delenv("VERIFIER_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("VERIFIER_OFFLINE", "1")
    url = f"sqlite:///{tmp_path / 'local.db'}"
    cli = Cli(url, capsys)
    assert cli("db", "upgrade", "--db", url)[0] == 0
    return cli


def _on_db(cli: Cli) -> Run:
    return lambda *args: cli(*args, "--db", cli.db_url)


def _on_server(cli: Cli, served: Served, token: Path | None = None) -> Run:
    return lambda *args: cli(*args, *served.flags(token))


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ACTOR = re.compile(r"cli:[^\s\"']+|token:deployer")
DIGEST = re.compile(r"(plan sha256 |\"plan_sha256\": \")[0-9a-f]{64}")


def masked(text: str) -> str:
    """`text` without what differs between two databases: ids, times, actors, plan digests, column widths, and the
    audit positions of rows written in one instant (in id order)."""
    text = DIGEST.sub(r"\1<sha256>", ACTOR.sub("<actor>", TIME.sub("<time>", UUID.sub("<id>", text))))
    text = re.sub(r"(?m)^\d+( +<time>)", r"<seq>\1", re.sub(r'"seq": \d+', '"seq": <seq>', text))
    return re.sub(r"[ \t]+", " ", text)


def _lines(text: str) -> list[str]:
    return sorted(masked(text).splitlines())  # rows made in one instant are listed in id order, which differs


def _json_id(out: str, *path: Any) -> str:
    value: Any = json.loads(out)
    for key in path:
        value = value[key]
    return str(value)


def _manifest(path: Path, pcr0: str, *, version: str = "1", policy: str = "") -> Path:
    values = f"{{nitro.pcr0: '{pcr0}', nitro.pcr1: '{A}', nitro.pcr2: '{A}', nitro.pcr8: '{B}'}}"
    path.write_text(f"workload: app\ntee: nitro\n{policy}versions:\n  - version: '{version}'\n    values: {values}\n")
    return path


def scenario(run: Run, tmp: Path) -> list[tuple[str, int, list[str]]]:
    """One admin session: every command's (name, exit code, masked sorted output lines). The files are in `tmp`,
    the same for both runs (the plan names its sources)."""
    tmp.mkdir(exist_ok=True)
    v1, v2 = _manifest(tmp / "app.yaml", A), _manifest(tmp / "app-2.yaml", C, version="2")
    imported = tmp / "more.json"
    imported.write_text(json.dumps({"reference_values": [{"kind": "tdx.mr_td", "value": B, "label": "td"}]}))
    build, rebuilt = tmp / "build.json", tmp / "rebuilt.json"
    for path, pcr2 in ((build, A), (rebuilt, C)):
        measurements = {"HashAlgorithm": "Sha384 { ... }", "PCR0": B, "PCR1": B, "PCR2": pcr2, "PCR8": A}
        path.write_text(json.dumps({"Measurements": measurements}))
    out: list[tuple[str, int, list[str]]] = []

    def step(name: str, *args: str) -> str:
        code, stdout, stderr = run(*args)
        errors = [line for line in stderr.splitlines() if line.startswith("verifier:")]  # not the server's log
        out.append((name, code, _lines(stdout + "\n".join(errors))))
        return stdout

    step("workloads create", "workloads", "create", "other", "--tee", "snp", "--policy", "default", "--json")
    step("refs add", "refs", "add", "snp.measurement", B, "--label", "other", "--version", "9")
    step("plan", "refs", "plan", str(v1))
    step("plan json", "refs", "plan", str(v1), "--json", "--values")
    step("plan detailed", "refs", "plan", str(v1), "--detailed-exitcode")
    step("apply", "refs", "apply", str(v1), "--values")
    step("plan again", "refs", "plan", str(v1), "--detailed-exitcode")
    step("apply v2", "refs", "apply", str(v2), "--json")
    step("refs list", "refs", "list", "--all")
    listed = step("refs list json", "refs", "list", "--label", "app", "--state", "active", "--json")
    pcr1 = next(r["id"] for r in json.loads(listed) if r["kind"] == "nitro.pcr1")
    step("revoke", "refs", "revoke", pcr1, "--reason", "CVE-2025-1")
    step("add revoked", "refs", "add", "nitro.pcr1", A, "--label", "app")
    step("reapprove", "refs", "reapprove", "nitro.pcr1", A, "--reason", "false alarm", "--label", "app")
    step("history", "refs", "history", "--label", "app")
    step("history json", "refs", "history", "--kind", "nitro.pcr1", "--json")
    step("import", "refs", "import", str(imported), "--json")
    step("import again", "refs", "import", str(imported))
    step("workloads list", "workloads", "list")
    step("workloads show", "workloads", "show", "app")
    step("workloads show json", "workloads", "show", "app", "--json")
    step("add-version", "workloads", "add-version", "other", "--version", "10", "--value", f"snp.measurement={C}")
    step("set-policy", "workloads", "set-policy", "other", "nonce-required")
    step("set-policy unknown", "workloads", "set-policy", "other", "no-such-policy")
    step("set-policy version", "workloads", "set-policy", "app", "nonce-required", "--version", "2")
    step("set-policy version back", "workloads", "set-policy", "app", "--default", "--version", "2")
    step("revoke-version", "workloads", "revoke-version", "app", "1", "--reason", "superseded", "--json")
    step("revoke workload", "workloads", "revoke", "other", "--reason", "retired")
    step("show missing", "workloads", "show", "nope")
    step("list review", "workloads", "list", "--review", "--json")
    step("import-nitro", "refs", "import-nitro", str(build), "--workload", "eif", "--version", "1.0", "--json")
    step("import-nitro again", "refs", "import-nitro", str(build), "--workload", "eif", "--version", "1.0")
    step("import-nitro other build", "refs", "import-nitro", str(rebuilt), "--workload", "eif", "--version", "1.0")
    nitro = ("refs", "import-nitro", str(rebuilt), "--workload", "eif", "--version", "1.0", "--alternative")
    step("import-nitro alternative", *nitro)
    step("eif", "workloads", "show", "eif")
    return out


def test_the_same_session_on_the_database_and_on_a_server_prints_the_same(
    local: Cli, served: Served, tmp_path: Path
) -> None:
    on_db = scenario(_on_db(local), tmp_path / "files")
    on_server = scenario(_on_server(local, served), tmp_path / "files")
    assert [(name, code) for name, code, _ in on_db] == [(name, code) for name, code, _ in on_server]
    for (name, _, expected), (_, _, got) in zip(on_db, on_server, strict=True):
        assert got == expected, name
    codes = dict((name, code) for name, code, _ in on_db)
    assert codes["plan detailed"] == 2 and codes["plan again"] == 0 and codes["add revoked"] == 64
    assert codes["set-policy unknown"] == 64 and codes["show missing"] == 64
    assert codes["import-nitro other build"] == 64 and codes["import-nitro alternative"] == 0  # VERSION_EXISTS
    # The same audit rows, the server's with the token's principal as the actor.
    local_db, served_db = Database(local.db_url), Database(served.url)
    try:
        rows = [audit.entries(d, limit=1000) for d in (local_db, served_db)]
    finally:
        local_db.dispose()
        served_db.dispose()
    ours = ("ref.", "workload.", "policy.")  # not the served database's token.create rows
    actions = [
        sorted((e.action, str(e.details.get("kind"))) for e in entries if e.action.startswith(ours)) for entries in rows
    ]
    assert actions[0] == actions[1] and len(actions[0]) > 20
    assert {e.actor for e in rows[1] if e.action.startswith(("ref.", "workload."))} == {"token:deployer"}


def test_an_auditor_reads_and_plans_but_changes_nothing(local: Cli, served: Served, tmp_path: Path) -> None:
    auditor = _on_server(local, served, served.auditor)
    manifest = _manifest(tmp_path / "app.yaml", A)
    assert auditor("refs", "list")[0] == 0
    assert auditor("workloads", "list", "--json")[:2] == (0, "[]\n")
    assert auditor("refs", "plan", str(manifest))[0] == 0
    for args in (
        ("refs", "add", "nitro.pcr0", A, "--label", "app"),
        ("refs", "apply", str(manifest)),
        ("workloads", "create", "w", "--tee", "nitro"),
    ):
        code, out, err = auditor(*args)
        assert code == 77 and out == "", args
        said = [line for line in err.splitlines() if line.startswith("verifier")]  # the rest is the server's log
        assert (
            said == [said[0]] and said[0].startswith("verifier: ADMIN_ROLE_INSUFFICIENT: ") and "Traceback" not in err
        )
    assert _on_server(local, served)("refs", "list", "--all", "--json")[1] == "[]\n"
    code, _, err = local("refs", "list", "--server", f"localhost:{served.port}", "--ca-cert", str(served.ca))
    assert code == 64 and "needs a credential" in err  # no token anywhere: refused before connecting
    wrong = tmp_path / "wrong.token"
    wrong.write_text("vat_" + "A" * 43)
    code, _, err = _on_server(local, served, wrong)("refs", "list")
    assert code == 77 and "ADMIN_TOKEN_INVALID" in err


def test_apply_applies_exactly_the_reviewed_plan(local: Cli, served: Served, tmp_path: Path) -> None:
    remote = _on_server(local, served)
    manifest = _manifest(tmp_path / "app.yaml", A)
    code, out, _ = remote("refs", "plan", str(manifest), "--json")
    reviewed = json.loads(out)["plan_sha256"]
    code, text, _ = remote("refs", "plan", str(manifest))
    assert f"plan sha256 {reviewed}" in text
    assert remote("refs", "add", "nitro.pcr0", B, "--label", "app")[0] == 0  # the state moves
    code, out, err = remote("refs", "apply", str(manifest), "--plan-sha256", reviewed)
    assert code == 64 and "PLAN_STALE" in err and out == ""
    assert len(json.loads(remote("refs", "list", "--json")[1])) == 1  # nothing applied
    fresh = json.loads(remote("refs", "plan", str(manifest), "--json")[1])["plan_sha256"]
    code, out, _ = remote("refs", "apply", str(manifest), "--plan-sha256", fresh, "--json")
    assert code == 0 and json.loads(out)["applied"] and json.loads(out)["plan_sha256"] == fresh
    assert remote("refs", "plan", str(manifest), "--detailed-exitcode")[0] == 0
    assert remote("refs", "apply", str(manifest), "--plan-sha256", "nothex")[0] == 64  # argparse
    broken = tmp_path / "broken.yaml"
    broken.write_text("workload: app\ntee: nitro\nversions: 7\n")
    assert remote("refs", "plan", str(broken), "--detailed-exitcode")[0] == 64


def test_plan_impact_runs_on_the_server_like_on_the_database(
    local: Cli, served: Served, tmp_path: Path, vectors_dir: Path, trust_anchors_dir: Path
) -> None:
    vector: dict[str, Any] = next(v for v in manifest_vectors("nitro") if v["id"] == "nitro-prod-2024-blocky")
    document = json.loads(NITRO_JSON.read_text())
    values = document["versions"][0]["values"]
    candidate = tmp_path / "candidate.json"
    candidate.write_text(
        json.dumps({**document, "versions": [{"version": "2024-09-07", "values": {**values, "nitro.pcr0": "ab" * 48}}]})
    )
    evidence = str(vectors_dir / vector["dir"] / "evidence.bin")
    outputs = []
    for run, url, anchors in (
        (_on_db(local), local.db_url, ["--trust-anchors", str(trust_anchors_dir)]),
        (_on_server(local, served), served.url, []),
    ):
        assert run("refs", "apply", str(NITRO_JSON))[0] == 0
        verify = ["verify", "--tee", "nitro", "--evidence", evidence, "--trust-anchors", str(trust_anchors_dir)]
        code, _, err = local(*verify, "--at", vector["verify_at"], "--db", url)  # kept where the server reads
        assert code == 0, err
        code, text, err = run("refs", "plan", str(candidate), "--impact", *anchors)
        assert code == 1, err  # something would flip
        code, report, _ = run("refs", "plan", str(candidate), "--impact", "--json", *anchors)
        assert code == 1
        assert run("refs", "plan", str(candidate), "--impact", "--detailed-exitcode", *anchors)[0] == 2
        outputs.append((masked(text), json.loads(masked(report)), err))
    (db_text, db_report, db_err), (server_text, server_report, server_err) = outputs
    assert server_text == db_text and server_report == db_report
    assert "affirming -> contraindicated" in server_text and server_report["impact"]["changed"] == 1
    assert "impact: kept appraisals re-appraised: 1/1" in db_err
    assert "the server re-appraises up to 1000 kept appraisals" in server_err
    remote = _on_server(local, served)
    code, _, err = remote("refs", "plan", str(candidate), "--impact", "--trust-anchors", str(trust_anchors_dir))
    assert code == 64 and "--trust-anchors and --offline are local" in err


def test_a_bearer_token_is_never_accepted_without_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    cli = Cli(url, capsys)
    assert cli("db", "upgrade", "--db", url)[0] == 0
    db = Database(url)
    try:
        _, token = SqlAdminTokens(db).create("deployer", "admin", now=SystemClock().now(), actor="cli:test")
    finally:
        db.dispose()
    settings = Settings(database_url=url, development=True, listen="127.0.0.1:0", http_listen="off", grace_seconds=0.2)
    with serving(settings) as (port, _):
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            plan = rv_grpc.ReferenceValuesStub(channel).Plan  # type: ignore[no-untyped-call]
            request = rv_pb.ReferenceValuesPlanRequest(manifests=[rv_pb.ManifestFile(name="a.yaml", content=b"{}")])
            with pytest.raises(grpc.RpcError) as refused:
                plan(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert reason_of(refused.value) == "ADMIN_NEEDS_TLS"  # type: ignore[arg-type]
        (tmp_path / "t").write_text(token)
        # The CLI speaks TLS only: against a plaintext port the handshake fails and the token is never sent.
        code, _, err = cli("refs", "list", "--server", f"127.0.0.1:{port}", "--token-file", str(tmp_path / "t"))
        assert code == 3 and "UNAVAILABLE" in err and token not in err


def test_an_admin_client_certificate_or_the_token_variable_works_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server_ca, admin_ca = _ca("server ca"), _ca("admin ca")
    server, alice = _leaf(server_ca, "localhost", server=True), _leaf(admin_ca, "alice")
    for name, data in {
        "ca.pem": server_ca.pem,
        "server.crt": server.pem,
        "server.key": _key_pem(server.key),
        "admin-ca.pem": admin_ca.pem,
        "alice.crt": alice.pem,
        "alice.key": _key_pem(alice.key),
    }.items():
        (tmp_path / name).write_bytes(data)
    url = f"sqlite:///{tmp_path / 'certs.db'}"
    cli = Cli(url, capsys)
    assert cli("db", "upgrade", "--db", url)[0] == 0
    db = Database(url)
    try:
        _, token = SqlAdminTokens(db).create("ci", "admin", now=SystemClock().now(), actor="cli:test")
    finally:
        db.dispose()
    settings = Settings(
        database_url=url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0.2,
        tls_cert=tmp_path / "server.crt",
        tls_key=tmp_path / "server.key",
        admin_client_ca=tmp_path / "admin-ca.pem",
        admin_listen="127.0.0.1:0",
    )
    ca = ["--ca-cert", str(tmp_path / "ca.pem")]
    with serving(settings) as (port, server_):
        mtls = ["--server", f"localhost:{server_.admin_port}", *ca]
        mtls += ["--client-cert", str(tmp_path / "alice.crt"), "--client-key", str(tmp_path / "alice.key")]
        code, out, err = cli("workloads", "create", "w", "--tee", "nitro", "--json", *mtls)
        assert code == 0, err
        assert json.loads(out)["created_by"] == "cert:alice"
        monkeypatch.setenv("VERIFIER_ADMIN_TOKEN", token)
        code, out, err = cli("workloads", "list", "--json", "--server", f"localhost:{port}", *ca)
        assert code == 0 and [w["name"] for w in json.loads(out)] == ["w"], err
