"""Mutation testing of the security-critical modules (issue 16): run by hand, not in CI.

    .venv/bin/python scripts/mutation.py            # the whole scope (SCOPE below), 2 workers
    .venv/bin/python scripts/mutation.py --quick    # only scoped files changed vs origin/main (or HEAD~1)
    .venv/bin/python scripts/mutation.py --module verifier/trust --max 40 --list
    .venv/bin/python scripts/mutation.py --retry benchmarks/results/mutation-<date>.json  # survivors, after new tests
    .venv/bin/python scripts/mutation.py --worktree --module F --id ID --also T --only-also --out /tmp/k.json
        # does the new test T kill the one mutant ID of file F (ids as --list prints them)?

Each mutant changes one site (operators in ``OPERATORS``) of one file of a private copy of the repository and runs
only the tests that executed that line in a clean run (a line -> tests map built once with coverage.py under
per-test contexts, cached by git HEAD and the diff of the working tree). A failing, crashing or timed-out run kills
the mutant; a passing one lets it survive; a mutant no test executes is "not covered" and counts as survived.
Mutants listed in ``scripts/mutation_equivalent.txt`` cannot change an outcome: they are reported apart and left
out of the kill rate. Tests run on SQLite only (VERIFIER_TEST_DATABASE_URL is removed from their environment).
The results go to benchmarks/results/mutation-<date>.json.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import json
import os
import py_compile
import queue
import random
import select as io_select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FORK = True  # run pytest through a fork server per worker (--no-fork: a fresh interpreter per mutant)
ROOT = REPO  # the tree that is mutated and tested: a snapshot of HEAD (main() sets it), or the work tree itself
AT = os.environ.get("VERIFIER_MUTATION_AT", "HEAD")  # the commit snapshotted (--at; the map subprocess inherits it)

# --- configuration ----------------------------------------------------------------------------------------------
# (glob relative to the repository, top-level names to keep or None for the whole file)
SCOPE: list[tuple[str, frozenset[str] | None]] = [
    ("verifier/trust/*.py", None),
    ("verifier/tee/nitro/*.py", None),
    ("verifier/tee/sevsnp/*.py", None),
    ("verifier/tee/tdx/*.py", None),
    ("verifier/appraisal/*.py", None),  # includes binding.py and the scheme registry (scheme.py, registry.py)
    ("verifier/storage/challenges.py", None),
    (
        "verifier/transport/grpc/admin_auth.py",
        frozenset(
            {
                "AdminAuthInterceptor",
                "peer_certificate",
                "_is_tls",
                "_unverified_subject",
                "_RefusalBudget",
            }
        ),
    ),
    ("verifier/client/results.py", None),
    ("verifier/client/jws.py", None),
    ("verifier/client/claim_checks.py", None),
    ("verifier/broker/release.py", None),
    ("verifier/collateral/ordering.py", None),
    ("verifier/collateral/pcs_items.py", None),
    ("verifier/collateral/signed_json.py", None),
    ("verifier/collateral/kds_keys.py", None),
    ("verifier/collateral/cache.py", frozenset({"CachedSource._is_rejected", "CachedSource._due"})),
    ("verifier/collateral/cache_rules.py", frozenset({"valid", "older", "newest", "due"})),
]
EXCLUDE: list[str] = ["*/__init__.py"]
EQUIVALENT_FILE = REPO / "scripts" / "mutation_equivalent.txt"
RESULTS_DIR = REPO / "benchmarks" / "results"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "verifier-mutation"
VECTORS = os.environ.get("VERIFIER_VECTORS", "/work/shared/vectors")
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    "*.db",
    "*.db-*",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    "results",
)
OPERATORS = ("negate-cond", "raise-pass", "flip-compare", "swap-boolop", "flip-return", "drop-call", "flip-kwarg")
_LOGGERS = {"log", "logger", "_log", "_logger", "LOG", "LOGGER", "logging"}
_FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
}


# --- mutants ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change at one site: ``(path, ident)`` is stable while the enclosing function keeps its shape."""

    path: str  # relative to the repository
    line: int  # first line of the changed node
    stmt_line: int  # first line of the enclosing statement (what coverage records)
    operator: str
    func: str  # qualified name of the enclosing function/class, "<module>" at top level
    index: int  # n-th site of this operator in ``func``
    original: str  # the source line(s) of the changed node's first line
    mutated: str  # the same line(s) after the change
    source: str = dataclasses.field(repr=False, compare=False)  # the whole mutated file
    stmt_last: int = 0  # last line of the statement's header (a condition over several lines: coverage may record any)

    @property
    def ident(self) -> str:
        return f"{self.func}:{self.operator}:{self.index}"

    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclasses.dataclass(frozen=True)
class _Site:
    node: ast.AST
    stmt: ast.stmt
    operator: str
    func: str
    replacement: str


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_logging_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        base = func.value
        if isinstance(base, ast.Attribute):  # self._log.info(...)
            return base.attr in _LOGGERS
        return isinstance(base, ast.Name) and base.id in _LOGGERS
    return False


def _assert_only(body: list[ast.stmt]) -> bool:
    rest = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return bool(rest) and all(isinstance(s, ast.Assert) for s in rest)


class _Collector(ast.NodeVisitor):
    """Walks one module and records the mutation sites, in source order."""

    def __init__(self, source: str, keep: frozenset[str] | None) -> None:
        self.source = source
        self.keep = keep
        self.scope: list[str] = []
        self.stmt: ast.stmt | None = None
        self.sites: list[_Site] = []

    # scoping
    def _wanted(self) -> bool:
        if self.keep is None:
            return True
        if not self.scope:
            return False
        return any(".".join(self.scope[: n + 1]) in self.keep for n in range(len(self.scope)))

    def _add(self, node: ast.AST, operator: str, replacement: str) -> None:
        if self._wanted() and self.stmt is not None:
            self.sites.append(_Site(node, self.stmt, operator, ".".join(self.scope) or "<module>", replacement))

    def _segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node)
        assert text is not None
        return text

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.stmt):
            outer, self.stmt = self.stmt, node
            try:
                return super().visit(node)
            finally:
                self.stmt = outer
        return super().visit(node)

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name in ("__repr__", "__str__"):
            return
        if not isinstance(node, ast.ClassDef) and _assert_only(node.body):
            return
        self.scope.append(node.name)
        try:
            for stmt in node.body:
                self.visit(stmt)
        finally:
            self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    # skipped
    def visit_Assert(self, node: ast.Assert) -> None:
        return None

    # operators
    def _negate(self, node: ast.If | ast.While) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            return
        self._add(node.test, "negate-cond", f"not ({self._segment(node.test)})")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self._negate(node)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        self._add(node, "raise-pass", "pass")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for n, op in enumerate(node.ops):
            flipped = _FLIP.get(type(op))
            if flipped is None:
                continue
            ops = list(node.ops)
            ops[n] = flipped()
            new = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            self._add(node, "flip-compare", f"({ast.unparse(new)})")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add(node, "swap-boolop", f"({ast.unparse(ast.BoolOp(op=other, values=node.values))})")
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, bool):
            self._add(node.value, "flip-return", str(not node.value.value))
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        value = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(value, ast.Call):
            if _is_logging_call(value):
                return
            self._add(node, "drop-call", "pass")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_logging_call(node):
            return
        for keyword in node.keywords:
            if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, bool):
                self._add(keyword.value, "flip-kwarg", str(not keyword.value.value))
        self.generic_visit(node)


def _char_col(line: str, byte_col: int) -> int:
    return len(line.encode()[:byte_col].decode())


def _replace(source: str, node: ast.AST, text: str) -> tuple[str, int, int]:
    """``source`` with ``node``'s segment replaced by ``text``; also the first and last line of the new text."""
    lines = source.splitlines(keepends=True)
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined]
    start = _char_col(lines[first], node.col_offset)  # type: ignore[attr-defined]
    end = _char_col(lines[last], node.end_col_offset)  # type: ignore[attr-defined]
    new = lines[first][:start] + text + lines[last][end:]
    out = "".join(lines[:first]) + new + "".join(lines[last + 1 :])
    return out, first + 1, first + new.count("\n") + (0 if new.endswith("\n") else 1)


def _header_end(stmt: ast.stmt) -> int:
    """The last line of `stmt` itself: a simple statement's last line, or a compound statement's lines before its
    body (its test, iterator, items or signature)."""
    body = getattr(stmt, "body", None)
    if isinstance(body, list) and body and isinstance(body[0], ast.AST):
        first = min([body[0].lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        return max(stmt.lineno, first - 1)
    return stmt.end_lineno or stmt.lineno


def mutants_of(path: str, source: str, keep: frozenset[str] | None = None) -> list[Mutant]:
    """The mutants of one module's source (sites whose mutated file does not compile are dropped).

    Raises SyntaxError when ``source`` itself does not parse.
    """
    collector = _Collector(source, keep)
    collector.visit(ast.parse(source))
    counters: dict[tuple[str, str], int] = defaultdict(int)
    src_lines = source.splitlines()
    out: list[Mutant] = []
    for site in collector.sites:
        index = counters[(site.func, site.operator)]
        counters[(site.func, site.operator)] += 1
        mutated, first, last = _replace(source, site.node, site.replacement)
        try:
            compile(mutated, path, "exec")
        except SyntaxError:
            continue
        node_first, node_last = site.node.lineno, site.node.end_lineno  # type: ignore[attr-defined]
        new_lines = mutated.splitlines()
        out.append(
            Mutant(
                path=path,
                line=node_first,
                stmt_line=site.stmt.lineno,
                operator=site.operator,
                func=site.func,
                index=index,
                original="\n".join(src_lines[node_first - 1 : node_last]),
                mutated="\n".join(new_lines[first - 1 : last]),
                source=mutated,
                stmt_last=_header_end(site.stmt),
            )
        )
    return out


def scoped_files() -> list[tuple[str, frozenset[str] | None]]:
    """Repository-relative paths in SCOPE (minus EXCLUDE), each with its kept names."""
    found: dict[str, frozenset[str] | None] = {}
    for pattern, keep in SCOPE:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            if not any(fnmatch.fnmatch(rel, ex) for ex in EXCLUDE):
                found.setdefault(rel, keep)
    return sorted(found.items())


def load_equivalents(path: Path = EQUIVALENT_FILE) -> dict[tuple[str, str], str]:
    """``(file, mutant id) -> reason`` from the equivalents file (``file | id | reason`` lines, ``#`` comments).

    Raises ValueError on a malformed line.
    """
    out: dict[tuple[str, str], str] = {}
    if not path.is_file():
        return out
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{path}:{number}: expected 'file | mutant id | reason'")
        out[(parts[0], parts[1])] = parts[2]
    return out


# --- git --------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def changed_files() -> list[str]:
    """Files changed vs the merge base with origin/main (working tree included), else in the last commit."""
    base = _git("merge-base", "HEAD", "origin/main")
    names = _git("diff", "--name-only", base) if base else _git("diff", "--name-only", "HEAD~1")
    return (names or "").splitlines()


def snapshot_head() -> Path:
    """HEAD's files extracted once (``git archive``) into the cache: other people's edits in progress do not leak
    into a run.

    Raises SystemExit when git cannot archive HEAD.
    """
    head = _git("rev-parse", AT)
    if head is None:
        raise SystemExit(f"no commit {AT}: run with --worktree")
    target = CACHE_DIR / f"head-{head[:12]}"
    if not (target / "verifier").is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="head-", dir=CACHE_DIR))
        archive = subprocess.run(["git", "-C", str(REPO), "archive", head], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        tmp.rename(target)
    return target


def _map_key() -> str:
    head = _git("rev-parse", AT if ROOT != REPO else "HEAD") or "nohead"
    dirty = "" if ROOT != REPO else (_git("diff", "HEAD", "--", "verifier", "tests") or "")
    return f"{head[:12]}-{hashlib.sha256(dirty.encode()).hexdigest()[:12]}"


def _reusable_map() -> Path | None:
    """A cached map of an older HEAD whose verifier/ equals the working tree's (its line numbers still hold)."""
    for path in sorted(CACHE_DIR.glob("linemap-*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        head = json.loads(path.read_text()).get("head")
        now = AT if ROOT != REPO else None  # a snapshot compares commits, the work tree compares itself
        same = _git("diff", "--quiet", head, *([now] if now else []), "--", "verifier") if head else None
        if same is not None:
            return path
    return None


# --- the line -> tests map --------------------------------------------------------------------------------------
def _test_env(pythonpath: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERIFIER_TEST_DATABASE_URL", "COVERAGE_"))}
    env["VERIFIER_VECTORS"] = VECTORS
    env["PYTHONPATH"] = str(pythonpath)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    return env


class _ContextPlugin:
    """A pytest plugin for the coverage run: one coverage context per test node id, and each test's duration."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov
        self.durations: dict[str, float] = defaultdict(float)

    def pytest_runtest_setup(self, item: Any) -> None:
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_teardown(self, item: Any) -> None:
        self.cov.switch_context(item.nodeid)

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.durations[report.nodeid] += report.duration


def _collect_coverage(root: str, data_file: str, out: str) -> int:
    """Inside the coverage subprocess (cwd ``root``): run the suite under coverage and write the map as JSON."""
    global ROOT
    ROOT = Path(root)
    import coverage  # only this mode needs coverage
    import pytest

    cov = coverage.Coverage(data_file=data_file, source=[str(ROOT / "verifier")], branch=False)
    cov.start()
    plugin = _ContextPlugin(cov)
    code = pytest.main(["-q", "-p", "no:cacheprovider", "tests"], plugins=[plugin])
    cov.stop()
    cov.save()
    data = cov.get_data()
    lines: dict[str, dict[str, list[str]]] = {}
    for rel, _keep in scoped_files():
        filename = str(ROOT / rel)
        by_line = data.contexts_by_lineno(filename)
        lines[rel] = {str(n): sorted(c for c in ctx if c) for n, ctx in by_line.items() if any(ctx)}
    dirty = ROOT == REPO and _git("diff", "--quiet", "HEAD", "--", "verifier", "tests") is None
    head = None if dirty else _git("rev-parse", AT if ROOT != REPO else "HEAD")
    Path(out).write_text(
        json.dumps({"head": head, "durations": plugin.durations, "lines": lines, "pytest_exit": int(code)})
    )
    return 0


def line_map(refresh: bool = False) -> dict[str, Any]:
    """The cached line -> tests map for the current HEAD and working tree, built first if needed."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"linemap-{_map_key()}.json"
    reuse = path if path.is_file() else _reusable_map()
    if reuse is not None and not refresh:
        print(f"line -> tests map: {reuse}", flush=True)
        return dict(json.loads(reuse.read_text()))
    print(f"building the line -> tests map (the whole suite under coverage, SQLite only) into {path} ...", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-cov-") as tmp:
        cmd = [sys.executable, __file__, "--_collect", str(ROOT), str(Path(tmp) / ".coverage"), str(path)]
        proc = subprocess.run(cmd, cwd=ROOT, env=_test_env(ROOT), check=False, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not path.is_file():
            raise SystemExit(f"coverage run failed (exit {proc.returncode})")
    result = dict(json.loads(path.read_text()))
    print(f"  done in {time.monotonic() - started:.0f}s (pytest exit {result['pytest_exit']})", flush=True)
    return result


# --- running ----------------------------------------------------------------------------------------------------
class _Worker:
    """A private copy of the repository; one mutant at a time is patched into it and restored afterwards."""

    def __init__(self, base: Path, number: int) -> None:
        self.root = base / f"w{number}"
        shutil.copytree(ROOT, self.root, ignore=COPY_IGNORE, symlinks=True)
        for path in (self.root / "verifier").rglob("*.py"):  # hash-checked pycs: a restored file never goes stale
            py_compile.compile(str(path), invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH, quiet=1)
        self.startup = 0.0
        self._fork: subprocess.Popen[str] | None = None

    def pytest(self, ids: list[str], timeout: float | None) -> tuple[int | None, float, str]:
        """Run pytest on ``ids`` in this copy; (exit code or None on a timeout, seconds, the output's tail)."""
        if FORK:
            return self._forked(ids, timeout)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *ids]
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=_test_env(self.root),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: a timeout ends the servers a test started too
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return None, time.monotonic() - started, ""
        return proc.returncode, time.monotonic() - started, out[-2000:]

    def _server(self) -> subprocess.Popen[str]:
        if self._fork is None or self._fork.poll() is not None:
            self._fork = subprocess.Popen(
                [sys.executable, str(REPO / "scripts" / "mutation_forkserver.py"), str(self.root)],
                cwd=self.root,
                env=_test_env(self.root),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        return self._fork

    def _forked(self, ids: list[str], timeout: float | None) -> tuple[int | None, float, str]:
        """`pytest` through the fork server (see scripts/mutation_forkserver.py): the same run without paying
        for the third-party imports each time. A child past ``timeout`` is killed with its process group."""
        server = self._server()
        assert server.stdin is not None and server.stdout is not None
        log_path = self.root.parent / f"{self.root.name}.log"
        started = time.monotonic()
        server.stdin.write(json.dumps({"ids": ids, "log": str(log_path)}) + "\n")
        server.stdin.flush()
        pid = int(json.loads(server.stdout.readline())["pid"])
        timed_out = False
        ready, _, _ = io_select.select([server.stdout], [], [], timeout)
        if not ready:
            timed_out = True
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = int(json.loads(server.stdout.readline())["code"])
        elapsed = time.monotonic() - started
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.is_file() else ""
        if timed_out:
            return None, elapsed, ""
        return (code if code >= 0 else 128 - code), elapsed, tail

    def close(self) -> None:
        """End the fork server, if one runs."""
        if self._fork is not None and self._fork.poll() is None:
            assert self._fork.stdin is not None
            self._fork.stdin.close()
            try:
                self._fork.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._fork.pid, signal.SIGKILL)

    def canary(self, test_id: str) -> None:
        """Check that the tests import this copy: a broken copy of verifier/__init__.py must fail them.

        Raises SystemExit when they do not.
        """
        init = self.root / "verifier" / "__init__.py"
        original = init.read_bytes()
        code, elapsed, _ = self.pytest([test_id], timeout=300)
        if code != 0:
            raise SystemExit(f"canary test {test_id} fails on the clean copy {self.root} (exit {code})")
        self.startup = elapsed
        init.write_bytes(original + b"\nraise RuntimeError('mutation canary')\n")
        try:
            code, _, _ = self.pytest([test_id], timeout=300)
        finally:
            init.write_bytes(original)
        if code == 0:
            raise SystemExit(f"the tests do not import the copy in {self.root}: PYTHONPATH/rootdir is wrong")

    def run(self, mutant: Mutant, ids: list[str], timeout: float) -> tuple[str, float, str]:
        target = self.root / mutant.path
        original = target.read_bytes()
        target.write_text(mutant.source)
        try:
            code, elapsed, tail = self.pytest(ids, timeout)
        finally:
            target.write_bytes(original)
        if code is None:
            return "killed (timeout)", elapsed, tail
        if code == 0:
            return "survived", elapsed, tail
        if code in (1, 2, 3):  # failed, interrupted (collection error), internal error
            return "killed", elapsed, tail
        return f"error (pytest exit {code})", elapsed, tail


def _within(ids: list[str], durations: dict[str, float], budget: float) -> tuple[list[str], int]:
    """The prefix of ``ids`` (cheapest first) whose clean durations fit in ``budget`` seconds (at least one test),
    and how many were left out."""
    total, kept = 0.0, 0
    for test_id in ids:
        total += durations.get(test_id, 0.0)
        if kept and total > budget:
            break
        kept += 1
    return ids[:kept], len(ids) - kept


def _tests_for(mutant: Mutant, lmap: dict[str, Any]) -> list[str]:
    by_line = lmap["lines"].get(mutant.path, {})
    last = max(mutant.stmt_line, mutant.stmt_last)
    ids = [i for n in range(mutant.stmt_line, last + 1) for i in by_line.get(str(n), [])]
    durations = lmap["durations"]
    return sorted(set(ids), key=lambda i: (durations.get(i, 0.0), i))  # cheapest first: -x stops early


def run_all(
    mutants: list[Mutant],
    lmap: dict[str, Any],
    workers: int,
    progress: Path | None = None,
    also: list[str] | None = None,
    budget: float = 0.0,
) -> list[dict[str, Any]]:
    """Run every mutant on ``workers`` private copies; one result dict per mutant, in input order. ``also``: tests
    (files or ids, e.g. new ones the cached line map does not know yet) run first for every mutant. ``budget``
    > 0: only the cheapest covering tests whose clean durations fit in it (a mutant that passes them is reported
    "survived" with the number of tests left out as ``capped``; re-run those with --retry and no budget).

    Each result is also appended to ``progress`` (JSON lines) as it comes, so an interrupted run leaves its part.
    """
    results: list[dict[str, Any] | None] = [None] * len(mutants)
    todo: queue.Queue[int] = queue.Queue()
    for n in range(len(mutants)):
        todo.put(n)
    lock = threading.Lock()
    done = [0]
    started = time.monotonic()
    durations = lmap["durations"]
    canary = min(durations, key=lambda i: (durations[i], i)) if durations else (also or [""])[0]
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copies = [_Worker(Path(tmp), n) for n in range(workers)]
        for copy in copies:
            copy.canary(canary)

        def work(copy: _Worker) -> None:
            while True:
                try:
                    n = todo.get_nowait()
                except queue.Empty:
                    return
                mutant = mutants[n]
                ids = _tests_for(mutant, lmap)
                skipped = 0
                if budget > 0:
                    ids, skipped = _within(ids, lmap["durations"], budget)
                if also:
                    ids = [*also, *(i for i in ids if i not in also)]
                if not ids:
                    status, elapsed, tail, timeout = "not covered", 0.0, "", 0.0
                else:
                    clean = copy.startup + sum(lmap["durations"].get(i, 0.0) for i in ids) + 20.0 * len(also or [])
                    timeout = 3 * clean + 5
                    status, elapsed, tail = copy.run(mutant, ids, timeout)
                results[n] = {
                    **_describe(mutant),
                    "status": status,
                    "tests": len(ids),
                    "seconds": round(elapsed, 2),
                    "timeout": round(timeout, 1),
                    **({"capped": skipped} if skipped and not status.startswith("killed") else {}),
                    **({"output": tail} if status.startswith("error") else {}),
                }
                with lock:
                    done[0] += 1
                    if progress is not None:
                        with progress.open("a") as fh:
                            fh.write(json.dumps(results[n]) + "\n")
                    if status in ("survived", "not covered"):
                        print(f"  {status}: {mutant.where()} {mutant.operator} [{mutant.ident}]", flush=True)
                    if done[0] % 25 == 0 or done[0] == len(mutants):
                        rate = (time.monotonic() - started) / done[0]
                        left = (len(mutants) - done[0]) * rate
                        print(f"  {done[0]}/{len(mutants)} mutants, about {left / 60:.1f} min left", flush=True)

        threads = [threading.Thread(target=work, args=(c,)) for c in copies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for copy in copies:
            copy.close()
    return [r for r in results if r is not None]


def _describe(mutant: Mutant) -> dict[str, Any]:
    return {
        "file": mutant.path,
        "line": mutant.line,
        "id": mutant.ident,
        "operator": mutant.operator,
        "original": mutant.original,
        "mutated": mutant.mutated,
    }


# --- reporting --------------------------------------------------------------------------------------------------
def summarize(results: list[dict[str, Any]], equivalents: dict[tuple[str, str], str]) -> dict[str, Any]:
    """Per-module and overall counts; kill rate = killed / (killed + survived + not covered), equivalents apart."""
    modules: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        key = (r["file"], r["id"])
        if key in equivalents:
            r["equivalent"] = equivalents[key]
            bucket = "equivalent"
        elif r["status"].startswith("killed"):
            bucket = "killed"
        elif r["status"] in ("survived", "not covered"):
            bucket = r["status"]
        else:
            bucket = "error"
        r["bucket"] = bucket
        modules[r["file"]][bucket] += 1
    total: dict[str, int] = defaultdict(int)
    table = {}
    for module, counts in sorted(modules.items()):
        for k, v in counts.items():
            total[k] += v
        table[module] = {**counts, "kill_rate": _rate(counts)}
    return {"modules": table, "overall": {**total, "kill_rate": _rate(total)}}


def _rate(counts: dict[str, int]) -> float | None:
    scored = counts.get("killed", 0) + counts.get("survived", 0) + counts.get("not covered", 0)
    return round(counts.get("killed", 0) / scored, 4) if scored else None


def _pct(rate: float | None) -> str:
    return "  n/a" if rate is None else f"{rate * 100:5.1f}%"


def print_report(summary: dict[str, Any], results: list[dict[str, Any]]) -> None:
    print("\nTests ran on SQLite only (VERIFIER_TEST_DATABASE_URL unset); PostgreSQL-only tests were skipped.")
    print(f"\n{'module':58} {'kill':>6} {'killed':>6} {'surv':>5} {'uncov':>5} {'equiv':>5} {'err':>4}")
    for module, c in summary["modules"].items():
        print(
            f"{module:58} {_pct(c['kill_rate']):>6} {c.get('killed', 0):6} {c.get('survived', 0):5} "
            f"{c.get('not covered', 0):5} {c.get('equivalent', 0):5} {c.get('error', 0):4}"
        )
    o = summary["overall"]
    print(
        f"{'overall':58} {_pct(o['kill_rate']):>6} {o.get('killed', 0):6} {o.get('survived', 0):5} "
        f"{o.get('not covered', 0):5} {o.get('equivalent', 0):5} {o.get('error', 0):4}"
    )
    for bucket, title in (("survived", "Surviving"), ("not covered", "Not covered"), ("error", "Errored")):
        rows = [r for r in results if r["bucket"] == bucket]
        if rows:
            print(f"\n{title} mutants ({len(rows)}):")
            for r in rows:
                _print_mutant(r)
    rows = [r for r in results if r["bucket"] == "equivalent"]
    if rows:
        print(f"\nEquivalent mutants, not scored ({len(rows)}):")
        for r in rows:
            print(f"  {r['file']}:{r['line']} {r['id']}: {r['equivalent']}")


def _print_mutant(r: dict[str, Any]) -> None:
    print(f"  {r['file']}:{r['line']}  {r['operator']}  [{r['id']}]")
    print(f"      - {r['original'].strip()}")
    print(f"      + {r['mutated'].strip()}")


# --- command line -----------------------------------------------------------------------------------------------
def select(args: argparse.Namespace) -> list[Mutant]:
    """The mutants the command line asks for (scope, --quick, --module, --max per module)."""
    files = scoped_files()
    if args.quick:
        changed = set(changed_files())
        files = [(f, k) for f, k in files if f in changed]
    if args.module:
        prefixes = [m.rstrip("/") for m in args.module]
        files = [(f, k) for f, k in files if any(f == p or f.startswith(p + "/") for p in prefixes)]
    rng = random.Random(args.seed)
    chosen: list[Mutant] = []
    for rel, keep in files:
        found = mutants_of(rel, (ROOT / rel).read_text(), keep)
        if args.max and len(found) > args.max:
            found = sorted(rng.sample(found, args.max), key=lambda m: (m.line, m.ident))
        chosen.extend(found)
    return chosen


def _iter_list(mutants: list[Mutant]) -> Iterator[str]:
    for m in mutants:
        yield f"{m.where():55} {m.operator:13} [{m.ident}]"
        yield f"      - {m.original.strip()}"
        yield f"      + {m.mutated.strip()}"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 even when mutants survive: the report is the product)."""
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--_collect"]:
        return _collect_coverage(argv[1], argv[2], argv[3])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only scoped files changed vs origin/main or HEAD~1")
    parser.add_argument("--module", action="append", default=[], help="restrict to this file or folder (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the mutants without running them")
    parser.add_argument("--id", action="append", default=[], help="only the mutant with this id (repeatable)")
    parser.add_argument("--max", type=int, default=0, help="sample at most N mutants per module")
    parser.add_argument("--seed", type=int, default=16, help="seed of the --max sample")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--refresh-map", action="store_true", help="rebuild the cached line -> tests map")
    parser.add_argument("--worktree", action="store_true", help="mutate the work tree as it is, not HEAD's snapshot")
    parser.add_argument("--map-only", action="store_true", help="build (or show) the line -> tests map and stop")
    parser.add_argument("--rescore", type=Path, help="re-read a results JSON with the current equivalents, rewrite it")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/...)")
    parser.add_argument(
        "--budget", type=float, default=0.0, help="seconds of covering tests per mutant, cheapest first (0: all)"
    )
    parser.add_argument(
        "--only-also",
        action="store_true",
        help="run only the --also tests, no line map (with --retry: survivors of the mapped tests already)",
    )
    parser.add_argument("--no-fork", action="store_true", help="a fresh interpreter per mutant (no fork server)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the results already in this run's progress file, run the rest"
    )
    parser.add_argument("--at", default="HEAD", help="snapshot this commit instead of HEAD (not with --worktree)")
    parser.add_argument(
        "--also", action="append", default=[], help="a test file or id run first for every mutant (repeatable)"
    )
    parser.add_argument(
        "--retry", type=Path, help="re-run the survivors of a results JSON on this tree and merge them into it"
    )
    args = parser.parse_args(argv)
    if args.rescore:
        payload = json.loads(args.rescore.read_text())
        for r in payload["mutants"]:
            r.pop("equivalent", None)
        payload.update(summarize(payload["mutants"], load_equivalents()))
        print_report(payload, payload["mutants"])
        args.rescore.write_text(json.dumps(payload, indent=1) + "\n")
        return 0
    global ROOT, AT, FORK
    FORK = not args.no_fork
    AT = os.environ["VERIFIER_MUTATION_AT"] = args.at
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    ROOT = REPO if args.worktree else snapshot_head()
    print(f"mutating {'the work tree' if args.worktree else 'a snapshot of HEAD'}: {ROOT}", flush=True)

    if args.map_only:
        lmap = line_map(refresh=args.refresh_map)
        covered = sum(len(v) for v in lmap["lines"].values())
        print(f"{len(lmap['durations'])} tests, {covered} scoped lines covered")
        return 0
    mutants = select(args)
    if args.id:
        mutants = [m for m in mutants if m.ident in set(args.id)]
    previous: dict[str, Any] | None = None
    if args.retry:
        previous = json.loads(args.retry.read_text())
        selected = {m.path for m in mutants}
        wanted = {
            (r["file"], r["id"]) for r in previous["mutants"] if r.get("bucket") in _RETRIED and r["file"] in selected
        }
        mutants = [m for m in mutants if (m.path, m.ident) in wanted]
        gone = wanted - {(m.path, m.ident) for m in mutants}
        for path, ident in sorted(gone):
            print(f"  gone from this tree (the code changed): {path} [{ident}]")
    if args.list:
        for line in _iter_list(mutants):
            print(line)
        print(f"{len(mutants)} mutants in {len({m.path for m in mutants})} files")
        return 0
    if not mutants:
        print("no mutants selected")
        return 0
    equivalents = load_equivalents()
    head = _git("rev-parse", "HEAD") if args.worktree else ROOT.name.removeprefix("head-")
    if args.only_also:
        if not args.also:
            raise SystemExit("--only-also needs --also")
        lmap: dict[str, Any] = {"lines": {}, "durations": {}}  # no map: only the --also tests run
    else:
        lmap = line_map(refresh=args.refresh_map)
    print(f"running {len(mutants)} mutants on {args.workers} workers (SQLite only) ...", flush=True)
    started = time.monotonic()
    out = args.out or RESULTS_DIR / f"mutation-{dt.date.today().isoformat()}.json"
    progress = CACHE_DIR / f"{out.stem}.progress.jsonl"
    kept: dict[tuple[str, str], dict[str, Any]] = {}
    if args.resume and progress.is_file():
        wanted = {(m.path, m.ident) for m in mutants}
        for line in progress.read_text().splitlines():
            row = json.loads(line)
            if (row["file"], row["id"]) in wanted:
                kept[(row["file"], row["id"])] = row
        print(f"  resuming: {len(kept)} results kept from {progress}", flush=True)
    else:
        progress.unlink(missing_ok=True)
    print(f"  (each result is appended to {progress} as it comes)", flush=True)
    todo = [m for m in mutants if (m.path, m.ident) not in kept]
    ran = run_all(todo, lmap, args.workers, progress, also=args.also, budget=args.budget)
    fresh = {(r["file"], r["id"]): r for r in ran}
    results = [kept.get((m.path, m.ident)) or fresh[(m.path, m.ident)] for m in mutants]
    if previous is not None:
        assert args.retry is not None
        return _merge_retry(args.retry, previous, results, head, round(time.monotonic() - started), equivalents)
    summary = summarize(results, equivalents)
    print_report(summary, results)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "head": head,
        "tree": "work tree" if args.worktree else f"snapshot of HEAD ({ROOT})",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": "sqlite only (VERIFIER_TEST_DATABASE_URL unset)",
        "argv": argv,
        "max_per_module": args.max or None,
        "budget_s": args.budget or None,
        "seconds": round(time.monotonic() - started),
        **summary,
        "mutants": results,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


_RETRIED = ("survived", "not covered", "error")


def _merge_retry(
    path: Path,
    payload: dict[str, Any],
    results: list[dict[str, Any]],
    head: str,
    seconds: int,
    equivalents: dict[tuple[str, str], str],
) -> int:
    """Replace the retried mutants' entries of ``payload`` by ``results``, re-score and write it back to ``path``."""
    fresh = {(r["file"], r["id"]): {**r, "retried_at": head} for r in results}
    payload["mutants"] = [fresh.get((r["file"], r["id"]), r) for r in payload["mutants"]]
    for r in payload["mutants"]:
        r.pop("equivalent", None)
    payload.setdefault("retries", []).append(
        {
            "head": head,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "mutants": len(results),
            "seconds": seconds,
        }
    )
    payload.update(summarize(payload["mutants"], equivalents))
    print_report(payload, payload["mutants"])
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"\nmerged {len(results)} re-run mutants into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
