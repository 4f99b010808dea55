"""The in-process tier of the collateral cache (`cache.CachedSource`): a least-recently-used map of items by cache
id, at most `capacity` of them."""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from .base import CollateralItem


class MemoryTier:
    """The LRU of collateral items. Not thread-safe: its owner holds its own lock around every call."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, CollateralItem] = OrderedDict()

    def get(self, cache_id: str) -> CollateralItem | None:
        """The item held for `cache_id`, if any; does not count as a use (see `touch`)."""
        return self._items.get(cache_id)

    def touch(self, cache_id: str) -> None:
        """Mark the item held for `cache_id` as the most recently used. Raises KeyError when none is held."""
        self._items.move_to_end(cache_id)

    def put(self, cache_id: str, item: CollateralItem) -> None:
        """Hold `item` for `cache_id` as the most recently used, dropping the least recently used past capacity."""
        self._items[cache_id] = item
        self._items.move_to_end(cache_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def discard(self, cache_id: str, digest: bytes) -> None:
        """Drop the item held for `cache_id` when its bytes have SHA-256 `digest` (a newer copy stays)."""
        held = self._items.get(cache_id)
        if held is not None and hashlib.sha256(held.data).digest() == digest:
            del self._items[cache_id]
