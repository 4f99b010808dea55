"""Bounded executors per kind of work ("lanes", the bulkhead pattern), so one slow dependency cannot take the
threads every other call needs.

A gRPC handler that must block (database, crypto) runs its work in the lane of its kind instead of asyncio's one
shared default pool:

- `appraise`: Appraise (CPU-bound verification plus the database writes that record it);
- `challenge`: CreateChallenge (one small database write);
- `admin`: the admin services and the admin-token lookup of the authentication interceptor;
- `housekeeping`: the periodic retention pass (one thread, never queued twice).

GetSigningKeys needs neither and is answered on the event loop itself. Vendor fetches have their own pool in the
collateral cache, database waits their own deadline (`storage.engine`), so a silent vendor or database fills at
most the appraise lane: challenges, signing keys, health and admin calls keep their threads.

Each lane has `threads` daemon threads and admits at most `queue` more calls waiting for one; past that a call is
refused at once with `OverloadedError("SERVER_BUSY")` (RESOURCE_EXHAUSTED with a RetryInfo) instead of queueing
without bound, and a call that waited `max_wait_s` for a thread (5 s; CreateChallenge 1 s) gets the same answer
instead of starting late. A call whose RPC was cancelled (deadline, client gone) while it waited is dropped before
it runs. Daemon threads: a thread stuck in a dependency never keeps the process from exiting after shutdown (the
threads and the bounded queue are a `verifier.daemon_pool.DaemonPool`, which says why not a ThreadPoolExecutor).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from ...daemon_pool import DaemonPool
from ...errors import ConfigError, OverloadedError

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

APPRAISE = "appraise"
CHALLENGE = "challenge"
ADMIN = "admin"
HOUSEKEEPING = "housekeeping"
RETRY_AFTER_S = 0.5


class Runner(Protocol):
    """Runs a blocking call off the event loop: `Lane.run`, or `asyncio.to_thread` where no lane is given."""

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T: ...


@dataclass(frozen=True)
class LaneLimits:
    threads: int
    queue: int
    max_wait_s: float = 5.0  # a call that waited this long for a thread is refused instead of started

    def __post_init__(self) -> None:
        if self.threads < 1 or self.queue < 0 or self.max_wait_s <= 0:
            raise ConfigError("LANE_LIMITS_INVALID", "a lane needs at least one thread and a queue bound >= 0")


DEFAULT_LIMITS: Mapping[str, LaneLimits] = {
    APPRAISE: LaneLimits(threads=8, queue=32),
    CHALLENGE: LaneLimits(threads=4, queue=64, max_wait_s=1.0),
    ADMIN: LaneLimits(threads=2, queue=16),
    HOUSEKEEPING: LaneLimits(threads=1, queue=0),
}


class Lane:
    """`threads` daemon workers and a bounded admission count (running + waiting): a `DaemonPool` of fixed
    workers, whose queued calls still run (or are refused, or dropped) after `close`."""

    def __init__(self, name: str, limits: LaneLimits) -> None:
        self.name = name
        self.limits = limits
        self._pool = DaemonPool(
            workers=limits.threads, queue=limits.queue, name=f"lane-{name}", logger=log, what=f"{name} lane call"
        )

    @property
    def admitted(self) -> int:
        """Calls running or waiting in this lane now."""
        return self._pool.outstanding

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(*args, **kwargs)` on a worker of this lane with the caller's context variables (as
        `asyncio.to_thread` does) and return its result or raise its exception. Raises `OverloadedError`
        SERVER_BUSY when the lane is full or closed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        call = _Call(self, loop, future, contextvars.copy_context(), lambda: fn(*args, **kwargs), time.monotonic())
        if not self._pool.submit(call.run, cancel=call.refuse, then=call.settle):
            raise OverloadedError(
                "SERVER_BUSY",
                f"this server is busy with {self.name} calls; retry in {RETRY_AFTER_S:g}s",
                retry_after=RETRY_AFTER_S,
            )
        return await future

    def close(self) -> None:
        """Refuse new calls and let the workers end once the queue is empty; never waits for a stuck worker."""
        self._pool.close(drain=True)


class _Call:
    """One admitted call: `run` in a worker (the slot is freed after it), then `settle` hands the outcome to the
    loop, so the slot is free before the caller resumes."""

    def __init__(
        self,
        lane: Lane,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        context: contextvars.Context,
        call: Callable[[], Any],
        queued_at: float,
    ) -> None:
        self.lane = lane
        self.loop = loop
        self.future = future
        self.context = context
        self.call = call
        self.queued_at = queued_at
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """In a worker: drop the call if its RPC was cancelled, refuse it if it waited too long, else run it."""
        waited = time.monotonic() - self.queued_at
        if self.future.cancelled():  # the RPC went away while this waited: do not start the work
            return
        if waited > self.lane.limits.max_wait_s:  # answer "busy" now rather than start work nobody may await
            self.error = OverloadedError(
                "SERVER_BUSY",
                f"{self.lane.name} call waited {waited:.1f}s for a thread; retry in {RETRY_AFTER_S:g}s",
                retry_after=RETRY_AFTER_S,
            )
            return
        try:
            self.result = self.context.run(self.call)
        except BaseException as failure:  # noqa: BLE001 - handed to the awaiting handler, which maps it
            self.error = failure

    def refuse(self) -> None:
        """Dropped from the queue without running (not done by a lane's draining close): answer SERVER_BUSY."""
        self.error = OverloadedError(
            "SERVER_BUSY", f"{self.lane.name} lane closed; retry in {RETRY_AFTER_S:g}s", retry_after=RETRY_AFTER_S
        )
        self.settle()

    def settle(self) -> None:
        """Hand the outcome to the awaiting coroutine on its loop (dropped when the loop is closed)."""
        _settle(self.loop, self.future, self.result, self.error)


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    def settle() -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: nobody waits for the answer any more
        log.debug("lane result dropped: event loop closed")


class Lanes:
    """The lanes of one server, built from `limits` (name -> LaneLimits)."""

    def __init__(self, limits: Mapping[str, LaneLimits] | None = None) -> None:
        self._lanes = {name: Lane(name, lim) for name, lim in (limits or DEFAULT_LIMITS).items()}

    def __getitem__(self, name: str) -> Lane:
        return self._lanes[name]

    def close(self) -> None:
        """Close every lane (see `Lane.close`)."""
        for lane in self._lanes.values():
            lane.close()
