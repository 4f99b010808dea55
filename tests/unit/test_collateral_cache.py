"""SqlCollateralCache (both databases) and CachedSource: freshness, replicas, coalescing, error fan-out."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from pathlib import Path

import pytest

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture, make_crl  # noqa: F401 - fixture
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.collateral.kds import AmdKds, crl_key
from verifier.storage.collateral import SqlCollateralCache, key_from_cache_id
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product

NEXT = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
BEFORE = NEXT - dt.timedelta(days=3)
CRL_PATH = "/vcek/v1/Milan/crl"
KEY = crl_key(Product.MILAN)


def _item(key: CollateralKey = KEY, data: bytes = b"crl", next_update: dt.datetime | None = NEXT,
          source: str = "kds") -> CollateralItem:
    return CollateralItem(key=key, data=data, fetched_at=BEFORE, next_update=next_update, source=source)


class Stub:
    """An inner source that counts calls and returns a given item."""

    def __init__(self, item: CollateralItem | None = None) -> None:
        self.item = item
        self.calls: list[CollateralKey] = []

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.calls.append(key)
        return dataclasses.replace(self.item or _item(), key=key)


# --- SqlCollateralCache ---------------------------------------------------------------------------------------


def test_put_get_upsert(db: Database) -> None:
    cache = SqlCollateralCache(db)
    assert cache.get(KEY.cache_id()) is None
    cache.put(_item())
    assert cache.get(KEY.cache_id()) == _item()
    newer = dataclasses.replace(_item(data=b"crl2", next_update=NEXT + dt.timedelta(days=30)),
                                fetched_at=NEXT)
    cache.put(newer)
    got = cache.get(KEY.cache_id())
    assert got == newer
    assert got is not None and got.next_update is not None and got.next_update.tzinfo is not None


def test_put_requires_next_update(db: Database) -> None:
    with pytest.raises(ValueError):
        SqlCollateralCache(db).put(_item(next_update=None))


def test_delete_expired(db: Database) -> None:
    cache = SqlCollateralCache(db)
    cache.put(_item())
    cache.put(_item(key=crl_key(Product.GENOA), next_update=NEXT + dt.timedelta(days=60)))
    assert cache.delete_expired(before=NEXT + dt.timedelta(days=1)) == 1
    assert cache.get(KEY.cache_id()) is None
    assert cache.get(crl_key(Product.GENOA).cache_id()) is not None


def test_cache_id_round_trip() -> None:
    key = CollateralKey("amd.vcek", (("product", "Turin"), ("hwid", "3b42092f69c656d3"), ("fmcSPL", "0")))
    assert key_from_cache_id(key.cache_id()) == key
    assert key_from_cache_id("amd.vlek") == CollateralKey("amd.vlek")


# --- CachedSource against the fake KDS ------------------------------------------------------------------------


def test_hit_within_next_update_makes_no_request(kds_server: FakeKds, db: Database) -> None:
    der = make_crl(NEXT)
    kds_server.serve(CRL_PATH, Reply(body=der))
    source = CachedSource(AmdKds(kds_server.url), SqlCollateralCache(db))
    first = source.fetch(KEY, at=BEFORE)
    second = source.fetch(KEY, at=NEXT - dt.timedelta(seconds=1))
    assert (first.source, second.source) == ("kds", "cache")
    assert first.data == second.data == der
    assert kds_server.count(CRL_PATH) == 1


def test_past_next_update_refetches(kds_server: FakeKds, db: Database) -> None:
    later = NEXT + dt.timedelta(days=7)
    kds_server.serve(CRL_PATH, Reply(body=make_crl(NEXT)), Reply(body=make_crl(later)))
    source = CachedSource(AmdKds(kds_server.url), SqlCollateralCache(db))
    assert source.fetch(KEY, at=BEFORE).next_update == NEXT
    refreshed = source.fetch(KEY, at=NEXT)  # exactly at nextUpdate is already stale
    assert (refreshed.source, refreshed.next_update) == ("kds", later)
    assert kds_server.count(CRL_PATH) == 2
    assert SqlCollateralCache(db).get(KEY.cache_id()) == dataclasses.replace(refreshed)
    assert source.fetch(KEY, at=NEXT).source == "cache"
    assert kds_server.count(CRL_PATH) == 2


def test_database_is_shared_by_replicas(kds_server: FakeKds, db: Database) -> None:
    kds_server.serve(CRL_PATH, Reply(body=make_crl(NEXT)))
    other = Database(db.url)  # a second process's engine on the same database
    try:
        replica_a = CachedSource(AmdKds(kds_server.url), SqlCollateralCache(db))
        replica_b = CachedSource(AmdKds(kds_server.url), SqlCollateralCache(other))
        assert replica_a.fetch(KEY, at=BEFORE).source == "kds"
        hit = replica_b.fetch(KEY, at=BEFORE)
        assert (hit.source, hit.key, hit.next_update) == ("cache", KEY, NEXT)
        assert kds_server.count(CRL_PATH) == 1
    finally:
        other.dispose()


def _race(source: CachedSource, threads: int = 8) -> list[CollateralItem | BaseException]:
    barrier = threading.Barrier(threads)
    results: list[CollateralItem | BaseException] = [RuntimeError("not run")] * threads

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = source.fetch(KEY, at=BEFORE)
        except BaseException as error:
            results[index] = error

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    return results


def test_concurrent_misses_make_one_request(kds_server: FakeKds, db: Database) -> None:
    der = make_crl(NEXT)
    kds_server.serve(CRL_PATH, Reply(body=der, delay=0.3))
    results = _race(CachedSource(AmdKds(kds_server.url), SqlCollateralCache(db)))
    assert kds_server.count(CRL_PATH) == 1
    assert all(isinstance(r, CollateralItem) and r.data == der for r in results), results


def test_errors_reach_every_waiter(kds_server: FakeKds, sqlite_db: Database) -> None:
    kds_server.serve(CRL_PATH, Reply(404, delay=0.3))
    source = CachedSource(AmdKds(kds_server.url), SqlCollateralCache(sqlite_db))
    results = _race(source)
    assert kds_server.count(CRL_PATH) == 1
    assert all(isinstance(r, CollateralUnavailableError) and r.code == "COLLATERAL_NOT_FOUND" for r in results)
    with pytest.raises(CollateralUnavailableError):  # errors are not cached
        source.fetch(KEY, at=BEFORE)
    assert kds_server.count(CRL_PATH) == 2


# --- CachedSource with a stub inner source --------------------------------------------------------------------


def test_items_without_next_update_are_not_cached(sqlite_db: Database) -> None:
    inner = Stub(_item(next_update=None))
    source = CachedSource(inner, SqlCollateralCache(sqlite_db))
    assert source.fetch(KEY, at=BEFORE).source == "kds"
    assert source.fetch(KEY, at=BEFORE).source == "kds"
    assert len(inner.calls) == 2
    assert SqlCollateralCache(sqlite_db).get(KEY.cache_id()) is None


def test_memory_only_and_lru_eviction() -> None:
    inner = Stub()
    source = CachedSource(inner, None, max_memory_items=1)
    genoa = crl_key(Product.GENOA)
    source.fetch(KEY, at=BEFORE)
    assert source.fetch(KEY, at=BEFORE).source == "cache"
    source.fetch(genoa, at=BEFORE)  # evicts KEY
    source.fetch(KEY, at=BEFORE)
    assert inner.calls == [KEY, genoa, KEY]


def test_unavailable_database_degrades_to_no_shared_cache(tmp_path: Path) -> None:
    unmigrated = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        inner = Stub()
        source = CachedSource(inner, SqlCollateralCache(unmigrated))
        assert source.fetch(KEY, at=BEFORE).source == "kds"
        assert source.fetch(KEY, at=BEFORE).source == "cache"  # from memory
        assert len(inner.calls) == 1
    finally:
        unmigrated.dispose()
