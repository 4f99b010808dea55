"""A small bounded memo keyed by the identity of immutable objects (frozen policies), for values derived from them
on every appraisal (a policy's SHA-256, a policy tightened by a workload version's kinds).

Each entry holds its key object, so an `id` cannot be reused by another object while its entry lives, and a hit
is checked with `is` on the key object. Thread-safe (a lock around every write; a read is one atomic dict
lookup); least recently inserted first out."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

DEFAULT_SIZE = 256


class IdentityMemo(Generic[V]):
    """`get(obj, extra, make)`: `make()` once per (identity of `obj`, `extra`) while cached."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[int, Hashable], tuple[object, V]] = OrderedDict()

    def get(self, obj: object, extra: Hashable, make: Callable[[], V]) -> V:
        """The memoised value, else `make()` (outside the lock: concurrent misses may both make it; the last made
        is kept). Whatever `make` raises passes through and nothing is kept."""
        key = (id(obj), extra)
        found = self._items.get(key)  # a dict read is atomic under the GIL; writes and evictions take the lock
        if found is not None and found[0] is obj:
            return found[1]
        value = make()
        with self._lock:
            self._items[key] = (obj, value)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)
