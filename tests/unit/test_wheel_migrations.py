"""The wheel is self-sufficient (issue 12): built from this tree and installed into a fresh venv, it runs
`verifier db upgrade` from another directory (the alembic migrations travel inside it as package data,
verifier/migrations/); and with only the `client` extra's packages (no server dependencies) `verifier.client`
imports.

Slow (it builds a wheel and installs it, with its dependencies, from the configured package index twice), so it
runs only with VERIFIER_TEST_WHEEL=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from verifier.storage import migrate

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("VERIFIER_TEST_WHEEL"), reason="set VERIFIER_TEST_WHEEL=1 (slow)"),
]


def _run(args: list[str | Path], cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of what the Dockerfile's build stage copies (pyproject.toml, README.md, verifier/), so the
    build leaves nothing in the tree and needs nothing else."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "verifier", source / "verifier", ignore=shutil.ignore_patterns("__pycache__"))
    _run([sys.executable, "-m", "pip", "wheel", source, "--no-deps", "--wheel-dir", out], cwd=out)
    (built,) = out.glob("tee_verifier-*.whl")
    return built


def _venv(where: Path) -> Path:
    _run([sys.executable, "-m", "venv", where], cwd=where.parent)
    return where / "bin"


def test_installed_wheel_runs_db_upgrade_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    bin_dir = _venv(tmp_path / "venv")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([bin_dir / "python", "-c", "import verifier; print(verifier.__file__)"], cwd=elsewhere).strip()
    assert ROOT not in Path(where).parents and (tmp_path / "venv") in Path(where).parents
    url = f"sqlite:///{tmp_path / 'wheel.db'}"
    _run([bin_dir / "verifier", "db", "upgrade", "--db", url], cwd=elsewhere)
    assert _run([bin_dir / "verifier", "db", "current", "--db", url], cwd=elsewhere).strip() == migrate.head()


def test_client_imports_with_only_the_client_extra(wheel: Path, tmp_path: Path) -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["client"]
    bin_dir = _venv(tmp_path / "venv")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", wheel], cwd=tmp_path)
    _run([bin_dir / "python", "-m", "pip", "install", "-q", *extra], cwd=tmp_path)
    code = (
        "import importlib.util, verifier.client\n"
        "from verifier.client import JwksCache, VerifierClient, AsyncVerifierClient, verify_result\n"
        "absent = [m for m in ('sqlalchemy', 'alembic', 'prometheus_client', 'joserfc', 'yaml', 'psycopg')"
        " if importlib.util.find_spec(m) is not None]\n"
        "assert absent == [], absent\n"
        "print('ok')\n"
    )
    assert _run([bin_dir / "python", "-c", code], cwd=tmp_path).strip() == "ok"
