"""Shared fixtures: the real vectors (../shared/vectors via VERIFIER_VECTORS) and the test databases."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.dbfixtures"]

ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_VECTORS = ROOT.parent / "shared" / "vectors"


def _vectors_dir() -> Path | None:
    configured = os.environ.get("VERIFIER_VECTORS")
    if configured:
        path = Path(configured)
        if not (path / "MANIFEST.json").is_file():
            raise RuntimeError(f"VERIFIER_VECTORS={configured} has no MANIFEST.json: the vectors must be there")
        return path.resolve()
    if (_DEFAULT_VECTORS / "MANIFEST.json").is_file():
        return _DEFAULT_VECTORS
    return None


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    path = _vectors_dir()
    if path is None:
        pytest.skip("real vectors not found: set VERIFIER_VECTORS to the shared vectors folder (../shared/vectors)")
    return path


@pytest.fixture(scope="session")
def trust_anchors_dir(vectors_dir: Path) -> Path:
    path = vectors_dir.parent / "trust-anchors"
    if not path.is_dir():
        raise RuntimeError(f"trust anchors expected beside the vectors at {path}")
    return path


def manifest_vectors(tee: str) -> list[dict[str, Any]]:
    """Vectors of one TEE for parametrization (empty when the folder is missing and VERIFIER_VECTORS is unset)."""
    path = _vectors_dir()
    if path is None:
        return []
    data = json.loads((path / "MANIFEST.json").read_text())
    return [v for v in data["vectors"] if v["tee"] == tee]


def vector_ids(tee: str) -> list[str]:
    return [v["id"] for v in manifest_vectors(tee)]
