"""How one setting is read: its `Declaration` (section, VERIFIER_ name, parser, flag, help)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "VERIFIER_"


@dataclass(frozen=True)
class Declaration:
    """How one setting is read: `VERIFIER_<env>` through `parse` (non-empty text to a value, raises ConfigError),
    and, with a `flag`, the argparse keywords `options` (type, action, metavar, choices) and `from_flag` (the parsed
    flag to a value; None keeps the setting as it is)."""

    section: str
    env: str
    parse: Callable[[str], Any]
    help: str
    flag: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    from_flag: Callable[[Any], Any] | None = None

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.env
