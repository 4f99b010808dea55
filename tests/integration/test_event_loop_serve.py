"""`verifier serve --event-loop` (verifier/event_loop.py) as a real process: uvloop by default, asyncio on
request, and a refusal at start, with its code, when uvloop is asked for and missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from verifier.storage.migrate import upgrade
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

EXE = Path(sys.executable).with_name("verifier")
ROOT = Path(__file__).resolve().parents[2]
BOUND = 30.0


def _environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """The test's environment without its VERIFIER_* settings, on a migrated SQLite file of its own."""
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERIFIER_")}
    return {**env, "PYTHONPATH": str(ROOT), "VERIFIER_DATABASE_URL": url, **variables}


def _command(port_file: Path, *extra: str) -> list[str]:
    listen = ["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--port-file", str(port_file)]
    return [str(EXE), "serve", "--dev", "--offline", "--drain-seconds", "0", *listen, *extra]


def _serve_once(tmp_path: Path, *extra: str, **variables: str) -> str:
    """Start the server, answer one GetSigningKeys over gRPC, stop it with SIGTERM; its log."""
    port_file, log = tmp_path / "ports.json", tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _command(port_file, *extra), stdout=sink, stderr=subprocess.STDOUT, env=_environment(tmp_path, **variables)
        )
    try:
        deadline = time.monotonic() + BOUND
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.05)
        port = json.loads(port_file.read_text())["grpc"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            keys = pb_grpc.VerifierStub(channel).GetSigningKeys(pb.GetSigningKeysRequest(), timeout=BOUND)
        assert json.loads(keys.jwks_json)["keys"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=BOUND) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return log.read_text()


def test_the_server_runs_on_uvloop_by_default(tmp_path: Path) -> None:
    log = _serve_once(tmp_path)
    assert "event loop: uvloop" in log, log[-2000:]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_asyncio_when_asked_for(tmp_path: Path, how: str) -> None:
    log = (
        _serve_once(tmp_path, "--event-loop", "asyncio")
        if how == "flag"
        else _serve_once(tmp_path, VERIFIER_EVENT_LOOP="ASYNCIO")
    )
    assert "event loop: asyncio" in log and "event loop: uvloop" not in log, log[-2000:]


def test_uvloop_asked_for_and_missing_is_refused_at_start(tmp_path: Path) -> None:
    """A `uvloop` module that fails to import stands for a platform without it: `auto` would fall back, an explicit
    `uvloop` refuses to start (exit 64, the code, no traceback)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    env = _environment(tmp_path)
    env["PYTHONPATH"] = f"{shadow}{os.pathsep}{ROOT}"
    result = subprocess.run(
        _command(tmp_path / "ports.json", "--event-loop", "uvloop"), capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 64, result.stderr[-2000:]
    assert "verifier: EVENT_LOOP_UNAVAILABLE:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ports.json").exists()
    fallback = _serve_once(tmp_path, PYTHONPATH=f"{shadow}{os.pathsep}{ROOT}")
    assert "event loop: asyncio" in fallback, fallback[-2000:]
