"""Issue 14 item 1: the build context is what the Dockerfile needs, not 250 MB with `.venv` and the signing key.

.dockerignore is evaluated here the way the engine's pattern matcher does it (github.com/moby/patternmatcher:
patterns in order, the last match wins, `!` re-includes, a pattern matching a directory matches what is inside it,
`**` spans directories), over sample paths and over this work tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LIMIT_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Rule:
    pattern: str
    negated: bool
    regex: re.Pattern[str]


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out, i = out + "(.*/)?", i + 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end
        else:
            out += re.escape(char)
        i += 1
    return re.compile(out)


def _rules(text: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append(Rule(pattern, negated, _regex(pattern)))
    return rules


RULES = _rules((ROOT / ".dockerignore").read_text())


def _matches(path: str, parent: list[bool]) -> tuple[bool, list[bool]]:
    """(excluded, per-rule matches to hand to the children): moby's MatchesUsingParentResults."""
    excluded, matched = False, []
    for index, rule in enumerate(RULES):
        match = bool(rule.regex.fullmatch(path)) or (bool(parent) and parent[index])
        if match:
            excluded = not rule.negated
        matched.append(match)
    return excluded, matched


def excluded(path: str) -> bool:
    parts = path.split("/")
    inherited: list[bool] = []
    result = False
    for depth in range(1, len(parts) + 1):
        result, inherited = _matches("/".join(parts[:depth]), inherited)
    return result


def _may_reinclude_below(directory: str) -> bool:
    return any(r.negated and (r.pattern.startswith(directory + "/") or r.pattern[0] in "*?[") for r in RULES)


def context_files() -> Iterator[tuple[str, int]]:
    """(path, size) of every file of this work tree the build context would hold."""
    stack: list[tuple[Path, list[bool]]] = [(ROOT, [])]
    while stack:
        directory, inherited = stack.pop()
        for entry in os.scandir(directory):
            relative = Path(entry.path).relative_to(ROOT).as_posix()
            is_out, matched = _matches(relative, inherited)
            if entry.is_dir(follow_symlinks=False):
                if not is_out or _may_reinclude_below(relative):
                    stack.append((Path(entry.path), matched))
            elif not is_out:
                yield relative, entry.stat(follow_symlinks=False).st_size


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv/lib/python3.11/site-packages/grpc/__init__.py",
        ".git/HEAD",
        "keys/signing.pem",
        "keys/tls.key",
        "keys/admin.token",
        "keys/compose.env",
        "signing.pem",
        "verifier/signing.pem",  # a stray key inside the package never reaches the image either
        "verifier/results/__pycache__/keys.cpython-311.pyc",
        "verifier.db",
        "tests/unit/test_deploy_files.py",
        "tests/node/node_modules/jose/package.json",
        "benchmarks/results/latest.json",
        ".pytest_cache/README.md",
        ".mypy_cache/3.11/verifier.json",
        "tee_verifier.egg-info/PKG-INFO",
        "deploy/kubernetes/base/kustomization.yaml",
        "docker-compose.yml",
    ],
)
def test_excluded(path: str) -> None:
    assert excluded(path), f"{path} would be sent to the daemon"


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "verifier/__init__.py",
        "verifier/results/keys.py",  # keys.py is a module, not a key
        "verifier/migrations/versions/0001_initial_schema.py",
        "measurements/README.md",
        "deploy/image-requirements.lock",
    ],
)
def test_included(path: str) -> None:
    assert not excluded(path), f"{path} is needed by the Dockerfile"


def test_this_work_tree_sends_a_small_context_without_keys_or_the_venv() -> None:
    files = dict(context_files())
    total = sum(files.values())
    assert total < LIMIT_BYTES, f"build context {total / 1e6:.1f} MB"
    for path in files:
        assert not path.startswith((".venv/", ".git/", "keys/", "tests/", "benchmarks/")), path
        assert not path.endswith((".pem", ".key", ".pyc", ".db")), path
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [
        line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ") and "--from" not in line
    ]
    for source in (s for group in sources for s in group):
        assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in files), f"COPY {source}: not sent"
