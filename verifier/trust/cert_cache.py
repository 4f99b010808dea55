"""A bounded, thread-safe LRU of fully decoded X.509 objects keyed by the exact bytes they were decoded from.

Decoding a certificate or CRL and reading every lazily decoded part of it (`verifier.trust.certs`) is a pure
function of its bytes, and the result (`cryptography` Certificate and CRL objects, tuples of them) is immutable and
safe to share between threads. So the same bytes need decoding once per process: the loaders keep what decoded
successfully here and hand the same object to every later caller. Nothing that depends on time, a nonce or a
revocation decision is kept: validity windows, CRL nextUpdate, signatures and names are checked by the callers on
every appraisal, on the object this returns.

The key is the input `bytes` themselves, not a digest: for 0.7-2 KB inputs a dict lookup by a fresh bytes object
(SipHash of the bytes, then one memcmp on a hit) costs 0.2-0.5 us against 0.9-1.5 us with SHA-256 first. Keys are
hashed with Python's randomised SipHash, so chosen inputs cannot be made to collide.

The bound is on entries and on the total length of the keys: what `cryptography` keeps alive for a decoded
certificate (its Names and extensions are cached on the object once read) is about 11 KB for a typical 0.7 KB
vendor certificate, up to ~35 times the input for a crafted one (thousands of tiny subjectAltNames), so the byte
budget is what bounds memory when the inputs are chosen by an attacker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True)
class CacheInfo:
    """Counters of one `ContentCache`: lookups that hit and missed since the last `clear`, entries held now and
    the total length of their keys."""

    name: str
    hits: int
    misses: int
    entries: int
    key_bytes: int


class ContentCache(Generic[V]):
    """Bounded LRU from exact input bytes to the value decoded from them; thread-safe.

    At most `max_entries` entries and `max_bytes` bytes of keys: the least recently used entries are evicted
    beyond either. An input longer than `max_bytes // 8` is never kept (one input cannot flush the cache). Only the
    callers decide what to put: by contract, only values decoded successfully, which are a pure function of the
    key's bytes and immutable."""

    def __init__(self, name: str, *, max_entries: int, max_bytes: int) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("cache bounds must be >= 0")
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[bytes, V] = OrderedDict()
        self._key_bytes = 0
        self._hits = 0
        self._misses = 0
        self._lock = threading.Lock()

    def get(self, key: bytes) -> V | None:
        """The value kept for exactly `key` (marked most recently used), or None. Never raises."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return value

    def put(self, key: bytes, value: V) -> V:
        """Keep `value` for `key` and return the value now kept for it: when another thread put one first, that
        one (so that every caller shares one object). `key` must be `bytes` (immutable; a bytearray would make the
        key change under the cache). Too long a key is not kept and `value` is returned. Never raises."""
        size = len(key)
        if size > self.max_bytes // 8 or self.max_entries == 0:
            return value
        with self._lock:
            kept = self._items.get(key)
            if kept is not None:
                self._items.move_to_end(key)
                return kept
            self._items[key] = value
            self._key_bytes += size
            while len(self._items) > self.max_entries or self._key_bytes > self.max_bytes:
                evicted, _ = self._items.popitem(last=False)
                self._key_bytes -= len(evicted)
            return value

    def clear(self) -> None:
        """Forget every entry and reset the counters. Never raises."""
        with self._lock:
            self._items.clear()
            self._key_bytes = 0
            self._hits = self._misses = 0

    def info(self) -> CacheInfo:
        """The counters now. Never raises."""
        with self._lock:
            return CacheInfo(self.name, self._hits, self._misses, len(self._items), self._key_bytes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
