"""The fork server behind each worker of scripts/mutation.py.

Starting pytest costs about two seconds on this machine before the first test runs, most of it importing the
third-party packages (pytest, grpc, SQLAlchemy, cryptography, hypothesis...). A mutant needs a fresh interpreter
for the project's own modules only, so this process imports the third-party packages once, never ``verifier`` or
``tests``, and forks one child per request: the child imports the (mutated) project from the worker's copy and
runs pytest there.

Protocol (one JSON object per line): the worker writes ``{"ids": [...], "log": path}`` to stdin; the server answers
``{"pid": n}`` once the child runs (its own session: the worker kills its process group on a timeout) and
``{"code": n}`` when it ended (pytest's exit code; negative: the signal that ended it). The child's output goes to
``log``. Run as ``python scripts/mutation_forkserver.py ROOT`` with the test environment already set.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

PRELOAD = (
    "pytest",
    "_pytest.python",
    "_pytest.assertion.rewrite",
    "hypothesis",
    "hypothesis.strategies",
    "grpc",
    "grpc.aio",
    "grpc_status.rpc_status",
    "google.protobuf.message",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "alembic.config",
    "alembic.command",
    "psycopg",
    "cryptography.x509",
    "cryptography.x509.ocsp",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "cryptography.hazmat.primitives.asymmetric.padding",
    "yaml",
    "cbor2",
    "joserfc.jwt",
    "prometheus_client",
)


def _run_child(root: str, ids: list[str], log: str) -> None:
    """In the forked child: output to `log`, the project from `root`, pytest, then exit with its code."""
    code = 3
    try:
        os.setsid()
        os.chdir(root)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        if sys.path[:1] != [root]:
            sys.path.insert(0, root)
        import pytest

        code = int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", *ids]))
    except BaseException:  # noqa: BLE001 - anything here is reported as pytest's internal error (3)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(root: str) -> int:
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("verifier", "tests"))
    if leaked:
        raise SystemExit(f"the fork server imported project modules: {leaked[:5]}")
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(root, list(request["ids"]), str(request["log"]))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
