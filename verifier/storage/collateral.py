"""The shared collateral cache table (one row per CollateralKey.cache_id(); last writer wins)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, exc, update

from ..collateral.base import CollateralItem, CollateralKey
from .engine import Database
from .tables import CollateralCacheRow


def key_from_cache_id(cache_id: str) -> CollateralKey:
    """Inverse of `CollateralKey.cache_id()` for keys whose values contain no '&' or '='."""
    kind, _, query = cache_id.partition("?")
    params = tuple((name, value) for name, _, value in (p.partition("=") for p in query.split("&"))) if query else ()
    return CollateralKey(kind, params)


class SqlCollateralCache:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, cache_id: str) -> CollateralItem | None:
        with self._db.session() as session:
            row = session.get(CollateralCacheRow, cache_id)
            if row is None:
                return None
            return CollateralItem(
                key=key_from_cache_id(row.cache_id),
                data=row.data,
                fetched_at=row.fetched_at,
                next_update=row.next_update,
                source=row.source,
            )

    def put(self, item: CollateralItem) -> None:
        """Insert or replace the row of `item` (UPDATE, else INSERT, else UPDATE again after losing an insert race:
        portable between SQLite and PostgreSQL). Items without next_update are not cacheable."""
        if item.next_update is None:
            raise ValueError("an item without next_update cannot be cached")
        cache_id = item.key.cache_id()
        values = {
            "kind": item.key.kind,
            "data": item.data,
            "fetched_at": item.fetched_at,
            "next_update": item.next_update,
            "source": item.source,
        }
        if self._update(cache_id, values):
            return
        try:
            with self._db.session() as session:
                session.add(CollateralCacheRow(cache_id=cache_id, **values))
        except exc.IntegrityError:
            self._update(cache_id, values)

    def _update(self, cache_id: str, values: dict[str, object]) -> bool:
        with self._db.session() as session:
            result = session.connection().execute(
                update(CollateralCacheRow).where(CollateralCacheRow.cache_id == cache_id).values(**values)
            )
            return bool(result.rowcount)

    def delete(self, cache_id: str, *, data: bytes | None = None) -> int:
        """Drop the row of `cache_id` (only while it still holds `data`, when given: a replica that already stored
        a newer copy keeps it); returns how many rows went (0 or 1)."""
        condition = CollateralCacheRow.cache_id == cache_id
        if data is not None:
            condition = condition & (CollateralCacheRow.data == data)
        with self._db.session() as session:
            return int(session.connection().execute(delete(CollateralCacheRow).where(condition)).rowcount or 0)

    def delete_old(self, *, now: dt.datetime, before: dt.datetime) -> int:
        """Housekeeping (`verifier db prune`): drop rows past their next_update at `now` or fetched before
        `before`; a dropped row is fetched again when next needed. Returns how many went."""
        with self._db.session() as session:
            result = session.connection().execute(
                delete(CollateralCacheRow).where(
                    (CollateralCacheRow.next_update <= now) | (CollateralCacheRow.fetched_at < before)
                )
            )
            return int(result.rowcount or 0)

    def delete_expired(self, *, before: dt.datetime) -> int:
        """Housekeeping: drop rows whose next_update is before `before`; returns how many."""
        with self._db.session() as session:
            result = session.connection().execute(
                delete(CollateralCacheRow).where(CollateralCacheRow.next_update < before)
            )
            return int(result.rowcount)
