"""Exit codes and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from ..clock import parse_rfc3339
from ..settings import Settings, add_flags, apply_flags

EXIT_AFFIRMING = 0
EXIT_WARNING = 1
EXIT_CONTRAINDICATED = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERNAL = 70
EXIT_USAGE = 64


class UsageError(Exception):
    """Bad command-line input: exit 64."""


def rfc3339(text: str) -> dt.datetime:
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def hex_bytes(text: str) -> bytes:
    value = text.strip().lower()
    value = value[2:] if value.startswith("0x") else value
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text[:40]!r}") from None


def add_db_flag(parser: argparse.ArgumentParser) -> None:
    """`--db URL` (the `database_url` setting, declared in verifier/settings/table.py)."""
    add_flags(parser, ["database_url"])


def settings_for(args: argparse.Namespace, base: Settings) -> Settings:
    """`base` with `--db` when it was given."""
    return apply_flags(base, args, ["database_url"])


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr)
