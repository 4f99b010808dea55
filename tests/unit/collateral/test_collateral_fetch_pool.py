"""CachedSource loads on its own bounded pool of daemon threads (`collateral.fetch_pool`): a silent vendor costs a
caller at most `fetch_wait` (COLLATERAL_TIMEOUT) while the load goes on and fills the cache, a full queue answers
COLLATERAL_BUSY at once, and neither close() nor interpreter exit waits for a stuck vendor call."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import verifier
from tests.fakes.kds_server import make_crl
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.collateral.fetch_pool import FetchPool

NEXT = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
AT = NEXT - dt.timedelta(days=3)
T0 = dt.datetime(2025, 1, 20, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
KEY = CollateralKey("amd.vcek", (("product", "Milan"), ("hwid", "ab" * 64)))
CRL_KEY = CollateralKey("amd.crl", (("product", "Milan"),))
WAIT = 0.2
BOUND = 10.0  # generous: what used to hang forever must end well within this


class Gated:
    """A vendor that blocks every fetch until `release` is set; counts calls and records the calling thread."""

    def __init__(self, data: bytes = b"vcek") -> None:
        self.data = data
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls = 0
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        with self._lock:
            self.calls += 1
            self.threads.append(threading.current_thread())
        self.entered.set()
        self.release.wait(30)
        return CollateralItem(key, self.data, T0, NEXT, "kds")


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> dt.datetime:
        return self.at


def _source(inner: Gated, **kwargs: object) -> CachedSource:
    options: dict[str, object] = {"fetch_wait": WAIT} | kwargs
    return CachedSource(inner, None, **options)  # type: ignore[arg-type]


def _error(source: CachedSource, key: CollateralKey = KEY) -> tuple[CollateralUnavailableError, float]:
    start = time.monotonic()
    with pytest.raises(CollateralUnavailableError) as raised:
        source.fetch(key, at=AT)
    return raised.value, time.monotonic() - start


def _swallow(source: CachedSource) -> None:
    try:
        source.fetch(KEY, at=AT)
    except CollateralUnavailableError:
        pass


def _eventually_hit(source: CachedSource, key: CollateralKey = KEY) -> CollateralItem:
    deadline = time.monotonic() + BOUND
    while True:
        try:
            item = source.fetch(key, at=AT)
        except CollateralUnavailableError:
            item = None
        if item is not None and item.source == "cache":
            return item
        assert time.monotonic() < deadline, "the background load never filled the cache"
        time.sleep(0.02)


def test_silent_vendor_times_out_and_the_background_load_fills_the_cache() -> None:
    inner = Gated()
    source = _source(inner)
    try:
        error, elapsed = _error(source)
        assert error.code == "COLLATERAL_TIMEOUT"
        assert error.retry_after is not None and 0.5 <= error.retry_after <= 2.0
        assert WAIT * 0.5 <= elapsed < BOUND
        assert inner.calls == 1
        inner.release.set()
        item = _eventually_hit(source)
        assert item.data == b"vcek"
        assert source.fetch(KEY, at=AT).source == "cache"
        assert inner.calls == 1  # the load that timed out for its caller is the one that filled the cache
        assert inner.threads[0] is not threading.current_thread() and inner.threads[0].daemon
    finally:
        inner.release.set()
        source.close()


def test_every_caller_of_a_slow_flight_waits_at_most_fetch_wait() -> None:
    inner = Gated()
    source = _source(inner)
    try:
        for _ in range(3):  # the first starts the load, the others join it
            error, elapsed = _error(source)
            assert error.code == "COLLATERAL_TIMEOUT" and elapsed < BOUND
        assert inner.calls == 1
    finally:
        inner.release.set()
        source.close()


def test_concurrent_callers_make_one_vendor_call() -> None:
    inner = Gated()
    source = _source(inner, fetch_wait=BOUND)
    results: list[CollateralItem | BaseException] = []
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        try:
            results.append(source.fetch(KEY, at=AT))
        except BaseException as error:
            results.append(error)

    callers = [threading.Thread(target=run) for _ in range(8)]
    try:
        for caller in callers:
            caller.start()
        assert inner.entered.wait(BOUND)
        time.sleep(0.2)  # let the others join the flight (a late one hits the cache: one call either way)
        inner.release.set()
        for caller in callers:
            caller.join(BOUND)
        assert len(results) == 8 and all(isinstance(r, CollateralItem) and r.data == b"vcek" for r in results)
        assert inner.calls == 1
    finally:
        inner.release.set()
        source.close()


def test_a_full_pool_answers_busy_at_once() -> None:
    inner = Gated()
    source = _source(inner, fetch_workers=1, fetch_queue=0, fetch_wait=60.0)
    stuck = threading.Thread(target=lambda: _swallow(source), daemon=True)
    try:
        stuck.start()
        assert inner.entered.wait(BOUND)  # the only worker is stuck in the vendor
        error, elapsed = _error(source, CollateralKey("amd.vcek", (("hwid", "cd" * 64),)))
        assert error.code == "COLLATERAL_BUSY" and elapsed < BOUND  # queued, it would have waited 60 s
        assert error.retry_after is not None and 0.5 <= error.retry_after <= 2.0
        assert inner.calls == 1
    finally:
        inner.release.set()
        stuck.join(BOUND)
        source.close()


def test_queued_loads_are_bounded_and_a_key_in_flight_joins_instead_of_busy() -> None:
    inner = Gated()
    source = _source(inner, fetch_workers=1, fetch_queue=1)
    other = CollateralKey("amd.vcek", (("hwid", "cd" * 64),))
    third = CollateralKey("amd.vcek", (("hwid", "ef" * 64),))
    try:
        assert _error(source, KEY)[0].code == "COLLATERAL_TIMEOUT"  # running (stuck)
        assert _error(source, other)[0].code == "COLLATERAL_TIMEOUT"  # queued behind it
        assert _error(source, third)[0].code == "COLLATERAL_BUSY"  # no room
        assert _error(source, KEY)[0].code == "COLLATERAL_TIMEOUT"  # joins its flight, needs no room
        inner.release.set()
        assert _eventually_hit(source, KEY).data == b"vcek"
        assert _eventually_hit(source, other).data == b"vcek"
        assert source.fetch(third, at=AT).data == b"vcek"  # room again
        assert inner.calls == 3
    finally:
        inner.release.set()
        source.close()


def test_a_slow_refresh_serves_the_cached_copy() -> None:
    clock = Clock()
    old = make_crl(NEXT, number=1)  # signed with a fresh key: build each CRL once
    inner = Gated(old)
    inner.release.set()
    source = _source(inner, clock=clock, refresh=HOUR)
    try:
        assert source.fetch(CRL_KEY, at=AT).data == inner.data
        inner.release.clear()
        inner.data = make_crl(NEXT, number=2)
        clock.at = T0 + HOUR  # due for refresh, and the vendor is silent
        start = time.monotonic()
        got = source.fetch(CRL_KEY, at=AT)  # starts the refresh, waits fetch_wait, then takes the cached copy
        assert got.data == old and got.source == "cache" and time.monotonic() - start < BOUND
        got = source.fetch(CRL_KEY, at=AT)  # the refresh is in flight: a plain hit
        assert got.data == old and got.source == "cache"
        inner.release.set()
        deadline = time.monotonic() + BOUND
        while source.fetch(CRL_KEY, at=AT).data != inner.data:
            assert time.monotonic() < deadline, "the refresh never landed"
            time.sleep(0.02)
        assert inner.calls == 2
    finally:
        inner.release.set()
        source.close()


def test_close_returns_promptly_with_a_fetch_stuck_and_hits_still_serve() -> None:
    inner = Gated()
    inner.release.set()
    source = _source(inner)
    assert source.fetch(KEY, at=AT).data == b"vcek"
    inner.release.clear()
    other = CollateralKey("amd.vcek", (("hwid", "cd" * 64),))
    try:
        assert _error(source, other)[0].code == "COLLATERAL_TIMEOUT"  # stuck in the vendor
        start = time.monotonic()
        source.close()
        assert time.monotonic() - start < BOUND
        assert source.fetch(KEY, at=AT).source == "cache"  # hits need no pool
        third = CollateralKey("amd.vcek", (("hwid", "ef" * 64),))
        assert _error(source, third)[0].code == "COLLATERAL_BUSY"
        source.close()  # idempotent
    finally:
        inner.release.set()


def test_close_cancels_queued_loads_and_wakes_their_waiters() -> None:
    pool = FetchPool(workers=1, queue=2)
    release, entered = threading.Event(), threading.Event()
    ran: list[str] = []
    cancelled: list[str] = []

    def stuck() -> None:
        entered.set()
        release.wait(30)
        ran.append("stuck")

    try:
        assert pool.submit(stuck, cancel=lambda: cancelled.append("stuck"))
        assert entered.wait(BOUND)
        assert pool.submit(lambda: ran.append("a"), cancel=lambda: cancelled.append("a"))
        assert pool.submit(lambda: ran.append("b"), cancel=lambda: cancelled.append("b"))
        assert not pool.submit(lambda: ran.append("c"), cancel=lambda: cancelled.append("c"))  # full
        start = time.monotonic()
        pool.close()
        assert time.monotonic() - start < BOUND
        assert cancelled == ["a", "b"] and pool.closed
        assert not pool.submit(lambda: ran.append("d"), cancel=lambda: cancelled.append("d"))
    finally:
        release.set()
    deadline = time.monotonic() + BOUND
    while ran != ["stuck"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_pool_threads_are_bounded_daemons_that_end_when_idle() -> None:
    pool = FetchPool(workers=2, queue=8, name="test-fetch-pool", idle_timeout=0.1)
    release = threading.Event()
    lock = threading.Lock()
    done: list[int] = []
    now_running = [0]
    most = [0]

    def task() -> None:
        with lock:
            now_running[0] += 1
            most[0] = max(most[0], now_running[0])
        release.wait(BOUND)
        with lock:
            now_running[0] -= 1
            done.append(1)

    for _ in range(5):
        assert pool.submit(task, cancel=lambda: None)
    time.sleep(0.2)
    mine = [t for t in threading.enumerate() if t.name.startswith("test-fetch-pool")]
    assert len(mine) == 2 and all(t.daemon for t in mine)
    release.set()
    deadline = time.monotonic() + BOUND
    while len(done) < 5 or any(t.name.startswith("test-fetch-pool") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the tasks did not all run, or idle workers did not end"
        time.sleep(0.02)
    assert most[0] == 2
    pool.close()


def test_the_process_exits_with_a_fetch_stuck_in_a_silent_vendor(tmp_path: Path) -> None:
    """A vendor that accepts the connection and never answers: the request handler gets COLLATERAL_TIMEOUT and
    the interpreter exits without close(), not joined on the worker blocked in recv()."""
    script = tmp_path / "stuck.py"
    script.write_text(
        textwrap.dedent(
            """
            import datetime as dt, socket
            from verifier.collateral.base import CollateralKey, CollateralUnavailableError
            from verifier.collateral.cache import CachedSource

            listener = socket.create_server(("127.0.0.1", 0))
            address = listener.getsockname()

            class Silent:
                def fetch(self, key, *, at):
                    with socket.create_connection(address) as conn:
                        conn.recv(1)  # never answered
                    raise AssertionError("answered")

            source = CachedSource(Silent(), None, fetch_wait=0.2)
            try:
                source.fetch(CollateralKey("amd.vcek", (("hwid", "ab"),)), at=dt.datetime.now(dt.UTC))
            except CollateralUnavailableError as error:
                print(error.code, flush=True)
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(Path(verifier.__file__).resolve().parents[1]))
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "COLLATERAL_TIMEOUT"
    assert time.monotonic() - start < 30


def test_a_caller_joining_a_load_that_already_hangs_fails_at_once() -> None:
    """The wait is bounded from the load's start, not the caller's: once a load has hung for `fetch_wait`, later
    callers of that key do not each wait another `fetch_wait` (a silent vendor otherwise ties up every request
    thread for `fetch_wait` per request for as long as the load hangs)."""
    inner = Gated()
    source = _source(inner, fetch_wait=0.5)
    try:
        first, waited = _error(source)
        assert first.code == "COLLATERAL_TIMEOUT" and waited >= 0.4
        late, waited = _error(source)
        assert late.code == "COLLATERAL_TIMEOUT" and waited < 0.2
        assert inner.calls == 1
    finally:
        inner.release.set()
        source.close()
