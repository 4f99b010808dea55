"""Issue 12 (structure): every setting is declared once in verifier/settings/ (table.py, its field modules),
with an environment name; the
environment loader and the argparse flags are both derived from that declaration."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from verifier.cli import serve as serve_cmd
from verifier.cli.main import build_parser, main
from verifier.settings import ENV_PREFIX, Rate, Settings, apply_flags, declarations, flag_names, from_environment
from verifier.settings import table as settings_module

NOT_SETTINGS = {"extra"}  # room for callers, never configured
FIELD_MODULES = ("table", "appraisal_fields", "server_fields", "collateral_fields")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_every_field_has_exactly_one_declaration_with_an_env_name() -> None:
    declared = declarations()
    names = [f.name for f in dataclasses.fields(Settings)]
    assert set(declared) == set(names) - NOT_SETTINGS
    envs = [d.env_name for d in declared.values()]
    assert len(envs) == len(set(envs)), "two settings share an environment name"
    assert all(re.fullmatch(r"VERIFIER_[A-Z0-9_]+", env) for env in envs)
    flags = [d.flag for d in declared.values() if d.flag is not None]
    assert len(flags) == len(set(flags)), "two settings share a flag"
    assert all(d.section in settings_module.SECTIONS and d.help for d in declared.values())
    # Declared once: each environment name is written once in the field modules, in its declaration.
    folder = Path(settings_module.__file__).parent
    source = "".join((folder / f"{name}.py").read_text() for name in FIELD_MODULES)
    for d in declared.values():
        assert source.count(f'env="{d.env}"') == 1, d.env


def test_serve_help_lists_every_flag_bearing_setting(capsys: pytest.CaptureFixture[str]) -> None:
    declared = declarations()
    serve_help = _help(["serve"], capsys)
    top_help = _help([], capsys)
    for name in flag_names():
        flag = declared[name].flag
        assert flag is not None
        where = top_help if name in serve_cmd.GLOBAL_SETTINGS else serve_help
        assert re.search(rf"(^|\s|\[){re.escape(flag)}(\s|\]|$)", where, re.MULTILINE), flag
        assert declared[name].env_name in where
    for section in {declared[n].section for n in serve_cmd.serve_settings()}:
        assert f"\n{section}:\n" in serve_help  # grouped by section


def _sample(name: str, default: Any) -> tuple[str, Any]:
    """An environment text for the setting and the value it must give (different from the default)."""
    special: dict[str, tuple[str, Any]] = {
        "fixed_time": ("2024-09-07T14:37:39Z", dt.datetime(2024, 9, 7, 14, 37, 39, tzinfo=dt.UTC)),
        "signing_keys": ("a.pem", (Path("a.pem"),)),
        "audit_checkpoint_keys": ("k1,k2", (Path("k1"), Path("k2"))),
        "admin_token_sha256": ("AB,cd", ("ab", "cd")),
        "selectable_policies": ("p1, p2", ("p1", "p2")),
        "admin_cert_role": ("auditor", "auditor"),
        "event_loop": ("asyncio", "asyncio"),
    }
    if name in special:
        return special[name]
    if isinstance(default, bool):
        return ("0", False) if default else ("1", True)
    if isinstance(default, Rate):
        return "3:4", Rate(3.0, 4)
    if isinstance(default, dt.timedelta):
        return "11", dt.timedelta(seconds=11)
    if isinstance(default, int | float):
        return "11", 11
    if default is None and "Path" in _annotation(name):
        return "some/where", Path("some/where")
    return "text", "text"


def _annotation(name: str) -> str:
    return str(next(f.type for f in dataclasses.fields(Settings) if f.name == name))


@pytest.mark.parametrize("name", sorted(declarations()))
def test_the_environment_loader_reads_every_declared_setting(name: str) -> None:
    declared = declarations()[name]
    text, expected = _sample(name, getattr(Settings(), name))
    settings = from_environment({declared.env_name: text})
    assert getattr(settings, name) == expected
    assert getattr(settings, name) != getattr(Settings(), name)
    untouched = [f.name for f in dataclasses.fields(Settings) if f.name != name]
    assert all(getattr(settings, n) == getattr(Settings(), n) for n in untouched)


def test_flags_and_environment_agree() -> None:
    """The same value given as a flag or as its variable makes the same Settings."""
    pairs = [
        ("--db", "postgresql://x/y"),
        ("--drain-seconds", "2.5"),
        ("--collateral-refresh", "0"),
        ("--rate-appraise-global", "9:3"),
        ("--rate-challenge-per-client", "0"),
        ("--max-concurrent-rpcs", "9"),
        ("--admin-token-sha256", "ABCD"),
        ("--selectable-policy", "prod"),
        ("--signing-key", "k.pem"),
        ("--token-lifetime", "60"),
    ]
    by_flag = {d.flag: (n, d) for n, d in declarations().items()}
    parser = build_parser()
    for flag, value in pairs:
        name, declared = by_flag[flag]
        args = parser.parse_args(["serve", flag, value])
        assert apply_flags(Settings(), args, [name]) == from_environment({declared.env_name: value}), flag
    args = parser.parse_args(["serve", "--no-check-crl", "--offline", "--dev"])
    env = {ENV_PREFIX + "CHECK_CRL": "0", ENV_PREFIX + "OFFLINE": "1", ENV_PREFIX + "DEVELOPMENT": "1"}
    assert apply_flags(Settings(), args, serve_cmd.serve_settings()) == from_environment(env)
    # Flags not given leave the base (environment) settings alone.
    base = from_environment({ENV_PREFIX + "LISTEN": "0.0.0.0:1"})
    assert apply_flags(base, parser.parse_args(["serve"]), serve_cmd.serve_settings()) == base
