"""The collateral seam. TEE verifiers ask a `CollateralSource` for vendor collateral by key; implementations are
the AMD KDS client, (Intel PCS later), an offline directory, and a database-backed cache that wraps them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..blocking import would_block
from ..errors import UnavailableError


@dataclass(frozen=True)
class CollateralKey:
    """What to fetch. `kind` names the item, `params` identify it, e.g.
    ("amd.vcek", (("product", "Milan"), ("hwid", "<hex>"), ("blSPL", "2"), ...)),
    ("amd.cert_chain", (("product", "Milan"), ("key", "vcek"))), ("amd.crl", (("product", "Milan"),))."""

    kind: str
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(name)

    def cache_id(self) -> str:
        """A stable text id for caches: kind?k=v&k=v (params in the given order)."""
        return self.kind + ("?" + "&".join(f"{k}={v}" for k, v in self.params) if self.params else "")


@dataclass(frozen=True)
class CollateralItem:
    key: CollateralKey
    data: bytes
    # When it was fetched from the vendor (cache.CachedSource stamps it with its clock and measures the soft-refresh
    # age of CRLs and Intel TCB info / QE identity from it).
    fetched_at: dt.datetime
    # Until when the item may be served from a cache: a CRL's nextUpdate, a certificate's notAfter, or a
    # fixed maximum age for items without one. None: do not cache.
    next_update: dt.datetime | None
    source: str  # "request", "kds", "cache", "offline"...


class CollateralUnavailableError(UnavailableError):
    """The source could not deliver (offline, network error, timeout, 429 past the retry budget, 404); carries
    `retry_after` seconds when the vendor or the cache says when to ask again."""


class CollateralSource(Protocol):
    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """Return the item or raise CollateralUnavailableError. `at` is the appraisal time (for cache freshness)."""
        ...


class OfflineSource:
    """Never touches the network: every fetch is unavailable (the `--offline` source)."""

    guards_blocking = True  # never waits on anything (see `guarded`)

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        raise CollateralUnavailableError(
            "COLLATERAL_OFFLINE", f"{key.kind} is not in the request and the verifier is offline"
        )


class CollateralObserver(Protocol):
    """What a caching source reports (`verifier.metrics.Metrics` implements it); never raises. `vendor` is
    `routing.vendor_of` the key's kind; `outcome` "hit" (`detail`: the tier, "memory" or "database"), "miss" (the
    vendor is asked) or "error" (`detail`: the CollateralUnavailableError code of a fetch that failed)."""

    def collateral(self, vendor: str, outcome: str, detail: str = "") -> None: ...


@runtime_checkable
class RejectingSource(Protocol):
    """A source that can be told that an item it delivered failed verification (`cache.CachedSource`)."""

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        """Forget `item` (memory and shared cache) so that a later fetch asks the vendor again, with backoff."""
        ...


def reject(source: CollateralSource, item: CollateralItem, *, reason: str) -> None:
    """Tell `source` that `item`, which it delivered, does not verify (`reason`: the EvidenceError code). Sources
    that keep nothing ignore it. Call it only for failures that do not depend on the request (the item against
    the pinned trust anchors, or the item not parsing), so that a caller cannot evict good collateral."""
    if isinstance(source, RejectingSource):
        source.reject(item, reason=reason)


class _Guarded:
    """A source that does not call `verifier.blocking.would_block` itself, behind one that does before every fetch
    (`guarded`); rejections go through to it."""

    guards_blocking = True

    def __init__(self, inner: CollateralSource) -> None:
        self.inner = inner

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        would_block("a collateral fetch")
        return self.inner.fetch(key, at=at)

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        reject(self.inner, item, reason=reason)


def guarded(source: CollateralSource) -> CollateralSource:
    """`source` itself when it calls `verifier.blocking.would_block` before any I/O (its class says
    `guards_blocking = True`: the cache, the offline source, the RIM directory), else wrapped so that every fetch
    counts as one that would block: an appraisal evaluated on the event loop never waits on an unknown source.
    Outside `verifier.blocking.no_blocking` the wrapper only passes the fetch on. Never raises."""
    return source if getattr(source, "guards_blocking", False) else _Guarded(source)
