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

- Rejection: a TEE verifier that finds an item it was served does not verify (e.g. a VCEK not signed by the
  pinned chain) calls `reject(item)`: the copy leaves memory and the shared table (other replicas and a restart
  refetch too), and the vendor is asked again, but not before `reject_backoff` (doubling per repeated rejection
  up to `reject_backoff_max`): meanwhile the key fails with COLLATERAL_REJECTED, and a copy with the rejected
  bytes is never served again by this process.
- Lifetime cap: any item fetched `max_age` ago (default 7 days) is refetched like a due CRL (stale-while-error
  still serves it until its own nextUpdate when the vendor is down).

Concurrent misses for one key are coalesced into a single load (database lookup + inner fetch); every waiter gets
that load's item or its error. A database that is down degrades to "no shared cache", never to a failed fetch.
The refresh age is measured on the injected `clock` (wall time, `fetched_at` is stamped with it); `at`, the
appraisal time, only decides validity.

Loads never run in the caller's thread (vendor fetches must not block request handling): a miss hands the load to
a bounded pool of daemon threads (`fetch_pool`, `fetch_workers` threads, at most `fetch_queue` loads waiting) and
every caller of the key, first or joining, waits for it at most until `fetch_wait` seconds (monotonic time) after
the load began (so callers joining a load that already hangs fail at once). Past that it
fails with COLLATERAL_TIMEOUT (retry_after 1 s) while the load goes on and, when it succeeds, fills the cache for
later callers. With `fetch_queue` loads already waiting, a new miss fails at once with COLLATERAL_BUSY (retry_after
1 s). A caller that holds a copy still valid at `at` (a due refresh) is served it instead of either error. Hits
are answered in the caller's thread. `close()` stops the pool without waiting for fetches in progress; misses fail
with COLLATERAL_BUSY afterwards.

The parts are modules of their own: `cache_memory` (the LRU), `cache_db` (the shared table), `cache_rules`
(validity, refresh, version order), `cache_rejections` (rejections and their backoff) and `cache_flights` (the
coalesced loads); `CachedSource` runs them, `_load` with one method per tier.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading
import time
from functools import partial

from ..blocking import would_block
from ..clock import Clock, SystemClock
from .base import CollateralItem, CollateralKey, CollateralObserver, CollateralSource, CollateralUnavailableError
from .cache_db import CollateralTable, DatabaseTier
from .cache_flights import BUSY_RETRY_AFTER as BUSY_RETRY_AFTER
from .cache_flights import Flights
from .cache_memory import MemoryTier
from .cache_rejections import Rejection, Rejections
from .cache_rules import REFRESHED_KINDS as REFRESHED_KINDS
from .cache_rules import REFRESHED_VENDORS as REFRESHED_VENDORS
from .cache_rules import as_hit, due, newest, older, rfc3339, valid
from .cache_rules import refreshes as refreshes
from .fetch_pool import FetchPool
from .routing import vendor_of

log = logging.getLogger(__name__)
_newest = newest  # its name before the split (tests/unit/collateral/test_mutants_collateral_challenges.py)

DEFAULT_REFRESH = dt.timedelta(hours=1)
DEFAULT_RETRY_BACKOFF = dt.timedelta(minutes=5)
# After a failed fetch of an item nothing is cached for, the same error is answered at once for this long, so a
# vendor outage does not make every appraisal wait out the HTTP timeouts again (request collateral is compared
# with the verifier's own, so an outage would otherwise slow down even requests that carry everything).
DEFAULT_FAILURE_BACKOFF = dt.timedelta(seconds=15)
DEFAULT_MAX_AGE = dt.timedelta(days=7)
DEFAULT_REJECT_BACKOFF = dt.timedelta(seconds=30)
DEFAULT_REJECT_BACKOFF_MAX = dt.timedelta(minutes=15)
DEFAULT_FETCH_WORKERS = 4
DEFAULT_FETCH_QUEUE = 32
DEFAULT_FETCH_WAIT = 5.0


class CachedSource:
    guards_blocking = True  # calls verifier.blocking.would_block before any I/O (collateral.base.guarded)

    def __init__(
        self,
        inner: CollateralSource,
        cache: CollateralTable | None,
        *,
        max_memory_items: int = 1024,
        refresh: dt.timedelta = DEFAULT_REFRESH,
        retry_backoff: dt.timedelta = DEFAULT_RETRY_BACKOFF,
        clock: Clock | None = None,
        failure_backoff: dt.timedelta = DEFAULT_FAILURE_BACKOFF,
        max_age: dt.timedelta = DEFAULT_MAX_AGE,
        reject_backoff: dt.timedelta = DEFAULT_REJECT_BACKOFF,
        reject_backoff_max: dt.timedelta = DEFAULT_REJECT_BACKOFF_MAX,
        fetch_workers: int = DEFAULT_FETCH_WORKERS,
        fetch_queue: int = DEFAULT_FETCH_QUEUE,
        fetch_wait: float = DEFAULT_FETCH_WAIT,
    ) -> None:
        """`cache`: the replicas' shared table (`cache_db.CollateralTable`; the composition root injects
        storage.collateral.SqlCollateralCache), None for no shared cache. Raises ValueError for a negative
        duration, `fetch_workers` < 1, `fetch_queue` < 0 or `fetch_wait` <= 0. Starts no thread (the pool starts
        its workers on the first miss)."""
        if refresh < dt.timedelta(0) or retry_backoff < dt.timedelta(0):
            raise ValueError("refresh and retry_backoff must not be negative")
        if max_age <= dt.timedelta(0) or reject_backoff < dt.timedelta(0) or reject_backoff_max < reject_backoff:
            raise ValueError("max_age must be positive, 0 <= reject_backoff <= reject_backoff_max")
        if not fetch_wait > 0:
            raise ValueError("fetch_wait must be positive")
        self._pool = FetchPool(workers=fetch_workers, queue=fetch_queue)
        self._fetch_wait = fetch_wait
        self._max_age = max_age
        self._rejected = Rejections(max_memory_items, backoff=reject_backoff, backoff_max=reject_backoff_max)
        self._inner = inner
        self._database = DatabaseTier(cache)
        self._max = max_memory_items
        self._refresh = refresh
        self._backoff = retry_backoff
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()  # guards the memory tier, the rejections, the flights and the dicts below
        self._memory = MemoryTier(max_memory_items)
        self._flights = Flights(self._lock, self._pool)
        self._retry_at: dict[str, dt.datetime] = {}
        self._failure_backoff = failure_backoff
        self._failed: dict[str, tuple[dt.datetime, CollateralUnavailableError]] = {}
        self.observer: CollateralObserver | None = None  # hits, misses, fetch errors (the server's metrics)

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """The item for `key` valid at `at`: from memory in this thread, else from a load on the fetch pool
        (module docstring). Raises CollateralUnavailableError: the inner source's error (or a remembered one),
        COLLATERAL_REJECTED, COLLATERAL_ROLLBACK, COLLATERAL_TIMEOUT past `fetch_wait`, COLLATERAL_BUSY when the
        pool is full or closed."""
        cache_id = key.cache_id()
        now = self._clock.now()
        with self._lock:
            item = self._memory.get(cache_id)
            flight = self._flights.get(cache_id)
            if (
                item is not None
                and valid(item, at)
                and (not self._due(item, now) or flight is not None or now < self._retry_at.get(cache_id, now))
            ):
                self._memory.touch(cache_id)
                self._observe(key, "hit", "memory")
                return as_hit(item)
            failed = self._failed.get(cache_id)
            if failed is not None and now < failed[0] and flight is None:
                raise CollateralUnavailableError(
                    failed[1].code,
                    f"{failed[1].message} (remembered until {rfc3339(failed[0])})",
                    retry_after=failed[1].retry_after,
                )
            would_block("a collateral load")  # not a memory hit: the database tier or the vendor (inline: none)
            leader = flight is None
            if flight is None:
                flight = self._flights.begin(cache_id)
        if leader and not self._flights.start(
            flight, cache_id, key.kind, partial(self._load, key, cache_id, at, now, item)
        ):
            self._flights.finish(flight, cache_id, error=self._busy(key))
        # Wait at most `fetch_wait` after the load began: a caller joining a load that already hangs fails at once.
        if not flight.done.wait(max(0.0, flight.started + self._fetch_wait - time.monotonic())):
            if item is not None and valid(item, at) and not self._is_rejected(cache_id, item):
                return as_hit(item)  # a due refresh that is slow: the cached copy is still good
            self._observe(key, "error", "COLLATERAL_TIMEOUT")
            raise CollateralUnavailableError(
                "COLLATERAL_TIMEOUT",
                f"{key.kind} did not arrive within {self._fetch_wait:g}s; the fetch goes on in the background",
                retry_after=BUSY_RETRY_AFTER,
            )
        if flight.error is not None:
            if (
                leader
                and isinstance(flight.error, CollateralUnavailableError)
                and flight.error.code == "COLLATERAL_BUSY"
                and item is not None
                and valid(item, at)
                and not self._is_rejected(cache_id, item)
            ):
                return as_hit(item)  # no room to refresh now: the cached copy is still good
            raise flight.error
        assert flight.item is not None
        return flight.item

    def _busy(self, key: CollateralKey) -> CollateralUnavailableError:
        """COLLATERAL_BUSY for a miss of `key` the pool has no room for (or is shut down), reported as an error."""
        self._observe(key, "error", "COLLATERAL_BUSY")
        return CollateralUnavailableError(
            "COLLATERAL_BUSY",
            f"{key.kind}: the collateral fetcher is "
            + ("shut down" if self._pool.closed else "at its bound of queued vendor fetches; try again shortly"),
            retry_after=BUSY_RETRY_AFTER,
        )

    def close(self) -> None:
        """Stop the fetch pool without waiting for loads in progress (they end in daemon threads); loads still
        queued fail with COLLATERAL_BUSY, and so do later misses. Hits are still served. Never raises."""
        self._pool.close()

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        """`item` (as this source served it) failed verification with `reason`: drop it from memory and from the
        shared table (only while the row still holds these bytes), and ask the vendor again no earlier than the
        backoff (module docstring). Never raises for a database that is down."""
        cache_id = item.key.cache_id()
        digest = hashlib.sha256(item.data).digest()
        now = self._clock.now()
        with self._lock:
            self._memory.discard(cache_id, digest)
            rejection = self._rejected.record(cache_id, digest, now, reason)
        log.warning(
            "collateral %s failed verification (%s): dropped from the cache, the vendor is asked again after %s",
            cache_id,
            reason,
            rfc3339(rejection.until),
        )
        self._database.delete(cache_id, data=item.data)

    def _is_rejected(self, cache_id: str, item: CollateralItem | None) -> bool:
        if item is None:
            return False
        with self._lock:
            rejection = self._rejected.get(cache_id)
        return rejection is not None and rejection.digest == hashlib.sha256(item.data).digest()

    def _due(self, item: CollateralItem, now: dt.datetime) -> bool:
        return due(item, now, refresh=self._refresh, max_age=self._max_age)

    def _load(
        self, key: CollateralKey, cache_id: str, at: dt.datetime, now: dt.datetime, remembered: CollateralItem | None
    ) -> CollateralItem:
        """One load of `key` on the pool, tier by tier: the newer of the memory copy (`remembered`) and the
        database copy while valid at `at` and not due at `now`; else the inner source's item, or the cached copy
        when that fails (stale-while-error) or is older (no rollback). Raises CollateralUnavailableError."""
        stored = self._stored(key, cache_id)
        if self._is_rejected(cache_id, remembered):
            remembered = None
        cached = newest(remembered, stored)
        if cached is not None and valid(cached, at) and not self._due(cached, now):
            self._observe(key, "hit", "database" if cached is stored else "memory")
            return self._serve_cached(cache_id, cached, write_back=cached is not stored)
        rejection = self._rejection_gate(key, cache_id, at, now, cached)
        try:
            fetched = self._vendor(key, at, now, rejection)
        except CollateralUnavailableError as error:
            stale = self._stale_while_error(cache_id, at, now, cached, error)
            if stale is None:
                raise
            return stale
        return self._accept(key, cache_id, at, now, fetched, cached, rejection)

    def _stored(self, key: CollateralKey, cache_id: str) -> CollateralItem | None:
        """The database tier: the shared table's copy of `key`, unless its bytes were rejected here."""
        stored = self._database.get(cache_id)
        if stored is not None:
            stored = dataclasses.replace(stored, key=key)
        if self._is_rejected(cache_id, stored):
            stored = None
        return stored

    def _serve_cached(self, cache_id: str, cached: CollateralItem, *, write_back: bool) -> CollateralItem:
        """The memory tier keeps `cached`; `write_back`: the table held an older version (or none)."""
        self._remember(cache_id, cached)
        if write_back:
            self._database.put(cached)
        return as_hit(cached)

    def _rejection_gate(
        self, key: CollateralKey, cache_id: str, at: dt.datetime, now: dt.datetime, cached: CollateralItem | None
    ) -> Rejection | None:
        """The key's rejection, if any. Raises COLLATERAL_REJECTED while its backoff runs and no valid copy is held
        (a valid copy is served instead: `_vendor` defers the refresh)."""
        with self._lock:
            rejection = self._rejected.get(cache_id)
        if rejection is not None and now < rejection.until and (cached is None or not valid(cached, at)):
            raise CollateralUnavailableError(
                "COLLATERAL_REJECTED",
                f"{key.kind} from the vendor failed verification ({rejection.reason}); asked "
                f"again after {rfc3339(rejection.until)}",
                retry_after=(rejection.until - now).total_seconds(),
            )
        return rejection

    def _vendor(
        self, key: CollateralKey, at: dt.datetime, now: dt.datetime, rejection: Rejection | None
    ) -> CollateralItem:
        """The inner tier: the vendor's item. Raises CollateralUnavailableError (COLLATERAL_REJECTED while a
        rejection's backoff runs, else the inner source's error)."""
        if rejection is not None and now < rejection.until:
            raise CollateralUnavailableError("COLLATERAL_REJECTED", "refresh deferred after a rejection")
        self._observe(key, "miss")
        try:
            return self._inner.fetch(key, at=at)
        except CollateralUnavailableError as error:
            self._observe(key, "error", error.code)
            raise

    def _observe(self, key: CollateralKey, outcome: str, detail: str = "") -> None:
        if self.observer is not None:
            self.observer.collateral(vendor_of(key.kind), outcome, detail)

    def _stale_while_error(
        self,
        cache_id: str,
        at: dt.datetime,
        now: dt.datetime,
        cached: CollateralItem | None,
        error: CollateralUnavailableError,
    ) -> CollateralItem | None:
        """After the vendor failed with `error`: the cached copy while valid at `at`, asked again after the retry
        backoff; else None (the caller re-raises), the failure remembered for `failure_backoff`."""
        if cached is None or not valid(cached, at):
            if self._failure_backoff > dt.timedelta(0):
                with self._lock:
                    self._failed[cache_id] = (now + self._failure_backoff, error)
                    while len(self._failed) > self._max:
                        self._failed.pop(next(iter(self._failed)))
            return None
        log.warning(
            "collateral refresh of %s failed (%s): serving the cached copy until its nextUpdate %s",
            cache_id,
            error.code,
            rfc3339(cached.next_update),
        )
        with self._lock:
            self._retry_at[cache_id] = now + self._backoff
        self._remember(cache_id, cached)
        return as_hit(cached)

    def _accept(
        self,
        key: CollateralKey,
        cache_id: str,
        at: dt.datetime,
        now: dt.datetime,
        fetched: CollateralItem,
        cached: CollateralItem | None,
        rejection: Rejection | None,
    ) -> CollateralItem:
        """The vendor's `fetched`, stamped `now`, into both tiers; the cached copy instead when `fetched` is older
        (no rollback). Raises COLLATERAL_REJECTED (the rejected bytes again) or COLLATERAL_ROLLBACK (older, and
        the cached copy is past its nextUpdate too)."""
        with self._lock:
            self._retry_at.pop(cache_id, None)
            self._failed.pop(cache_id, None)
        fetched = dataclasses.replace(fetched, fetched_at=now)
        if self._is_rejected(cache_id, fetched):  # the vendor still serves the very bytes that failed
            self.reject(fetched, reason=rejection.reason if rejection is not None else "REJECTED")
            raise CollateralUnavailableError(
                "COLLATERAL_REJECTED", f"{key.kind}: the vendor again served the collateral that failed verification"
            )
        if cached is not None and older(fetched, cached):
            log.warning(
                "collateral refresh of %s returned an older version than the cached one: keeping the cached copy",
                cache_id,
            )
            if not valid(cached, at):
                raise CollateralUnavailableError(
                    "COLLATERAL_ROLLBACK",
                    f"{key.kind}: the vendor served an older version than one already seen, "
                    "and that one is past its nextUpdate",
                )
            kept = dataclasses.replace(cached, fetched_at=now)  # checked now: the next refresh is `refresh` away
            self._remember(cache_id, kept)
            self._database.put(kept)
            return as_hit(kept)
        if fetched.next_update is not None:
            self._remember(cache_id, fetched)
            self._database.put(fetched)
        return fetched

    def _remember(self, cache_id: str, item: CollateralItem) -> None:
        with self._lock:
            self._memory.put(cache_id, item)
