"""A caching `CollateralSource`: in-process LRU, then the shared database table, then the inner source.

Freshness (ARCHITECTURE.md "Collateral freshness"):

- Hard limit: an item is served only while `at < next_update` (a VCEK until its notAfter, a CRL until its
  nextUpdate: AMD pub. 57230 CRLs must be refetched once past nextUpdate; Intel TCB info and QE identity until
  their nextUpdate). Past it nothing is served.
- Soft refresh: revocation lists and Intel TCB info / QE identity (kinds `amd.crl`, `intel.*`) are refetched once
  they were fetched `refresh` ago (default one hour), so a new CRL or a TCB recovery reaches verdicts within
  hours rather than at nextUpdate (30 days for Intel TCB info). Certificates (`amd.vcek`, `amd.cert_chain`) keep
  their notAfter. While one caller refreshes a key, others are served the cached copy.
- Stale-while-error: when the refetch fails (vendor down), the cached copy keeps serving until its nextUpdate,
  with a warning; the vendor is asked again after `retry_backoff`, not on every appraisal.
- No rollback: a refetch that returns an older version than the cached one (`ordering.version_of`: CRL number /
  thisUpdate, tcbEvaluationDataNumber / issueDate) is dropped and the cached copy kept; when the cached copy is
  past nextUpdate as well, the fetch fails with COLLATERAL_ROLLBACK. The database keeps the newer of what the
  memory and the table hold, so replicas do not roll each other back either (the order is recomputed from the
  stored bytes: no extra column).

Concurrent misses for one key are coalesced into a single load (database lookup + inner fetch); every waiter gets
that load's item or its error. A database that is down degrades to "no shared cache", never to a failed fetch.
The refresh age is measured on the injected `clock` (wall time, `fetched_at` is stamped with it); `at`, the
appraisal time, only decides validity.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections import OrderedDict

from ..clock import Clock, SystemClock
from ..errors import UnavailableError
from ..storage.collateral import SqlCollateralCache
from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from .ordering import version_of

log = logging.getLogger(__name__)

DEFAULT_REFRESH = dt.timedelta(hours=1)
DEFAULT_RETRY_BACKOFF = dt.timedelta(minutes=5)
# After a failed fetch of an item nothing is cached for, the same error is answered at once for this long, so a
# vendor outage does not make every appraisal wait out the HTTP timeouts again (request collateral is compared
# with the verifier's own, so an outage would otherwise slow down even requests that carry everything).
DEFAULT_FAILURE_BACKOFF = dt.timedelta(seconds=15)
REFRESHED_KINDS = frozenset({"amd.crl"})
REFRESHED_VENDORS = ("intel.",)


def refreshes(kind: str) -> bool:
    """True for the kinds refetched ahead of nextUpdate: revocation lists, Intel TCB info and QE identity."""
    return kind in REFRESHED_KINDS or kind.startswith(REFRESHED_VENDORS)


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.item: CollateralItem | None = None
        self.error: BaseException | None = None


class CachedSource:
    def __init__(self, inner: CollateralSource, cache: SqlCollateralCache | None, *,
                 max_memory_items: int = 1024, refresh: dt.timedelta = DEFAULT_REFRESH,
                 retry_backoff: dt.timedelta = DEFAULT_RETRY_BACKOFF, clock: Clock | None = None,
                 failure_backoff: dt.timedelta = DEFAULT_FAILURE_BACKOFF) -> None:
        if refresh < dt.timedelta(0) or retry_backoff < dt.timedelta(0):
            raise ValueError("refresh and retry_backoff must not be negative")
        self._inner = inner
        self._cache = cache
        self._max = max_memory_items
        self._refresh = refresh
        self._backoff = retry_backoff
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, CollateralItem] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._retry_at: dict[str, dt.datetime] = {}
        self._failure_backoff = failure_backoff
        self._failed: dict[str, tuple[dt.datetime, CollateralUnavailableError]] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        cache_id = key.cache_id()
        now = self._clock.now()
        with self._lock:
            item = self._memory.get(cache_id)
            flight = self._flights.get(cache_id)
            if item is not None and _valid(item, at) and (
                    not self._due(item, now) or flight is not None or now < self._retry_at.get(cache_id, now)):
                self._memory.move_to_end(cache_id)
                return _as_hit(item)
            failed = self._failed.get(cache_id)
            if failed is not None and now < failed[0] and flight is None:
                raise CollateralUnavailableError(failed[1].code, f"{failed[1].message} (remembered until "
                                                 f"{_rfc3339(failed[0])})", retry_after=failed[1].retry_after)
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
            flight.item = self._load(key, cache_id, at, now, item)
            return flight.item
        except BaseException as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[cache_id]
            flight.done.set()

    def _due(self, item: CollateralItem, now: dt.datetime) -> bool:
        return refreshes(item.key.kind) and now - item.fetched_at >= self._refresh

    def _load(self, key: CollateralKey, cache_id: str, at: dt.datetime, now: dt.datetime,
              remembered: CollateralItem | None) -> CollateralItem:
        stored = self._db_get(cache_id)
        if stored is not None:
            stored = dataclasses.replace(stored, key=key)
        cached = _newest(remembered, stored)
        if cached is not None and _valid(cached, at) and not self._due(cached, now):
            self._remember(cache_id, cached)
            if cached is not stored:
                self._db_put(cached)  # the table held an older version (or none)
            return _as_hit(cached)
        try:
            fetched = self._inner.fetch(key, at=at)
        except CollateralUnavailableError as error:
            if cached is None or not _valid(cached, at):
                if self._failure_backoff > dt.timedelta(0):
                    with self._lock:
                        self._failed[cache_id] = (now + self._failure_backoff, error)
                        while len(self._failed) > self._max:
                            self._failed.pop(next(iter(self._failed)))
                raise
            log.warning("collateral refresh of %s failed (%s): serving the cached copy until its nextUpdate %s",
                        cache_id, error.code, _rfc3339(cached.next_update))
            with self._lock:
                self._retry_at[cache_id] = now + self._backoff
            self._remember(cache_id, cached)
            return _as_hit(cached)
        with self._lock:
            self._retry_at.pop(cache_id, None)
            self._failed.pop(cache_id, None)
        fetched = dataclasses.replace(fetched, fetched_at=now)
        if cached is not None and _older(fetched, cached):
            log.warning("collateral refresh of %s returned an older version than the cached one: keeping the "
                        "cached copy", cache_id)
            if not _valid(cached, at):
                raise CollateralUnavailableError(
                    "COLLATERAL_ROLLBACK", f"{key.kind}: the vendor served an older version than one already seen, "
                    "and that one is past its nextUpdate")
            kept = dataclasses.replace(cached, fetched_at=now)  # checked now: the next refresh is `refresh` away
            self._remember(cache_id, kept)
            self._db_put(kept)
            return _as_hit(kept)
        if fetched.next_update is not None:
            self._remember(cache_id, fetched)
            self._db_put(fetched)
        return fetched

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
        if self._cache is None or item.next_update is None:
            return
        try:
            self._cache.put(item)
        except UnavailableError as error:
            log.warning("collateral cache write skipped: %s", error)


def _valid(item: CollateralItem, at: dt.datetime) -> bool:
    return item.next_update is not None and at < item.next_update


def _older(item: CollateralItem, than: CollateralItem) -> bool:
    """True when both versions are known and `item` is the older (unknown order: not older)."""
    mine, theirs = version_of(item.key.kind, item.data), version_of(than.key.kind, than.data)
    return mine is not None and theirs is not None and mine.older_than(theirs)


def _newest(a: CollateralItem | None, b: CollateralItem | None) -> CollateralItem | None:
    """The newer of two cached copies of one key: by version, else the later fetched."""
    if a is None or b is None:
        return a or b
    if _older(a, b):
        return b
    if _older(b, a):
        return a
    return b if b.fetched_at > a.fetched_at else a


def _as_hit(item: CollateralItem) -> CollateralItem:
    return item if item.source == "cache" else dataclasses.replace(item, source="cache")


def _rfc3339(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "none"
