"""Issue 14 item 9 (CLI habits) on the real Nitro vectors: `verify --evidence -` and its temporary database, the
summary with the token only on request, a closed output pipe, the failure-class exit codes, `result verify|show`
against a JWKS file and a loopback JWKS URL, and progress on `db prune`."""

from __future__ import annotations

import http.server
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.test_audit_cli import record
from verifier.cli import db as db_cmd
from verifier.cli import main
from verifier.cli import result as result_cmd
from verifier.requests import MAX_EVIDENCE_BYTES
from verifier.storage.engine import Database

EXE = Path(sys.executable).with_name("verifier")
BLOCKY = "nitro/nitro-prod-2024-blocky"
AT = "2024-09-07T14:37:39Z"
NONCE = "01" * 1024  # the blocky document's nonce
APPROVED = ROOT / "measurements" / "nitro" / "example-blocky-2024.json"


class Run:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args])
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.delenv("VERIFIER_DATABASE_URL", raising=False)
    return Run(capsys)


@pytest.fixture
def blocky(vectors_dir: Path, trust_anchors_dir: Path) -> list[str]:
    return [
        "verify",
        "--evidence",
        str(vectors_dir / BLOCKY / "evidence.bin"),
        "--trust-anchors",
        str(trust_anchors_dir),
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {**env, "TMPDIR": str(tmp_path / "tmp")}


def test_stdin_evidence_and_no_database_left_behind(tmp_path: Path, vectors_dir: Path, trust_anchors_dir: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    evidence = (vectors_dir / BLOCKY / "evidence.bin").read_bytes()
    args = ["verify", "--evidence", "-", "--trust-anchors", str(trust_anchors_dir), "--at", AT, "--json"]
    proc = subprocess.run(
        [str(EXE), *args, "--reference-values", str(APPROVED)], input=evidence, cwd=work, env=_env(tmp_path),
        capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "affirming" and result["workload"]["name"] == "example-blocky-nitro-json"
    assert list(work.iterdir()) == [] and list((tmp_path / "tmp").iterdir()) == []  # no verifier.db, no temp left


def test_stdin_is_bounded_by_the_service_limit(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"\0" * (MAX_EVIDENCE_BYTES + 1))))
    code, _, err = cli("verify", "--evidence", "-")
    assert code == 64 and f"over the {MAX_EVIDENCE_BYTES}-byte limit" in err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert cli("verify", "--evidence", "-")[0] == 64


def test_summary_without_the_token_unless_asked(cli: Run, blocky: list[str]) -> None:
    code, out, err = cli(*blocky, "--at", AT)
    assert code == 2 and "eyJ" not in out and "ephemeral" not in err
    lines = out.splitlines()
    assert lines[0].split() == ["status", "contraindicated", "(measurement)"]
    header = next(line for line in lines if line.startswith("TIER"))
    rows = [line for line in lines if line.startswith("contraindicated  REFERENCE_VALUE_MISSING")]
    assert len(rows) == 3 and all(row.index("e72a46ca") == header.index("ACTUAL") for row in rows[:1])
    code, out, err = cli(*blocky, "--at", AT, "--show-token", "--reference-values", str(APPROVED))
    assert code == 0 and out.splitlines()[0].split() == ["status", "affirming"]
    assert out.splitlines()[-1].count(".") == 2 and out.splitlines()[-1].startswith("eyJ") and "ephemeral" in err
    code, out, _ = cli(*blocky, "--at", AT, "--json")
    assert (
        code == 2 and json.loads(out)["token"].startswith("eyJ") and json.loads(out)["failure_class"] == "measurement"
    )


def test_reference_values_only_seed_the_temporary_database(cli: Run, blocky: list[str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    code, _, err = cli(*blocky, "--db", url, "--reference-values", str(APPROVED))
    assert code == 64 and "refs import" in err


def test_detailed_exit_codes_separate_the_classes(
    cli: Run, blocky: list[str], vectors_dir: Path, trust_anchors_dir: Path, tmp_path: Path
) -> None:
    assert cli(*blocky, "--at", AT, "--detailed-exitcode")[0] == 6  # unapproved measurement
    late = "2024-09-07T17:40:00Z"  # the leaf certificate has expired: the evidence itself
    assert cli(*blocky, "--at", late, "--reference-values", str(APPROVED), "--detailed-exitcode")[0] == 2
    assert cli(*blocky, "--at", late, "--reference-values", str(APPROVED))[0] == 2
    garbage = tmp_path / "e.bin"
    garbage.write_bytes(b"\xd2\x84\x40")
    assert cli("verify", "--tee", "nitro", "--evidence", str(garbage), "--detailed-exitcode")[0] == 2
    zeros = tmp_path / "debug.json"
    values = {f"nitro.pcr{i}": "00" * 48 for i in range(3)}
    zeros.write_text(json.dumps({"workload": "dbg", "tee": "nitro", "versions": [{"version": "1", "values": values}]}))
    debug = ["verify", "--evidence", str(vectors_dir / "nitro/nitro-debug-2024-blocky/evidence.bin")]
    args = [*debug, "--trust-anchors", str(trust_anchors_dir), "--at", "2024-09-07T14:38:06Z", "--reference-values"]
    code, out, _ = cli(*args, str(zeros), "--detailed-exitcode", "--json")
    assert code == 5 and [f["code"] for f in json.loads(out)["findings"]] == ["NITRO_DEBUG_MODE"]  # policy


def _closed_pipe_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """`args` with stdout a pipe whose reader has gone away (what `| head -1` leaves once head exits)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([str(EXE), *args], stdout=write, stderr=subprocess.PIPE, env=env, check=False)
    finally:
        os.close(write)


def test_a_closed_pipe_ends_quietly(tmp_path: Path, cli: Run, blocky: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    assert cli("db", "upgrade", "--db", url)[0] == 0
    assert cli("refs", "import", str(APPROVED), "--db", url)[0] == 0
    env = _env(tmp_path)
    for args, code in (
        (["refs", "list", "--db", url], 141),
        ([*blocky, "--at", AT, "--show-token"], 141),
        (["--help"], 0),  # argparse itself ignores a failed write of its help and exits 0
    ):
        proc = _closed_pipe_run(args, env)
        assert proc.returncode == code, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr and b"internal error" not in proc.stderr, proc.stderr
        assert b"Exception ignored" not in proc.stderr and b"BrokenPipe" not in proc.stderr


@pytest.fixture
def signed(cli: Run, blocky: list[str], tmp_path: Path) -> dict[str, Any]:
    key = tmp_path / "signing.pem"
    assert cli("keys", "generate", "--out", str(key))[0] == 0
    _, jwks, _ = cli("keys", "show", "--signing-key", str(key))
    (tmp_path / "jwks.json").write_text(jwks)
    tokens = {}
    for name, extra in (("affirming", ["--reference-values", str(APPROVED)]), ("contraindicated", [])):
        _, out, _ = cli(*blocky, "--at", AT, "--signing-key", str(key), "--nonce", NONCE, "--json", *extra)
        tokens[name] = json.loads(out)["token"]
    return {"jwks": json.loads(jwks), "file": str(tmp_path / "jwks.json"), **tokens}


@pytest.fixture
def jwks_url(signed: dict[str, Any]) -> Iterator[str]:
    body = json.dumps(signed["jwks"]).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def test_result_verify_against_a_file_and_a_url(cli: Run, signed: dict[str, Any], jwks_url: str) -> None:
    at = ["--at", "2024-09-07T14:38:00Z"]
    code, out, _ = cli("result", "verify", signed["affirming"], "--jwks", signed["file"], *at, "--nonce", NONCE)
    fields = dict(line.split(None, 1) for line in out.splitlines() if line and not line.startswith("trust"))
    assert code == 0 and fields["status"] == "affirming" and fields["signature"].startswith("verified (ES256, kid ")
    assert fields["workload"] == "example-blocky-nitro-json 2024-09-07 (policy default)"
    code, out, _ = cli("result", "verify", signed["contraindicated"], "--jwks", jwks_url, *at, "--json")
    shown = json.loads(out)
    assert code == 2 and shown["verified"] and shown["status"] == "contraindicated" and shown["tee"] == "nitro"
    submod = shown["claims"]["submods"]["nitro"]
    assert shown["failure_class"] == "measurement" and result_cmd.ear_claim(submod, "ear_status") == shown["status"]
    args = ["result", "verify", signed["contraindicated"], "--jwks", jwks_url, *at, "--detailed-exitcode"]
    assert cli(*args)[0] == 6


def test_result_verify_refuses_what_does_not_verify(
    cli: Run, signed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    token, jwks, at = signed["affirming"], signed["file"], ["--at", "2024-09-07T14:38:00Z"]
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    for args, code_text in (
        ([forged, *at], "TOKEN_SIGNATURE_INVALID"),
        ([token], "TOKEN_EXPIRED"),  # now, years after exp
        ([token, *at, "--issuer", "https://other.example"], "TOKEN_ISSUER_MISMATCH"),
        ([token, *at, "--nonce", "cd" * 1024], "TOKEN_NONCE_MISMATCH"),
        ([token, *at, "--nonce", "cd" * 16], "TOKEN_NONCE_MISSING"),  # a 1 KiB nonce has no eat_nonce, its SHA-256,
    ):
        code, out, err = cli("result", "verify", *args, "--jwks", jwks)
        assert code == 2 and code_text in err and out == "", err
    code, out, _ = cli("result", "verify", forged, "--jwks", jwks, *at, "--json")
    assert code == 2 and json.loads(out) == {
        "verified": False,
        "error": {"code": "TOKEN_SIGNATURE_INVALID", "message": "the token's signature does not verify", "expected": "",
                  "actual": ""},
    }  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(token.encode() + b"\n")))
    assert cli("result", "verify", "-", "--jwks", jwks, "--at", "2024-09-07T14:42:30Z", "--clock-skew", "0")[0] == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(token.encode())))
    assert cli("result", "verify", "-", "--jwks", jwks, "--at", "2024-09-07T14:42:50Z", "--clock-skew", "0")[0] == 2
    assert cli("result", "verify", token, "--jwks", "http://example.com/jwks.json")[0] == 64  # https only off loopback
    assert cli("result", "verify", token, "--jwks", "http://127.0.0.1:9/jwks.json")[0] == 3  # nothing listens
    assert cli("result", "verify", token, "--jwks", "/nonexistent/jwks.json")[0] == 64


def test_result_show_labels_an_unverified_token(
    cli: Run, signed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(signed["contraindicated"].encode())))
    code, out, err = cli("result", "show", "-")
    assert code == 0 and out.startswith("UNVERIFIED") and "UNVERIFIED" in err
    assert "REFERENCE_VALUE_MISSING" in out and '"eat_profile"' in out


def test_db_prune_shows_progress_over_many_rows(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    assert cli("db", "upgrade", "--db", url)[0] == 0
    database = Database(url)
    try:
        record(database, 7)
    finally:
        database.dispose()
    monkeypatch.setattr(db_cmd, "PRUNE_BATCH", 2)
    monkeypatch.setattr(db_cmd, "PROGRESS_MIN_ROWS", 5)
    code, out, err = cli("db", "prune", "--db", url, "--appraisals-older-than", "30")
    assert code == 0 and out.rstrip().endswith("appraisals 7")
    assert err.splitlines()[-1] == "appraisals: 7/7" and len(err.splitlines()) >= 3
    code, out, err = cli("db", "prune", "--db", url, "--appraisals-older-than", "30")
    assert code == 0 and out.rstrip().endswith("appraisals 0") and "appraisals:" not in err
