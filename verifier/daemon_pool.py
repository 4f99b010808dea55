"""One small bounded pool of daemon threads, shared by the collateral fetch pool (`collateral.fetch_pool`) and the
gRPC lanes (`transport.grpc.lanes`).

Not `concurrent.futures.ThreadPoolExecutor`: its workers are joined at interpreter exit, so one task stuck in a
silent dependency (a vendor that never answers, a database that hangs) would keep the process alive. Here the
workers are daemon threads. Nor does the executor bound its queue: `submit` here refuses at once (returns False)
once `workers + queue` tasks are running or waiting, instead of queueing without bound.

Two kinds of workers:

- `idle_timeout` given: started on demand (at most `workers`) and ending after `idle_timeout` seconds without work;
- `idle_timeout` None: `workers` fixed threads started by the constructor, ending only after `close`.

`close()` drops the waiting tasks (calling their `cancel`) and returns at once; `close(drain=True)` lets the waiting
tasks run and the workers end once the queue is empty. Neither waits for a running task. Standard library only: no
import from the packages that use it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Task:
    run: Callable[[], None]
    cancel: Callable[[], None]
    then: Callable[[], None] | None


class DaemonPool:
    """At most `workers` daemon threads running submitted tasks, at most `queue` tasks waiting for one.

    Threads are named `{name}-{n}` (fixed workers from 0, on-demand ones from 1). Failures of a task are logged on
    `logger` as "`what` task failed", never raised."""

    def __init__(
        self,
        *,
        workers: int,
        queue: int,
        name: str,
        idle_timeout: float | None = None,
        logger: logging.Logger = log,
        what: str = "pool",
    ) -> None:
        if workers < 1 or queue < 0 or (idle_timeout is not None and idle_timeout <= 0):
            raise ValueError("need workers >= 1, queue >= 0 and idle_timeout > 0")
        self._workers = workers
        self._queue = queue
        self._name = name
        self._idle_timeout = idle_timeout
        self._logger = logger
        self._what = what
        self._cond = threading.Condition(threading.Lock())
        self._tasks: deque[_Task] = deque()
        self._threads = 0  # started and not ended
        self._idle = 0  # of those, waiting for a task
        self._outstanding = 0  # tasks waiting or running
        self._started = 0  # for the names of on-demand threads
        self._closed = False
        if idle_timeout is None:
            self._start_fixed()

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        with self._cond:
            return self._closed

    @property
    def outstanding(self) -> int:
        """Tasks running or waiting now (a task's slot is free before its `then` runs)."""
        with self._cond:
            return self._outstanding

    def submit(
        self, run: Callable[[], None], *, cancel: Callable[[], None], then: Callable[[], None] | None = None
    ) -> bool:
        """Queue `run` for a worker thread; False (nothing queued) when `workers + queue` tasks already run or wait,
        or the pool is closed. `cancel` is called instead of `run` when `close` drops the task; `then`, if given,
        after `run` in the same thread once the task's slot is free. Exceptions of `run` and `then` are logged,
        never raised. Never raises."""
        with self._cond:
            if self._closed or self._outstanding >= self._workers + self._queue:
                return False
            self._outstanding += 1
            task = _Task(run, cancel, then)
            self._tasks.append(task)
            start = self._idle < len(self._tasks) and self._threads < self._workers
            if start:
                self._threads += 1
                self._started += 1
                number = self._started
            else:
                self._cond.notify()
        if start:
            try:
                self._start(number)
            except RuntimeError:  # cannot start a thread (interpreter shutting down, thread limit)
                with self._cond:
                    if self._threads == 0 and any(queued is task for queued in self._tasks):
                        self._tasks.remove(task)  # no worker left to run it: undo
                        self._outstanding -= 1
                        return False
        return True

    def close(self, *, drain: bool = False) -> None:
        """Stop taking tasks and return at once, never waiting for a running task (it finishes in its daemon thread
        or is abandoned at interpreter exit). The waiting tasks are cancelled, or with `drain` left to run before the
        workers end. Idempotent; never raises."""
        with self._cond:
            self._closed = True
            dropped = [] if drain else list(self._tasks)
            if not drain:
                self._tasks.clear()
            self._outstanding -= len(dropped)
            self._cond.notify_all()
        for task in dropped:
            try:
                task.cancel()
            except Exception:
                self._logger.exception("cancelling a queued %s failed", self._what)

    def _start_fixed(self) -> None:
        for number in range(self._workers):
            with self._cond:
                self._threads += 1
            try:
                self._start(number)
            except RuntimeError:
                self.close()  # the workers already started end
                raise

    def _start(self, number: int) -> None:
        """Start one worker counted in `_threads` already; on failure uncount it and raise RuntimeError."""
        try:
            threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
        except RuntimeError:
            with self._cond:
                self._threads -= 1
            raise

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._tasks and not self._closed:
                    if not self._cond.wait(self._idle_timeout) and not self._tasks:
                        break  # idle for `idle_timeout` (never with fixed workers: wait(None) returns True)
                self._idle -= 1
                if not self._tasks:  # idle too long, or closed and drained
                    self._threads -= 1
                    return
                task = self._tasks.popleft()
            try:
                task.run()
            except BaseException:
                self._logger.exception("%s task failed", self._what)
            finally:
                with self._cond:
                    self._outstanding -= 1
            if task.then is not None:
                try:
                    task.then()
                except BaseException:
                    self._logger.exception("%s task failed", self._what)
