"""Settings from the declarations: `from_environment` reads every declared VERIFIER_* variable, `add_flags` adds
the flags of the named settings to an argparse parser (one argument group per section) and `apply_flags` copies
parsed flags onto a `Settings`. This is the only module that reads the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

from .declaration import Declaration
from .table import SECTIONS, Settings


def declarations() -> dict[str, Declaration]:
    """Every declared setting by field name, in declaration order."""
    return {f.name: f.metadata["setting"] for f in fields(Settings) if "setting" in f.metadata}


def flag_names() -> list[str]:
    """The settings that have a command-line flag, in declaration order."""
    return [name for name, d in declarations().items() if d.flag is not None]


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from VERIFIER_* variables (CLI flags override them, `apply_flags`); an empty variable is unset.
    Raises ConfigError SETTING_INVALID for a malformed value."""
    env = os.environ if environ is None else environ
    changes: dict[str, Any] = {}
    for name, declared in declarations().items():
        value = env.get(declared.env_name)
        if value not in (None, ""):
            changes[name] = declared.parse(value)
    return Settings().with_overrides(**changes)


def add_flags(
    parser: argparse.ArgumentParser,
    names: Iterable[str],
    *,
    help: Mapping[str, str] | None = None,
    grouped: bool = True,
) -> None:
    """Add the flags of the settings `names` (dest: the field name, default None) to `parser`, in one argument
    group per section unless `grouped` is false; `help` replaces a setting's help text for this parser. Raises
    KeyError for an undeclared name, ValueError for a setting without a flag."""
    declared = declarations()
    order = list(declared)
    wanted = sorted(names, key=lambda n: (SECTIONS.index(declared[n].section), order.index(n)))
    groups: dict[str, Any] = {}
    for name in wanted:
        d = declared[name]
        if d.flag is None:
            raise ValueError(f"setting {name!r} has no command-line flag")
        target: Any = parser
        if grouped:
            target = groups.get(d.section) or _group(parser, d.section)
            groups[d.section] = target
        text = (help or {}).get(name, d.help)
        target.add_argument(d.flag, dest=name, default=None, help=f"{text} [env {d.env_name}]", **d.options)


def _group(parser: argparse.ArgumentParser, section: str) -> Any:
    for group in parser._action_groups:
        if group.title == section:
            return group
    return parser.add_argument_group(section)


def apply_flags(base: Settings, args: argparse.Namespace, names: Iterable[str]) -> Settings:
    """`base` with the flags of `names` that were given on the command line (see `add_flags`)."""
    declared = declarations()
    changes: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        convert = declared[name].from_flag
        changes[name] = convert(value) if convert is not None and value is not None else value
    return base.with_overrides(**changes)
