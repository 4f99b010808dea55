"""A caching `CollateralSource`: in-process LRU, then the shared database table, then the inner source.

An item is served from a cache only while `at < next_update` (a VCEK until its notAfter, a CRL until its
nextUpdate: AMD pub. 57230 CRLs must be refetched once past nextUpdate). Concurrent misses for one key are
coalesced into a single load (database lookup + inner fetch); every waiter gets that load's item or its error.
A database that is down degrades to "no shared cache", never to a failed fetch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import OrderedDict

from ..errors import UnavailableError
from ..storage.collateral import SqlCollateralCache
from .base import CollateralItem, CollateralKey, CollateralSource

log = logging.getLogger(__name__)


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.item: CollateralItem | None = None
        self.error: BaseException | None = None


class CachedSource:
    def __init__(self, inner: CollateralSource, cache: SqlCollateralCache | None, *,
                 max_memory_items: int = 1024) -> None:
        self._inner = inner
        self._cache = cache
        self._max = max_memory_items
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, CollateralItem] = OrderedDict()
        self._flights: dict[str, _Flight] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        cache_id = key.cache_id()
        with self._lock:
            item = self._memory.get(cache_id)
            if item is not None and _fresh(item, at):
                self._memory.move_to_end(cache_id)
                return _as_hit(item)
            flight = self._flights.get(cache_id)
            leader = flight is None
            if flight is None:
                flight = self._flights[cache_id] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.item is not None
            return flight.item
        try:
            flight.item = self._load(key, cache_id, at)
            return flight.item
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[cache_id]
            flight.done.set()

    def _load(self, key: CollateralKey, cache_id: str, at: dt.datetime) -> CollateralItem:
        stored = self._db_get(cache_id)
        if stored is not None and _fresh(stored, at):
            stored = dataclasses.replace(stored, key=key)
            self._remember(cache_id, stored)
            return _as_hit(stored)
        item = self._inner.fetch(key, at=at)
        if item.next_update is not None:
            self._remember(cache_id, item)
            self._db_put(item)
        return item

    def _remember(self, cache_id: str, item: CollateralItem) -> None:
        with self._lock:
            self._memory[cache_id] = item
            self._memory.move_to_end(cache_id)
            while len(self._memory) > self._max:
                self._memory.popitem(last=False)

    def _db_get(self, cache_id: str) -> CollateralItem | None:
        if self._cache is None:
            return None
        try:
            return self._cache.get(cache_id)
        except UnavailableError as error:
            log.warning("collateral cache read skipped: %s", error)
            return None

    def _db_put(self, item: CollateralItem) -> None:
        if self._cache is None:
            return
        try:
            self._cache.put(item)
        except UnavailableError as error:
            log.warning("collateral cache write skipped: %s", error)


def _fresh(item: CollateralItem, at: dt.datetime) -> bool:
    return item.next_update is not None and at < item.next_update


def _as_hit(item: CollateralItem) -> CollateralItem:
    return item if item.source == "cache" else dataclasses.replace(item, source="cache")
