"""Setting values from text: `Rate`, the parsers of VERIFIER_* variables and the argparse types of the flags.

Each environment parser takes the variable's non-empty text and raises ConfigError SETTING_INVALID; each flag type
raises argparse.ArgumentTypeError (exit 64 with the message). The table (`table.py`) names them per setting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import parse_rfc3339
from ..errors import ConfigError
from ..event_loop import parse_choice


@dataclass(frozen=True)
class Rate:
    """A token bucket: `per_second` tokens a second, at most `burst` held. 0 (either) means unlimited."""

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_second > 0 and self.burst > 0


# Environment parsers: each takes the variable's non-empty text and raises ConfigError SETTING_INVALID.


def _text(value: str) -> str:
    return value


def _path(value: str) -> Path:
    return Path(value)


def _event_loop(value: str) -> str:
    """VERIFIER_EVENT_LOOP: `event_loop.parse_choice` (auto, uvloop or asyncio, any case). Raises ConfigError
    SETTING_INVALID otherwise."""
    return parse_choice(value)


def _pathsep_paths(value: str) -> tuple[Path, ...]:
    """VERIFIER_SIGNING_KEY: files separated by os.pathsep."""
    return tuple(Path(p) for p in value.split(os.pathsep))


def _paths(value: str) -> tuple[Path, ...]:
    """A comma-separated list of file paths (VERIFIER_AUDIT_CHECKPOINT_KEYS)."""
    return tuple(Path(p.strip()) for p in value.split(",") if p.strip())


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated list of names (VERIFIER_SELECTABLE_POLICIES)."""
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _digests(value: str) -> tuple[str, ...]:
    """VERIFIER_ADMIN_TOKEN_SHA256: comma-separated hex digests, lower-cased."""
    return tuple(t.strip().lower() for t in value.split(",") if t.strip())


def _flag(value: str) -> bool:
    return value.lower() in ("1", "true", "yes", "on")


def _int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError("SETTING_INVALID", f"expected a non-negative integer, got {value[:20]!r}")
    return number


def _seconds(value: str) -> dt.timedelta:
    """VERIFIER_TOKEN_LIFETIME / VERIFIER_CHALLENGE_TTL: positive seconds (ConfigError otherwise)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 365 * 86400:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"expected positive seconds, got {value[:20]!r}")
    return dt.timedelta(seconds=seconds)


def _float_seconds(value: str, *, high: float, what: str, positive: bool = False) -> float:
    """Seconds in 0..`high` (more than 0 when `positive`); raises ConfigError SETTING_INVALID."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (0 < seconds if positive else 0 <= seconds) or not seconds <= high:  # also refuses nan and inf
        low = "more than 0" if positive else "0"
        raise ConfigError("SETTING_INVALID", f"{what} must be {low}..{high:g} seconds, got {value[:20]!r}")
    return seconds


def _instant(value: str) -> dt.datetime:
    """VERIFIER_FIXED_TIME / --at: an RFC 3339 timestamp with its zone ("Z" or an offset), in UTC."""
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise ConfigError(
            "SETTING_INVALID", f"expected an RFC 3339 time such as 2024-01-01T00:00:00Z, got {value[:40]!r}"
        ) from None


def _grace_seconds(value: str) -> float:
    """VERIFIER_GRACE_SECONDS: 0..3600 seconds."""
    return _float_seconds(value, high=3600, what="grace")


def _collateral_timeout(value: str) -> float:
    """VERIFIER_COLLATERAL_TIMEOUT_S: more than 0, at most 3600 seconds."""
    return _float_seconds(value, high=3600, what="collateral timeout", positive=True)


def collateral_refresh(value: str | float | None) -> dt.timedelta | None:
    """VERIFIER_COLLATERAL_REFRESH_SECONDS / --collateral-refresh: non-negative seconds (ConfigError otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 365 * 86400:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"collateral refresh must be 0..31536000 seconds, got {str(value)[:20]!r}")
    return dt.timedelta(seconds=seconds)


def drain_seconds(value: str | float | None) -> float | None:
    """VERIFIER_DRAIN_SECONDS / --drain-seconds: 0..3600 seconds (ConfigError otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"drain must be 0..3600 seconds, got {str(value)[:20]!r}")
    return seconds


def rate(value: str | None) -> Rate | None:
    """VERIFIER_RATE_* / --rate-*: `RATE[:BURST]`, RATE calls a second (0 disables), BURST at least 1 (default
    twice RATE, at least 1). Raises ConfigError SETTING_INVALID otherwise."""
    if value is None:
        return None
    text, _, burst_text = value.strip().partition(":")
    try:
        per_second = float(text)
        burst = int(burst_text) if burst_text else max(1, math.ceil(2 * per_second))
    except (ValueError, OverflowError):
        per_second, burst = -1.0, 0
    if per_second == 0:
        return Rate(0.0, 0)
    if not 0 < per_second <= 1e6 or not 1 <= burst <= 10**7:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"a rate is RATE[:BURST] (calls a second, 0 disables), got {value[:20]!r}")
    return Rate(per_second, burst)


# Flag types: argparse wants ArgumentTypeError for a bad value (exit 64 with the message).


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    convert.__name__ = parse.__name__.lstrip("_")
    return convert


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise argparse.ArgumentTypeError(f"expected an integer 0..100000, got {text[:20]!r}")
    return int(text)


def _timedelta_or_none(seconds: float) -> dt.timedelta | None:
    """--challenge-ttl / --token-lifetime: seconds; 0 keeps the setting."""
    return dt.timedelta(seconds=seconds) if seconds else None


def _lowered(values: list[str]) -> tuple[str, ...]:
    return tuple(v.lower() for v in values)


_RATE_FLAG: dict[str, Any] = {"type": _argument(rate), "metavar": "RATE[:BURST]"}
