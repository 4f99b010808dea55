"""The loads in progress of the collateral cache (`cache.CachedSource`): concurrent misses for one key share one
load, run on the fetch pool (never in a caller's thread); every waiter gets that load's item or its error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .base import CollateralItem, CollateralUnavailableError
from .fetch_pool import FetchPool

BUSY_RETRY_AFTER = 1.0


class Flight:
    """One load of a key: `started` on the monotonic clock, `done` once `item` or `error` is set."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.item: CollateralItem | None = None
        self.error: BaseException | None = None


class Flights:
    """The loads in progress by cache id. The owner holds `lock` around `get` and `begin` (together with what else
    it guards); `finish` takes it."""

    def __init__(self, lock: threading.Lock, pool: FetchPool) -> None:
        self._lock, self._pool = lock, pool
        self._loads: dict[str, Flight] = {}

    def get(self, cache_id: str) -> Flight | None:
        """The load of `cache_id` in progress, if any."""
        return self._loads.get(cache_id)

    def begin(self, cache_id: str) -> Flight:
        """A new load of `cache_id`, the one later callers join until it finishes."""
        flight = self._loads[cache_id] = Flight()
        return flight

    def start(self, flight: Flight, cache_id: str, kind: str, load: Callable[[], CollateralItem]) -> bool:
        """Hand `load` for `flight` to the pool; False when the pool is full or closed (nothing started). A load
        still queued when the pool closes finishes with COLLATERAL_BUSY."""

        def run() -> None:
            try:
                item = load()
            except BaseException as error:
                self.finish(flight, cache_id, error=error)
                if not isinstance(error, CollateralUnavailableError):
                    raise  # logged by the pool (the waiters, if any, get it too)
            else:
                self.finish(flight, cache_id, item=item)

        def cancel() -> None:
            self.finish(
                flight,
                cache_id,
                error=CollateralUnavailableError(
                    "COLLATERAL_BUSY", f"{kind}: the collateral fetcher shut down", retry_after=BUSY_RETRY_AFTER
                ),
            )

        return self._pool.submit(run, cancel=cancel)

    def finish(
        self, flight: Flight, cache_id: str, *, item: CollateralItem | None = None, error: BaseException | None = None
    ) -> None:
        """End `flight` with `item` or `error` and wake its waiters; later misses start a new load."""
        flight.item, flight.error = item, error
        with self._lock:
            if self._loads.get(cache_id) is flight:
                del self._loads[cache_id]
        flight.done.set()
