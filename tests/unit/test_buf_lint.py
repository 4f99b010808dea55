"""buf (issue 14 item 5): `buf lint` is clean on proto/ (proto/buf.yaml: the STANDARD rules, the naming rules the
published API predates excepted per file) and `buf breaking` finds no change against main that would break a
client, on the wire, in JSON or in generated code (FILE, the strictest category).

buf comes from npm (tests/node/package.json, installed by `npm ci` in tests/node, as CI does); without it these
tests skip, saying so, or fail with VERIFIER_REQUIRE_NODE=1. No network: buf reads the local repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"
BUF = ROOT / "tests" / "node" / "node_modules" / ".bin" / "buf"
# Options the language packages need, added together with buf.yaml: a baseline from before then has none of them,
# and adding them is no break for any existing client (there was no Go or Java package to break).
ADDED_WITH_BUF = ["FILE_SAME_GO_PACKAGE", "FILE_SAME_JAVA_PACKAGE", "FILE_SAME_JAVA_MULTIPLE_FILES"]


@pytest.fixture(autouse=True)
def _buf_installed() -> None:
    """Skip without buf, or fail with VERIFIER_REQUIRE_NODE=1 (as CI sets, having installed it)."""
    if BUF.exists() and shutil.which("node") is not None:
        return
    message = "buf is not installed: `(cd tests/node && npm ci --no-audit --no-fund)` installs it (CI does)"
    if os.environ.get("VERIFIER_REQUIRE_NODE") == "1":
        pytest.fail(f"VERIFIER_REQUIRE_NODE=1 but {message}", pytrace=False)
    pytest.skip(message)


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_buf_lint_is_clean() -> None:
    result = buf("lint", "proto")
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_still_finds_what_it_should(tmp_path: Path) -> None:
    """Not vacuous: a new service in a new file is held to every rule."""
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy)
    (copy / "verifier" / "v1" / "extra.proto").write_text(
        'syntax = "proto3";\npackage verifier.v1;\n'
        'option go_package = "github.com/tee-verifier/tee-verifier/gen/go/verifier/v1;verifierv1";\n'
        'option java_multiple_files = true;\noption java_package = "dev.teeverifier.verifier.v1";\n'
        "service Extra { rpc Do(DoIt) returns (DoIt); }\nmessage DoIt { string BadName = 1; }\n"
    )
    result = buf("lint", str(copy))
    assert result.returncode != 0
    for words in ('should be suffixed with "Service"', "should be lower_snake_case", 'should be named "DoRequest"'):
        assert words in result.stdout, result.stdout


def _has_main() -> bool:
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "main"], cwd=ROOT, capture_output=True)
    return found.returncode == 0


def test_no_breaking_change_against_main() -> None:
    if not (ROOT / ".git").exists() or not _has_main():
        pytest.skip("no local branch main to compare with (a shallow or detached checkout)")
    args = ["breaking", ".", "--against", "../.git#branch=main,subdir=proto"]
    baseline_has_buf = (
        subprocess.run(["git", "cat-file", "-e", "main:proto/buf.yaml"], cwd=ROOT, capture_output=True).returncode == 0
    )
    if not baseline_has_buf:  # main predates buf.yaml and the package options it brought
        config = {"version": "v2", "breaking": {"use": ["FILE"], "except": ADDED_WITH_BUF}}
        args += ["--config", json.dumps(config)]
    result = buf(*args, cwd=PROTO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_breaking_still_finds_a_break(tmp_path: Path) -> None:
    """Not vacuous: a renamed field (a JSON break) and a removed RPC are found against the working tree."""
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy)
    verifier = copy / "verifier" / "v1" / "verifier.proto"
    text = verifier.read_text()
    text = text.replace("string claims_json = 10;", "string claims_text = 10;")
    text = text.replace("  rpc GetSigningKeys(GetSigningKeysRequest) returns (GetSigningKeysResponse);\n", "")
    verifier.write_text(text)
    result = buf("breaking", str(copy), "--against", str(PROTO))
    assert result.returncode != 0
    assert '"claims_json"' in result.stdout and "GetSigningKeys" in result.stdout, result.stdout
