"""The shared bounded pool of daemon threads (verifier/daemon_pool.py) under the collateral fetch pool and the lanes:
bounds, daemon threads (on demand with an idle end, or fixed), close that cancels or drains, failures logged never
raised, and the undo of a thread that cannot start."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from verifier.collateral.fetch_pool import FetchPool
from verifier.daemon_pool import DaemonPool
from verifier.transport.grpc.lanes import Lane, LaneLimits

BOUND = 10.0  # generous: what must happen soon happens well within this


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "-")]


class Stuck:
    """A task that blocks until `release` is set, signalling `entered` first."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        self.release.wait(30)


def _nothing() -> None:
    pass


def test_workers_plus_queue_tasks_are_admitted_then_submit_refuses_at_once() -> None:
    pool = DaemonPool(workers=1, queue=1, name="bounds", idle_timeout=5)
    stuck = Stuck()
    ran: list[str] = []
    try:
        assert pool.submit(stuck, cancel=_nothing)
        assert stuck.entered.wait(BOUND)
        assert pool.submit(lambda: ran.append("queued"), cancel=_nothing)
        assert pool.outstanding == 2
        assert not pool.submit(lambda: ran.append("refused"), cancel=_nothing)
        assert pool.outstanding == 2 and len(_named("bounds")) == 1
        stuck.release.set()
        _eventually(lambda: pool.outstanding == 0, "the slots were never freed")
        assert ran == ["queued"]
        assert pool.submit(lambda: ran.append("again"), cancel=_nothing)  # room again
        _eventually(lambda: ran == ["queued", "again"], "the task never ran")
    finally:
        stuck.release.set()
        pool.close()


def test_on_demand_workers_are_bounded_daemons_that_end_when_idle() -> None:
    pool = DaemonPool(workers=2, queue=8, name="on-demand", idle_timeout=0.1)
    assert _named("on-demand") == []  # nothing started before the first task
    release = threading.Event()
    done: list[int] = []

    def task() -> None:
        release.wait(BOUND)
        done.append(1)

    for _ in range(5):
        assert pool.submit(task, cancel=_nothing)
    mine = _named("on-demand")
    assert sorted(t.name for t in mine) == ["on-demand-1", "on-demand-2"] and all(t.daemon for t in mine)
    release.set()
    _eventually(lambda: len(done) == 5 and not _named("on-demand"), "tasks unfinished or idle workers alive")
    assert pool.submit(_nothing, cancel=_nothing)  # a new worker starts on demand
    _eventually(lambda: pool.outstanding == 0, "the task never ran")
    pool.close()


def test_fixed_workers_start_with_the_pool_and_end_only_after_close() -> None:
    pool = DaemonPool(workers=3, queue=0, name="fixed")
    mine = _named("fixed")
    assert sorted(t.name for t in mine) == ["fixed-0", "fixed-1", "fixed-2"] and all(t.daemon for t in mine)
    ran = threading.Event()
    assert pool.submit(ran.set, cancel=_nothing)
    assert ran.wait(BOUND)
    _eventually(lambda: pool.outstanding == 0, "the slot was never freed")
    assert all(t.is_alive() for t in mine)
    pool.close(drain=True)
    _eventually(lambda: not _named("fixed"), "fixed workers did not end after close")


def test_close_cancels_the_waiting_tasks_and_returns_with_a_task_stuck() -> None:
    pool = DaemonPool(workers=1, queue=2, name="cancel", idle_timeout=5)
    stuck = Stuck()
    ran: list[str] = []
    cancelled: list[str] = []
    try:
        assert pool.submit(stuck, cancel=lambda: cancelled.append("stuck"))
        assert stuck.entered.wait(BOUND)
        for name in ("a", "b"):
            assert pool.submit(partial(ran.append, name), cancel=partial(cancelled.append, name))
        started = time.monotonic()
        pool.close()
        assert time.monotonic() - started < BOUND
        assert cancelled == ["a", "b"] and pool.closed and pool.outstanding == 1
        assert not pool.submit(lambda: ran.append("late"), cancel=lambda: cancelled.append("late"))
        pool.close()  # idempotent
    finally:
        stuck.release.set()
    _eventually(lambda: pool.outstanding == 0 and not _named("cancel"), "the stuck task's worker never ended")
    assert ran == [] and cancelled == ["a", "b"]


def test_a_draining_close_lets_the_waiting_tasks_run_then_the_workers_end() -> None:
    pool = DaemonPool(workers=1, queue=2, name="drain")
    stuck = Stuck()
    ran: list[str] = []
    cancelled: list[str] = []
    try:
        assert pool.submit(stuck, cancel=_nothing)
        assert stuck.entered.wait(BOUND)
        for name in ("a", "b"):
            assert pool.submit(partial(ran.append, name), cancel=partial(cancelled.append, name))
        started = time.monotonic()
        pool.close(drain=True)
        assert time.monotonic() - started < BOUND
        assert pool.closed and not pool.submit(lambda: ran.append("late"), cancel=_nothing)
    finally:
        stuck.release.set()
    _eventually(lambda: not _named("drain"), "the workers did not end once the queue was empty")
    assert ran == ["a", "b"] and cancelled == [] and pool.outstanding == 0


def test_then_runs_after_the_slot_is_free() -> None:
    pool = DaemonPool(workers=1, queue=0, name="then")
    seen: list[int] = []
    done = threading.Event()

    def then() -> None:
        seen.append(pool.outstanding)
        done.set()

    assert pool.submit(lambda: seen.append(pool.outstanding), cancel=_nothing, then=then)
    assert done.wait(BOUND)
    assert seen == [1, 0]
    pool.close()


def test_failures_are_logged_never_raised_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.daemon_pool")
    pool = DaemonPool(workers=1, queue=4, name="fail", idle_timeout=5, logger=logger, what="test job")
    stuck = Stuck()
    ran = threading.Event()

    def boom() -> None:
        raise ValueError("boom")

    def stop() -> None:
        raise SystemExit(3)  # even a BaseException stays in the worker

    with caplog.at_level(logging.ERROR, logger="tests.daemon_pool"):
        assert pool.submit(boom, cancel=_nothing)
        assert pool.submit(stop, cancel=_nothing, then=boom)
        assert pool.submit(ran.set, cancel=_nothing)
        assert ran.wait(BOUND)  # the same worker ran the third task
        assert pool.submit(stuck, cancel=_nothing)
        assert stuck.entered.wait(BOUND)
        assert pool.submit(_nothing, cancel=boom)
        pool.close()  # the failing cancel is logged, not raised
        stuck.release.set()
        _eventually(lambda: pool.outstanding == 0, "the stuck task never ended")
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.daemon_pool"]
    assert messages == ["test job task failed"] * 3 + ["cancelling a queued test job failed"]
    assert all(r.exc_info for r in caplog.records if r.name == "tests.daemon_pool")


def _failing_start(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name in names:
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)


def test_a_thread_that_cannot_start_with_no_worker_left_undoes_the_submit(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = DaemonPool(workers=1, queue=1, name="undo", idle_timeout=5)
    _failing_start(monkeypatch, {"undo-1"})
    assert not pool.submit(_nothing, cancel=_nothing)
    assert pool.outstanding == 0 and _named("undo") == []
    monkeypatch.undo()
    ran = threading.Event()
    assert pool.submit(ran.set, cancel=_nothing)  # counts were restored: the next start works
    assert ran.wait(BOUND) and [t.name for t in _named("undo")] == ["undo-2"]
    pool.close()


def test_a_thread_that_cannot_start_beside_a_worker_leaves_the_task_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = DaemonPool(workers=2, queue=0, name="beside", idle_timeout=5)
    stuck = Stuck()
    ran = threading.Event()
    try:
        assert pool.submit(stuck, cancel=_nothing)
        assert stuck.entered.wait(BOUND)
        _failing_start(monkeypatch, {"beside-2"})
        assert pool.submit(ran.set, cancel=_nothing)  # queued for the running worker
        assert pool.outstanding == 2 and not ran.is_set()
    finally:
        stuck.release.set()
    assert ran.wait(BOUND)
    pool.close()


def test_fixed_workers_that_cannot_all_start_raise_and_the_started_ones_end(monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_start(monkeypatch, {"partial-1"})
    with pytest.raises(RuntimeError):
        DaemonPool(workers=3, queue=0, name="partial")
    _eventually(lambda: not _named("partial"), "the worker started before the failure never ended")


def test_bad_bounds_are_refused() -> None:
    for workers, queue, idle in ((0, 1, 1.0), (1, -1, 1.0), (1, 1, 0.0)):
        with pytest.raises(ValueError):
            DaemonPool(workers=workers, queue=queue, name="bad", idle_timeout=idle)


def test_the_fetch_pool_and_the_lanes_keep_their_threads_and_log(caplog: pytest.LogCaptureFixture) -> None:
    """What the two layers kept from their own pools: on-demand fetch workers logging on the fetch pool's logger,
    lane workers fixed from the start and named lane-<name>-<i>."""
    fetch = FetchPool(workers=1, queue=0)
    done = threading.Event()

    def boom() -> None:
        raise OSError("vendor")

    with caplog.at_level(logging.ERROR, logger="verifier.collateral.fetch_pool"):
        assert fetch.submit(boom, cancel=_nothing)
        _eventually(lambda: fetch.outstanding == 0, "the fetch never ended")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("verifier.collateral.fetch_pool", "collateral fetch task failed")
    ]
    assert fetch.submit(done.set, cancel=_nothing) and done.wait(BOUND)
    assert all(t.daemon for t in _named("collateral-fetch"))
    fetch.close()
    lane = Lane("shape", LaneLimits(threads=2, queue=0))
    workers = _named("lane-shape")
    assert sorted(t.name for t in workers) == ["lane-shape-0", "lane-shape-1"] and all(t.daemon for t in workers)
    lane.close()
    _eventually(lambda: not _named("lane-shape"), "the lane's workers did not end after close")
