"""Argument parsing and dispatch; maps errors to the contract's exit codes (verifier/cli/common.py). No traceback
reaches the user, and a reader that goes away (`verifier refs list | head -1`) ends the command quietly with 141."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from .. import __version__
from ..errors import ErrorKind, VerifierError
from ..logging_setup import install_logging
from ..settings import Settings, add_flags, from_environment
from . import audit as audit_cmd
from . import broker as broker_cmd
from . import db as db_cmd
from . import keys as keys_cmd
from . import policy as policy_cmd
from . import refs as refs_cmd
from . import result as result_cmd
from . import serve as serve_cmd
from . import tokens as tokens_cmd
from . import verify as verify_cmd
from . import workloads as workloads_cmd
from .common import (
    EXIT_BROKEN_PIPE,
    EXIT_CONTRAINDICATED,
    EXIT_INTERNAL,
    EXIT_NOT_ALLOWED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    UsageError,
    eprint,
)

log = logging.getLogger("verifier.cli")

Handler = Callable[[argparse.Namespace, Settings], int]
DISTRIBUTION = "tee-verifier"

EXIT_BY_KIND = {
    ErrorKind.EVIDENCE: EXIT_CONTRAINDICATED,  # untrusted input that reached the top (a token, a signed note)
    ErrorKind.REQUEST: EXIT_USAGE,
    ErrorKind.NOT_FOUND: EXIT_USAGE,
    ErrorKind.UNAVAILABLE: EXIT_UNAVAILABLE,
    ErrorKind.OVERLOADED: EXIT_UNAVAILABLE,
    ErrorKind.AUTH: EXIT_NOT_ALLOWED,
    ErrorKind.PERMISSION: EXIT_NOT_ALLOWED,
    ErrorKind.INTERNAL: EXIT_INTERNAL,
}
# A gRPC status of a remote admin call (`--server`) that no command translated itself.
EXIT_BY_GRPC_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: EXIT_NOT_ALLOWED,
    grpc.StatusCode.PERMISSION_DENIED: EXIT_NOT_ALLOWED,
    grpc.StatusCode.INVALID_ARGUMENT: EXIT_USAGE,
    grpc.StatusCode.NOT_FOUND: EXIT_USAGE,
    grpc.StatusCode.ALREADY_EXISTS: EXIT_USAGE,
    grpc.StatusCode.FAILED_PRECONDITION: EXIT_USAGE,
    grpc.StatusCode.OUT_OF_RANGE: EXIT_USAGE,
    grpc.StatusCode.UNIMPLEMENTED: EXIT_USAGE,
    grpc.StatusCode.UNAVAILABLE: EXIT_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: EXIT_UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED: EXIT_UNAVAILABLE,
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        eprint(f"{self.prog}: error: {message}")
        raise SystemExit(EXIT_USAGE)


class _Version(argparse.Action):
    """`--version`, printed as written (argparse's own action rewraps the lines)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        sys.stdout.write(version_text() + "\n")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verifier", description="Remote-attestation verifier for AWS Nitro Enclaves, AMD SEV-SNP and Intel TDX"
    )
    parser.add_argument("--version", action=_Version, help="print the version and the build tokens carry, and exit")
    add_flags(parser, serve_cmd.GLOBAL_SETTINGS, grouped=False)  # --log-level
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    serve_cmd.register(sub)
    db_cmd.register(sub)
    verify_cmd.register(sub)
    refs_cmd.register(sub)
    keys_cmd.register(sub)
    broker_cmd.register(sub)
    audit_cmd.register(sub)
    policy_cmd.register(sub)
    tokens_cmd.register(sub)
    workloads_cmd.register(sub)
    result_cmd.register(sub)
    return parser


def version_text() -> str:
    """`verifier --version`: the installed distribution's version and the build id result tokens carry in
    `ear_verifier_id.build` (they differ only in a source tree whose installed metadata is stale). Never raises."""
    try:
        installed = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        installed = f"{__version__} (not installed)"
    return f"verifier {installed}\nresult tokens: ear_verifier_id developer {DISTRIBUTION}, build {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command: its exit code (common.py's table). Raises only SystemExit from argparse (--help and
    --version: 0, a usage error: 64); a closed stdout becomes 141 (`_broken_pipe`), in argparse's output too."""
    try:
        try:
            code = _run(argv)
        finally:
            sys.stdout.flush()  # here, not at interpreter exit: a reader gone away shows inside the try
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return _broken_pipe()
        eprint(f"verifier: cannot write the output: {exc.strerror}")
        return EXIT_INTERNAL
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = from_environment()
    except VerifierError as exc:  # a malformed VERIFIER_* variable is a usage error, not a traceback
        eprint(f"verifier: {exc.code}: {exc.message}")
        return EXIT_USAGE
    level = (args.log_level or settings.log_level or "INFO").upper()
    install_logging(level if level in logging.getLevelNamesMapping() else "INFO")
    if level != "DEBUG":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except UsageError as exc:
        eprint(f"verifier: {exc}")
        return EXIT_USAGE
    except VerifierError as exc:
        eprint(f"verifier: {exc.code}: {exc.message}")
        return EXIT_BY_KIND.get(exc.kind, EXIT_INTERNAL)
    except grpc.RpcError as exc:
        return _rpc_error(exc)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise  # BrokenPipeError too: main() ends quietly
        return _internal()
    except Exception:  # noqa: BLE001 - a bug: logged with its traceback by _internal, never shown raw
        return _internal()


def _internal() -> int:
    log.exception("internal error")
    eprint("verifier: internal error (details in the log above)")
    return EXIT_INTERNAL


def _rpc_error(exc: grpc.RpcError) -> int:
    status: grpc.StatusCode | None = exc.code() if isinstance(exc, grpc.Call) else None
    details = exc.details() if isinstance(exc, grpc.Call) else None
    name = status.name if status is not None else "UNKNOWN"
    eprint(f"verifier: the server answered {name}: {(details or '').strip()[:300]}")
    return EXIT_BY_GRPC_CODE.get(status, EXIT_INTERNAL) if status is not None else EXIT_INTERNAL


def _broken_pipe() -> int:
    """The reader of stdout went away: no message (it could not be read either), no traceback, and no flush error
    at interpreter exit (stdout is pointed at /dev/null, as the Python documentation of SIGPIPE recommends). 141,
    as a shell reports a writer killed by SIGPIPE, so that `set -o pipefail` still sees that the output was cut."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return EXIT_BROKEN_PIPE
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    raise SystemExit(main())
