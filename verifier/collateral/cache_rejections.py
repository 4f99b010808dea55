"""Rejected collateral (`cache.CachedSource.reject`): the last rejection of each key, and when the vendor may be
asked for that key again. The backoff doubles per rejection repeated within twice `backoff_max` of the previous one,
up to `backoff_max`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Rejection:
    """The last rejection of a key: the `count`-th in a row, the vendor not asked again before `until`."""

    digest: bytes  # SHA-256 of the rejected bytes
    at: dt.datetime
    until: dt.datetime  # no vendor fetch for the key before this
    count: int
    reason: str


class Rejections:
    """The last rejection by cache id, at most `capacity` (the first recorded goes first). Not thread-safe: its
    owner holds its own lock around every call."""

    def __init__(self, capacity: int, *, backoff: dt.timedelta, backoff_max: dt.timedelta) -> None:
        self._capacity, self._backoff, self._backoff_max = capacity, backoff, backoff_max
        self._last: dict[str, Rejection] = {}

    def get(self, cache_id: str) -> Rejection | None:
        """The last rejection of `cache_id`, if any."""
        return self._last.get(cache_id)

    def record(self, cache_id: str, digest: bytes, now: dt.datetime, reason: str) -> Rejection:
        """Record that the bytes with SHA-256 `digest` were rejected at `now` for `reason`; returns the rejection,
        whose `until` is when the vendor may be asked again."""
        previous = self._last.get(cache_id)
        again = previous is not None and now - previous.at < 2 * self._backoff_max
        count = previous.count + 1 if previous is not None and again else 1
        wait = min(self._backoff * 2 ** min(count - 1, 20), self._backoff_max)
        rejection = self._last[cache_id] = Rejection(digest, now, now + wait, count, reason)
        while len(self._last) > self._capacity:
            self._last.pop(next(iter(self._last)))
        return rejection
