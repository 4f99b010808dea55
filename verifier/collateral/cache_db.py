"""The shared database tier of the collateral cache (`cache.CachedSource`): the replicas' common table, read and
written through `CollateralTable` (storage.collateral.SqlCollateralCache implements it). A database that is down
degrades to "no shared cache" with a warning, never to a failed fetch."""

from __future__ import annotations

import logging
from typing import Protocol

from ..errors import UnavailableError
from .base import CollateralItem

log = logging.getLogger("verifier.collateral.cache")  # the cache's logger, as before this tier moved here


class CollateralTable(Protocol):
    """The table of cached collateral by cache id; each call raises UnavailableError when the database is down."""

    def get(self, cache_id: str) -> CollateralItem | None: ...

    def put(self, item: CollateralItem) -> None: ...

    def delete(self, cache_id: str, *, data: bytes) -> object: ...


class DatabaseTier:
    """`table`, or no shared cache at all when it is None. No method raises for a database that is down."""

    def __init__(self, table: CollateralTable | None) -> None:
        self._table = table

    def get(self, cache_id: str) -> CollateralItem | None:
        """The stored item for `cache_id`; None when there is none, no table, or the database is down."""
        if self._table is None:
            return None
        try:
            return self._table.get(cache_id)
        except UnavailableError as error:
            log.warning("collateral cache read skipped: %s", error)
            return None

    def put(self, item: CollateralItem) -> None:
        """Store `item` (the table keeps the newer version); an item without a nextUpdate is never stored."""
        if self._table is None or item.next_update is None:
            return
        try:
            self._table.put(item)
        except UnavailableError as error:
            log.warning("collateral cache write skipped: %s", error)

    def delete(self, cache_id: str, *, data: bytes) -> None:
        """Delete the row of `cache_id` while it still holds `data` (a rejected copy)."""
        if self._table is None:
            return
        try:
            self._table.delete(cache_id, data=data)
        except UnavailableError as error:
            log.warning("collateral cache delete skipped: %s", error)
