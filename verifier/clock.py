"""Injected time. Every appraisal reads the clock once and uses that instant everywhere."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that always answers the same instant (tests, `verify --at`)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self._at


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (``Z`` or an offset is required) into UTC. Raises ValueError for text that is
    not one, has no zone, or names an instant outside datetime's range in UTC (`as_utc`)."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone; use RFC 3339 such as 2024-01-01T00:00:00Z")
    return as_utc(value)


def parse_iso_utc(text: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 timestamp ("Z" or an offset; none is taken as UTC) in UTC, as vendor collateral
    writes them. Raises ValueError for text that is not one or names an instant outside datetime's range in UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else as_utc(value)


def as_utc(value: dt.datetime) -> dt.datetime:
    """The aware `value` in UTC. Raises ValueError (not OverflowError) when that instant is outside datetime's range,
    as "0001-01-01T00:00:00+01:00" or "9999-12-31T23:59:59-01:00" are: hostile input must meet the ValueError every
    caller already handles."""
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the range of representable instants in UTC") from None


def to_rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
