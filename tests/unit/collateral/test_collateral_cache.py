"""SqlCollateralCache (both databases) and CachedSource: freshness, replicas, coalescing, error fan-out, refresh
ahead of nextUpdate, stale-while-error and no rollback."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture, make_crl  # noqa: F401 - fixture
from tests.service_helpers import SettableClock
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.collateral.kds import AmdKds
from verifier.errors import ConfigError
from verifier.storage.collateral import SqlCollateralCache, key_from_cache_id
from verifier.storage.engine import Database
from verifier.tee.sevsnp.collateral_keys import crl_key
from verifier.tee.sevsnp.tcb import Product

NEXT = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
BEFORE = NEXT - dt.timedelta(days=3)
CRL_PATH = "/vcek/v1/Milan/crl"
KEY = crl_key(Product.MILAN)


def _item(
    key: CollateralKey = KEY, data: bytes = b"crl", next_update: dt.datetime | None = NEXT, source: str = "kds"
) -> CollateralItem:
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
    newer = dataclasses.replace(_item(data=b"crl2", next_update=NEXT + dt.timedelta(days=30)), fetched_at=NEXT)
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
    clock = SettableClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    source = CachedSource(
        AmdKds(kds_server.url), SqlCollateralCache(sqlite_db), clock=clock, failure_backoff=dt.timedelta(seconds=15)
    )
    results = _race(source)
    assert kds_server.count(CRL_PATH) == 1
    assert all(isinstance(r, CollateralUnavailableError) and r.code == "COLLATERAL_NOT_FOUND" for r in results)
    with pytest.raises(CollateralUnavailableError) as remembered:  # answered at once during the failure backoff
        source.fetch(KEY, at=BEFORE)
    assert remembered.value.code == "COLLATERAL_NOT_FOUND"
    assert kds_server.count(CRL_PATH) == 1
    clock.at += dt.timedelta(seconds=15)
    with pytest.raises(CollateralUnavailableError):  # then the vendor is asked again
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


# --- Refresh ahead of nextUpdate, stale-while-error, no rollback (injected clock, no sleeping) -----------------


T0 = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)  # wall clock of the cache (fetched_at)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
VCEK_KEY = CollateralKey("amd.vcek", (("product", "Milan"), ("hwid", "ab" * 64)))
TCB_KEY = CollateralKey("intel.tcb_info", (("fmspc", "B0C06F000000"),))


class Clock:
    def __init__(self, now: dt.datetime = T0) -> None:
        self.at = now

    def now(self) -> dt.datetime:
        return self.at


class Script:
    """An inner source answering a scripted sequence of items or errors (the last one repeats)."""

    def __init__(self, *answers: bytes | CollateralUnavailableError, next_update: dt.datetime = NEXT) -> None:
        self.answers = list(answers)
        self.next_update = next_update
        self.calls = 0

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, CollateralUnavailableError):
            raise answer
        return CollateralItem(key, answer, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), self.next_update, "kds")


DOWN = CollateralUnavailableError("COLLATERAL_HTTP_ERROR", "KDS answered 503")


def _tcb_envelope(number: int, issued: str) -> bytes:
    body = json.dumps(
        {
            "tcbInfo": {
                "id": "TDX",
                "issueDate": issued,
                "nextUpdate": "2025-02-01T00:00:00Z",
                "tcbEvaluationDataNumber": number,
            },
            "signature": "00",
        }
    )
    return json.dumps({"body": body, "issuer_chain": ""}).encode()


def test_crl_is_refetched_once_older_than_the_refresh_interval(sqlite_db: Database) -> None:
    clock = Clock()
    inner = Script(make_crl(NEXT, number=1), make_crl(NEXT, number=2))
    source = CachedSource(inner, SqlCollateralCache(sqlite_db), refresh=HOUR, clock=clock)
    assert source.fetch(KEY, at=BEFORE).source == "kds"
    clock.at = T0 + HOUR - dt.timedelta(seconds=1)
    assert source.fetch(KEY, at=BEFORE).source == "cache"
    assert inner.calls == 1
    clock.at = T0 + HOUR  # long before nextUpdate, but an hour old: the vendor is asked again
    refreshed = source.fetch(KEY, at=BEFORE)
    assert inner.calls == 2 and refreshed.source == "kds" and refreshed.fetched_at == T0 + HOUR
    assert refreshed.data == inner.answers[-1]
    stored = SqlCollateralCache(sqlite_db).get(KEY.cache_id())
    assert stored is not None and stored.data == refreshed.data


def test_intel_tcb_info_is_refreshed_but_certificates_keep_their_not_after() -> None:
    clock = Clock()
    intel = Script(_tcb_envelope(17, "2025-01-01T00:00:00Z"))
    certs = Script(b"vcek der")
    tcb_source = CachedSource(intel, None, refresh=HOUR, clock=clock)
    vcek_source = CachedSource(certs, None, refresh=HOUR, clock=clock)
    tcb_source.fetch(TCB_KEY, at=BEFORE)
    vcek_source.fetch(VCEK_KEY, at=BEFORE)
    clock.at = T0 + 2 * HOUR
    tcb_source.fetch(TCB_KEY, at=BEFORE)
    assert vcek_source.fetch(VCEK_KEY, at=BEFORE).source == "cache"
    assert (intel.calls, certs.calls) == (2, 1)


def test_refresh_interval_comes_from_the_settings(tmp_path: Path) -> None:
    from verifier.bootstrap import build_collateral_source
    from verifier.settings import Settings, from_environment

    assert Settings().collateral_refresh == HOUR
    assert from_environment({"VERIFIER_COLLATERAL_REFRESH_SECONDS": "600"}).collateral_refresh == 10 * MINUTE
    with pytest.raises(ConfigError):
        from_environment({"VERIFIER_COLLATERAL_REFRESH_SECONDS": "-1"})
    with pytest.raises(ConfigError):
        from_environment({"VERIFIER_COLLATERAL_REFRESH_SECONDS": "soon"})
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        built = build_collateral_source(Settings(collateral_refresh=10 * MINUTE), database)
        assert isinstance(built, CachedSource) and built._refresh == 10 * MINUTE
    finally:
        database.dispose()


def test_vendor_down_serves_the_cached_copy_until_next_update(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    crl = make_crl(NEXT, number=1)
    inner = Script(crl, DOWN)
    source = CachedSource(inner, SqlCollateralCache(sqlite_db), refresh=HOUR, retry_backoff=5 * MINUTE, clock=clock)
    source.fetch(KEY, at=BEFORE)
    clock.at = T0 + 2 * HOUR
    with caplog.at_level("WARNING", logger="verifier.collateral.cache"):
        stale = source.fetch(KEY, at=BEFORE)
    assert (stale.source, stale.data, inner.calls) == ("cache", crl, 2)
    assert "serving the cached copy" in caplog.text
    clock.at += MINUTE  # within the back-off: no request
    assert source.fetch(KEY, at=BEFORE).data == crl and inner.calls == 2
    clock.at += 5 * MINUTE  # after it: the vendor is tried again, still down, still served
    assert source.fetch(KEY, at=NEXT - dt.timedelta(seconds=1)).data == crl and inner.calls == 3
    clock.at += 6 * MINUTE
    with pytest.raises(CollateralUnavailableError) as info:  # past nextUpdate nothing is served
        source.fetch(KEY, at=NEXT)
    assert info.value.code == "COLLATERAL_HTTP_ERROR"


def test_stale_while_error_also_serves_the_database_copy(sqlite_db: Database) -> None:
    crl = make_crl(NEXT, number=1)
    CachedSource(Script(crl), SqlCollateralCache(sqlite_db), clock=Clock()).fetch(KEY, at=BEFORE)
    replica = CachedSource(Script(DOWN), SqlCollateralCache(sqlite_db), refresh=HOUR, clock=Clock(T0 + 3 * HOUR))
    assert replica.fetch(KEY, at=BEFORE).data == crl
    with pytest.raises(CollateralUnavailableError):
        replica.fetch(KEY, at=NEXT)


def test_a_refetch_never_rolls_the_crl_back(sqlite_db: Database) -> None:
    clock = Clock()
    newer = make_crl(NEXT, number=7)
    older = make_crl(NEXT + dt.timedelta(days=1), number=6)  # a lower CRL number, whatever its dates
    inner = Script(newer, older)
    source = CachedSource(inner, SqlCollateralCache(sqlite_db), refresh=HOUR, clock=clock)
    source.fetch(KEY, at=BEFORE)
    clock.at = T0 + HOUR
    kept = source.fetch(KEY, at=BEFORE)
    assert (kept.data, kept.source, inner.calls) == (newer, "cache", 2)
    stored = SqlCollateralCache(sqlite_db).get(KEY.cache_id())
    assert stored is not None and stored.data == newer
    clock.at = T0 + HOUR + MINUTE  # the kept copy counts as checked: no refetch before another interval
    assert source.fetch(KEY, at=BEFORE).data == newer and inner.calls == 2


def test_without_numbers_this_update_orders_crls() -> None:
    clock = Clock()
    newer = make_crl(NEXT, this_update=BEFORE)
    older = make_crl(NEXT, this_update=BEFORE - dt.timedelta(days=1))
    inner = Script(newer, older)
    source = CachedSource(inner, None, refresh=HOUR, clock=clock)
    source.fetch(KEY, at=BEFORE)
    clock.at = T0 + HOUR
    assert source.fetch(KEY, at=BEFORE).data == newer and inner.calls == 2


def test_intel_tcb_info_is_not_rolled_back_to_a_lower_evaluation_number() -> None:
    clock = Clock()
    current = _tcb_envelope(17, "2025-01-05T00:00:00Z")
    stale_mirror = _tcb_envelope(16, "2025-01-09T00:00:00Z")  # issued later, but before the TCB recovery
    inner = Script(current, stale_mirror, _tcb_envelope(18, "2025-01-09T00:00:00Z"))
    source = CachedSource(inner, None, refresh=HOUR, clock=clock)
    source.fetch(TCB_KEY, at=BEFORE)
    clock.at = T0 + HOUR
    assert source.fetch(TCB_KEY, at=BEFORE).data == current
    clock.at = T0 + 2 * HOUR
    assert source.fetch(TCB_KEY, at=BEFORE).data == inner.answers[-1]  # a newer one replaces it


def test_an_older_refetch_after_the_cached_copy_expired_is_refused() -> None:
    clock = Clock()
    inner = Script(make_crl(NEXT, number=7), make_crl(NEXT + dt.timedelta(days=30), number=6))
    source = CachedSource(inner, None, refresh=HOUR, clock=clock)
    source.fetch(KEY, at=BEFORE)
    with pytest.raises(CollateralUnavailableError) as info:
        source.fetch(KEY, at=NEXT)
    assert info.value.code == "COLLATERAL_ROLLBACK"


def test_a_replica_with_an_older_copy_takes_the_newer_database_row(sqlite_db: Database) -> None:
    clock = Clock()
    old, new = make_crl(NEXT, number=1), make_crl(NEXT, number=2)
    replica_a = CachedSource(Script(old), SqlCollateralCache(sqlite_db), refresh=HOUR, clock=clock)
    replica_a.fetch(KEY, at=BEFORE)
    clock.at = T0 + HOUR
    replica_b_inner = Script(new)
    CachedSource(replica_b_inner, SqlCollateralCache(sqlite_db), refresh=HOUR, clock=clock).fetch(KEY, at=BEFORE)
    assert replica_b_inner.calls == 1
    clock.at = T0 + HOUR + MINUTE
    got = replica_a.fetch(KEY, at=BEFORE)  # its memory copy is due; the table has a fresh, newer one
    assert got.data == new
    stored = SqlCollateralCache(sqlite_db).get(KEY.cache_id())
    assert stored is not None and stored.data == new


def test_others_are_served_the_cached_copy_while_one_refreshes() -> None:
    clock = Clock()
    crl = make_crl(NEXT, number=1)
    entered, release = threading.Event(), threading.Event()

    class Blocking(Script):
        def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
            if self.calls:
                entered.set()
                release.wait(10)
            return super().fetch(key, at=at)

    inner = Blocking(crl, make_crl(NEXT, number=2))
    source = CachedSource(inner, None, refresh=HOUR, clock=clock)
    source.fetch(KEY, at=BEFORE)
    clock.at = T0 + HOUR
    leader = threading.Thread(target=source.fetch, args=(KEY,), kwargs={"at": BEFORE})
    leader.start()
    try:
        assert entered.wait(10)
        assert source.fetch(KEY, at=BEFORE).data == crl  # not blocked behind the refresh
    finally:
        release.set()
        leader.join(10)
    assert inner.calls == 2
