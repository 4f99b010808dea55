"""verifier.client imports without the server's dependencies (issue 12): only grpcio (+ grpcio-status),
protobuf and cryptography, the `client` extra in pyproject.toml.

In a subprocess a meta path finder refuses every server-only distribution (ImportError, as if not installed); the
client package, every one of its modules and its public names must still import. The installed-wheel version of
this check (a venv with only the `client` extra) is in test_wheel_migrations.py, behind VERIFIER_TEST_WHEEL=1.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVER_ONLY = ("sqlalchemy", "alembic", "prometheus_client", "joserfc", "yaml", "psycopg", "OpenSSL", "cbor2")
CLIENT_MODULES = sorted(f"verifier.client.{p.stem}" for p in (ROOT / "verifier" / "client").glob("*.py"))

_BLOCKER = """
import importlib.abc, sys

BLOCKED = {blocked!r}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {{name}}")
        return None


for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        raise SystemExit(f"already imported at start-up: {{name}}")
sys.meta_path.insert(0, Block())
"""


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCKER.format(blocked=SERVER_ONLY) + body
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_client_imports_with_server_dependencies_blocked() -> None:
    done = _run(
        "import importlib\n"
        f"for name in {CLIENT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from verifier.client import AsyncVerifierClient, JwksCache, ResultError, VerifierClient, verify_result\n"
        "leaked = sorted(m for m in sys.modules if m.startswith('verifier.') and not m.startswith("
        "('verifier.client', 'verifier.errors', 'verifier.v1')))\n"
        "print('leaked', leaked)\n"
        "assert leaked == [], leaked\n"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leaked []" in done.stdout


def test_the_blocker_blocks() -> None:
    """The finder is in force: a server module that needs SQLAlchemy fails to import under it."""
    done = _run("import verifier.storage.engine\n")
    assert done.returncode != 0 and "blocked for this test: sqlalchemy" in done.stderr


def test_the_client_extra_names_what_the_client_imports() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["client"]
    names = {requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower() for requirement in extra}
    assert names == {"grpcio", "grpcio-status", "protobuf", "cryptography"}
