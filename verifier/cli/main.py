"""Argument parsing and dispatch; maps errors to the contract's exit codes. No traceback reaches the user."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ..errors import ErrorKind, VerifierError
from ..logging_setup import install_logging
from ..settings import Settings, add_flags, from_environment
from . import audit as audit_cmd
from . import broker as broker_cmd
from . import db as db_cmd
from . import keys as keys_cmd
from . import policy as policy_cmd
from . import refs as refs_cmd
from . import serve as serve_cmd
from . import tokens as tokens_cmd
from . import verify as verify_cmd
from . import workloads as workloads_cmd
from .common import EXIT_INTERNAL, EXIT_UNAVAILABLE, EXIT_USAGE, UsageError, eprint

log = logging.getLogger("verifier.cli")

Handler = Callable[[argparse.Namespace, Settings], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        eprint(f"{self.prog}: error: {message}")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verifier", description="Remote-attestation verifier for AWS Nitro Enclaves, AMD SEV-SNP and Intel TDX"
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
        if exc.kind in (ErrorKind.REQUEST, ErrorKind.NOT_FOUND):
            return EXIT_USAGE
        if exc.kind in (ErrorKind.UNAVAILABLE, ErrorKind.OVERLOADED):
            return EXIT_UNAVAILABLE
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("internal error")
        eprint("verifier: internal error (details in the log above)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
