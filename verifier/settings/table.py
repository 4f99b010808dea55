"""The field table: every setting declared once, as a field of `Settings` made by `_setting(...)` with its
default, section, environment name (VERIFIER_ + `env`), the parser of that variable and, when it has one, its
command-line flag, argparse keywords and help. The parsers and flag types are in `parsers.py`; the fields, by
concern, in `appraisal_fields.py`, `server_fields.py` and `collateral_fields.py`, each made by `field.py`'s
`_setting`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .appraisal_fields import AppraisalFields
from .collateral_fields import CollateralFields
from .field import SECTIONS as SECTIONS
from .field import _setting as _setting
from .server_fields import ServerFields


@dataclass(frozen=True)
class Settings(CollateralFields, ServerFields, AppraisalFields):
    """Every setting: the fields of the three bases (appraisal, server, collateral), then `extra`."""

    # Not a setting: room for callers (tests) to carry more; never read from the environment or flags.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
