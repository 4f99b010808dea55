"""Settings, read once. This is the only package that reads the environment.

Every setting is declared once, as a field of `Settings` (the field table, `table.py`): its default, section,
environment name (VERIFIER_ + `env`), the parser of that variable (`parsers.py`) and, when it has one, its
command-line flag, argparse keywords and help. `from_environment` reads every declared variable, `add_flags` adds
the flags of the named settings to an argparse parser (one argument group per section) and `apply_flags` copies
parsed flags onto a `Settings` (`loading.py`).
"""

from __future__ import annotations

from .declaration import ENV_PREFIX, Declaration
from .loading import add_flags, apply_flags, declarations, flag_names, from_environment
from .parsers import Rate, collateral_refresh, drain_seconds, rate
from .table import SECTIONS, Settings

__all__ = [
    "ENV_PREFIX",
    "SECTIONS",
    "Declaration",
    "Rate",
    "Settings",
    "add_flags",
    "apply_flags",
    "collateral_refresh",
    "declarations",
    "drain_seconds",
    "flag_names",
    "from_environment",
    "rate",
]
