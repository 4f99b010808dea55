"""Issue 14 item 1: the one key step (deploy/make-keys.sh) and the compose smoke test (deploy/smoke.sh).

No container engine runs here (a docker client, no daemon), so: make-keys.sh runs for real and what it makes is
checked (modes, owners, the admin-token digest, a certificate the project's client and server accept: a real
`verifier serve` with those files appraises a shared vector through deploy/smoke_appraise.py, the smoke test's own
checks); smoke.sh is parsed, skips when `docker info` fails, and, with a stand-in `docker` that records its
arguments, runs its sequence (keys, up, health, checks) and always tears the stack down.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography import x509

from verifier.cli.main import main
from verifier.results.keys import load_key_file

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "deploy" / "smoke.sh"
MAKE_KEYS = ROOT / "deploy" / "make-keys.sh"
BASH = shutil.which("bash") or "/bin/bash"
IS_ROOT = os.geteuid() == 0
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="make-keys.sh needs openssl")

_spec = importlib.util.spec_from_file_location("smoke_appraise", ROOT / "deploy" / "smoke_appraise.py")
assert _spec is not None and _spec.loader is not None
smoke_appraise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smoke_appraise)


def _owner_env() -> dict[str, str]:
    """As root the files go to uid 10001 / 472 as in a deploy; otherwise to this user (chown without sudo)."""
    if IS_ROOT:
        return {}
    uid, gid = str(os.getuid()), str(os.getgid())
    return {"VERIFIER_KEY_UID": uid, "VERIFIER_KEY_GID": gid, "GRAFANA_UID": uid, "GRAFANA_GID": gid}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFIER_", "SMOKE_"))}
    return {**env, **_owner_env(), **extra}


@pytest.mark.parametrize("script", [SMOKE, MAKE_KEYS])
def test_scripts_parse_and_are_executable(script: Path) -> None:
    subprocess.run([BASH, "-n", str(script)], check=True)
    assert script.stat().st_mode & stat.S_IXUSR
    assert script.read_text().startswith("#!/usr/bin/env bash\n")


def _fake_bin(tmp_path: Path, docker: str | None) -> Path:
    """A PATH directory with `dirname` (smoke.sh's first command) and, when given, a `docker` script."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "mktemp", "rm", "basename", "openssl", "chmod", "chown", "mkdir", "cut", "id", "cat"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    if docker is not None:
        (bin_dir / "docker").write_text(f"#!{BASH}\n{docker}\n")
        (bin_dir / "docker").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("docker", [None, "exit 1", "echo 'Cannot connect to the Docker daemon' >&2; exit 1"])
def test_smoke_skips_when_no_container_engine_answers(tmp_path: Path, docker: str | None) -> None:
    result = subprocess.run(
        [BASH, str(SMOKE)],
        env=_env(PATH=str(_fake_bin(tmp_path, docker))),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("skipped: no container engine")


def test_smoke_refuses_without_compose_v2(tmp_path: Path) -> None:
    docker = 'case "$1 $2" in "info "*) exit 0;; "compose version") exit 1;; esac; exit 0'
    result = subprocess.run(
        [BASH, str(SMOKE)], env=_env(PATH=str(_fake_bin(tmp_path, docker))), capture_output=True, text=True
    )
    assert result.returncode == 1 and "Docker Compose v2" in result.stderr


RECORDING_DOCKER = """
echo "$*" >> "$DOCKER_LOG"
case "$1" in
  info) exit 0 ;;
  inspect) echo healthy; exit 0 ;;
esac
for arg in "$@"; do
  case "$arg" in
    ps) [ "${*: -1}" = verifier ] && echo c0ffee; exit 0 ;;
    run) exit "$RUN_STATUS" ;;
  esac
done
exit 0
"""


@needs_openssl
@pytest.mark.parametrize("run_status", [0, 3])
def test_smoke_runs_its_sequence_and_always_tears_down(tmp_path: Path, run_status: int) -> None:
    vectors = tmp_path / "vectors"
    (vectors / "nitro" / "nitro-prod-2024-blocky").mkdir(parents=True)
    (vectors / "nitro" / "nitro-prod-2024-blocky" / "evidence.bin").write_bytes(b"\x84")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = tmp_path / "docker.log"
    env = _env(
        PATH=f"{_fake_bin(tmp_path, RECORDING_DOCKER)}:{os.environ['PATH']}",
        DOCKER_LOG=str(log),
        RUN_STATUS=str(run_status),
        VERIFIER_VECTORS=str(vectors),
        SMOKE_PYTHON="/nonexistent/python",  # the host cannot import the client: the checks run "in the image"
        VERIFIER="openssl",  # make-keys.sh's signing key (the fixture below uses `verifier keys generate`)
        TMPDIR=str(scratch),
    )
    result = subprocess.run([BASH, str(SMOKE)], env=env, capture_output=True, text=True, timeout=120)
    calls = log.read_text().splitlines()
    compose = [c for c in calls if c.startswith("compose ")]
    assert result.returncode == run_status, result.stderr
    assert compose[0] == "compose version"
    assert any(c.endswith("-p tee-verifier-smoke up -d --build") for c in compose)
    [run] = [c for c in compose if " run --rm --no-deps -T " in c]
    assert "/smoke/smoke_appraise.py --target verifier:50051" in run and "--expect-finding CERT_EXPIRED" in run
    assert compose[-1].endswith("-p tee-verifier-smoke down --volumes --remove-orphans")
    assert any(" logs --no-color " in c for c in compose) == (run_status != 0)  # the logs only on a failure
    assert list(scratch.iterdir()) == []  # the throwaway keys are gone
    assert ("smoke: passed" in result.stdout) == (run_status == 0)


def _make_keys(directory: Path, *extra: str, verifier: str = "openssl") -> subprocess.CompletedProcess[str]:
    """make-keys.sh into `directory`; the signing key from openssl (fast) unless `verifier` names the command."""
    return subprocess.run(
        [BASH, str(MAKE_KEYS), *extra, str(directory)],
        env=_env(VERIFIER=verifier),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    if shutil.which("openssl") is None:
        pytest.skip("make-keys.sh needs openssl")
    directory = tmp_path_factory.mktemp("deploy") / "keys"
    made = _make_keys(directory, verifier=str(Path(sys.executable).with_name("verifier")))  # as a user would
    assert made.returncode == 0, made.stderr
    assert "wrote " in made.stderr and "kid " in made.stderr  # `verifier keys generate` made the signing key
    yield directory, made.stdout


def test_make_keys_writes_each_file_with_its_owner_and_mode(keys: tuple[Path, str]) -> None:
    directory, _ = keys
    key_uid = 10001 if IS_ROOT else os.getuid()
    grafana_uid = 472 if IS_ROOT else os.getuid()
    expected = {
        "signing.pem": (0o400, key_uid),
        "tls.key": (0o400, key_uid),
        "tls.crt": (0o444, os.getuid()),
        "admin.token": (0o600, os.getuid()),
        "compose.env": (0o600, os.getuid()),
        "grafana-admin.password": (0o400, grafana_uid),
    }
    found = {p.name: (stat.S_IMODE(p.stat().st_mode), p.stat().st_uid) for p in directory.iterdir()}
    assert found == expected
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    [key] = load_key_file(directory / "signing.pem")  # the verifier's own loader accepts it (0400, P-256)
    assert key.kid


def test_make_keys_prints_the_exports_compose_needs(keys: tuple[Path, str]) -> None:
    directory, stdout = keys
    token = (directory / "admin.token").read_text().strip()
    digest = hashlib.sha256(token.encode()).hexdigest()  # what the admin interceptor compares
    assert stdout.splitlines() == [
        f"export VERIFIER_ADMIN_TOKEN_SHA256={digest}",
        f"export VERIFIER_KEYS_DIR={directory}",
    ]
    assert (directory / "compose.env").read_text().splitlines() == [
        f"VERIFIER_ADMIN_TOKEN_SHA256={digest}",
        f"VERIFIER_KEYS_DIR={directory}",
    ]


def test_make_keys_certificate_names_every_address_clients_use(keys: tuple[Path, str]) -> None:
    directory, _ = keys
    cert = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost", "verifier"}
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


@needs_openssl
def test_make_keys_never_replaces_keys_unless_forced(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    assert _make_keys(directory).returncode == 0
    before = (directory / "admin.token").read_text()
    again = _make_keys(directory)
    assert again.returncode == 1 and "signing.pem exists" in again.stderr and again.stdout == ""
    assert (directory / "admin.token").read_text() == before
    assert _make_keys(directory, "--force").returncode == 0
    assert (directory / "admin.token").read_text() != before


class _Canned(BaseHTTPRequestHandler):
    replies: dict[str, object] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.replies.get(self.path.split("?")[0], {})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_smoke_reads_prometheus_and_grafana_answers() -> None:
    _Canned.replies = {
        "/api/v1/query": {"data": {"result": [{"metric": {"instance": "verifier:9464"}, "value": [0, "1"]}]}},
        "/api/health": {"database": "ok", "version": "11.2.0"},
    }
    server = HTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert "verifier:9464 up" in smoke_appraise.check_prometheus(base, wait=5)
        assert "Grafana 11.2.0 up" == smoke_appraise.check_grafana(base, wait=5)
        _Canned.replies["/api/v1/query"] = {"data": {"result": [{"metric": {}, "value": [0, "0"]}]}}
        with pytest.raises(smoke_appraise.SmokeError, match="not within"):
            smoke_appraise.check_prometheus(base, wait=0)
    finally:
        server.shutdown()


def test_a_server_with_those_keys_appraises_a_vector_through_the_smoke_checks(
    keys: tuple[Path, str], tmp_path: Path, vectors_dir: Path
) -> None:
    """What smoke.sh checks, against `verifier serve` (SQLite) with make-keys.sh's key and TLS files."""
    directory, _ = keys
    exe = Path(sys.executable).with_name("verifier")
    db = f"sqlite:///{tmp_path / 'v.db'}"
    env = _env(PYTHONPATH=str(ROOT))
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["db", "upgrade", "--db", db]) == 0
    ports = tmp_path / "ports.json"
    serve = [
        *(str(exe), "serve", "--db", db, "--signing-key", str(directory / "signing.pem")),
        *("--tls-cert", str(directory / "tls.crt"), "--tls-key", str(directory / "tls.key")),
        *("--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--port-file", str(ports)),
    ]
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(serve, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (ports.exists() and ports.read_text().strip()):
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the server did not start in 30 s"
            time.sleep(0.1)
        grpc_port = json.loads(ports.read_text())["grpc"]
        with socket.create_connection(("127.0.0.1", grpc_port), timeout=5):
            pass
        evidence = vectors_dir / "nitro" / "nitro-prod-2024-blocky" / "evidence.bin"
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = smoke_appraise.main(
                [
                    *("--target", f"localhost:{grpc_port}", "--ca", str(directory / "tls.crt")),
                    *("--evidence", str(evidence), "--expect-status", "contraindicated"),
                    *("--expect-finding", "CERT_EXPIRED"),
                ]
            )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert code == 0, err.getvalue()
    assert out.getvalue().startswith("ok: appraised ") and "contraindicated, findings CERT_EXPIRED" in out.getvalue()
    assert "token verified against the server's JWKS" in out.getvalue()
