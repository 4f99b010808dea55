"""`_setting(...)`: a `Settings` field carrying its declaration (verifier/settings/declaration.py), and the
sections `--help` groups the flags in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from .declaration import Declaration

# The order of the argument groups in `--help`.
SECTIONS = (
    "database",
    "server",
    "tls",
    "admin auth",
    "signing",
    "appraisal",
    "collateral",
    "rate limits",
    "lanes",
    "retention",
    "logging",
)


def _setting(
    default: Any,
    *,
    section: str,
    env: str,
    parse: Callable[[str], Any],
    help: str,
    flag: str | None = None,
    from_flag: Callable[[Any], Any] | None = None,
    **options: Any,
) -> Any:
    """A `Settings` field with its declaration in the field's metadata."""
    if section not in SECTIONS:
        raise ValueError(f"unknown settings section {section!r}")
    declared = Declaration(section, env, parse, help, flag, options, from_flag)
    return field(default=default, metadata={"setting": declared})
