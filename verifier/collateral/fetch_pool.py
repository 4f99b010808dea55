"""A small bounded pool of daemon threads for collateral loads (`cache.CachedSource`).

Not `concurrent.futures.ThreadPoolExecutor`: its workers are joined at interpreter exit, so one fetch stuck in a
silent vendor call would keep the process alive. Here the workers are daemon threads, started on demand (at most
`workers`) and ending after `idle_timeout` seconds without work; at most `queue` tasks wait for a worker, and
`submit` refuses more at once instead of queueing. `close` drops the waiting tasks (calling their `cancel`) and
returns without waiting for the running ones.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 30.0


@dataclass(frozen=True)
class _Task:
    run: Callable[[], None]
    cancel: Callable[[], None]


class FetchPool:
    """At most `workers` daemon threads running submitted tasks, at most `queue` tasks waiting for one."""

    def __init__(
        self, *, workers: int, queue: int, name: str = "collateral-fetch", idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        if workers < 1 or queue < 0 or idle_timeout <= 0:
            raise ValueError("need workers >= 1, queue >= 0 and idle_timeout > 0")
        self._workers = workers
        self._queue = queue
        self._name = name
        self._idle_timeout = idle_timeout
        self._cond = threading.Condition(threading.Lock())
        self._tasks: deque[_Task] = deque()
        self._threads = 0  # started and not ended
        self._idle = 0  # of those, waiting for a task
        self._outstanding = 0  # tasks waiting or running
        self._started = 0  # for thread names
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        with self._cond:
            return self._closed

    def submit(self, run: Callable[[], None], *, cancel: Callable[[], None]) -> bool:
        """Queue `run` for a worker thread; False (nothing queued) when `queue` tasks already wait for a busy
        worker or the pool is closed. `cancel` is called instead of `run` when `close` drops the task. Exceptions
        of `run` are logged, never raised. Never raises."""
        with self._cond:
            if self._closed or self._outstanding >= self._workers + self._queue:
                return False
            self._outstanding += 1
            task = _Task(run, cancel)
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
                threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()
            except RuntimeError:  # cannot start a thread (interpreter shutting down, thread limit)
                with self._cond:
                    self._threads -= 1
                    if self._threads == 0 and any(queued is task for queued in self._tasks):
                        self._tasks.remove(task)  # no worker left to run it: undo
                        self._outstanding -= 1
                        return False
        return True

    def close(self) -> None:
        """Stop taking tasks, cancel the waiting ones and return at once; running tasks finish in their daemon
        threads (or are abandoned at interpreter exit). Idempotent; never raises."""
        with self._cond:
            self._closed = True
            dropped = list(self._tasks)
            self._tasks.clear()
            self._outstanding -= len(dropped)
            self._cond.notify_all()
        for task in dropped:
            try:
                task.cancel()
            except Exception:
                log.exception("cancelling a queued collateral fetch failed")

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                while not self._tasks and not self._closed:
                    if not self._cond.wait(self._idle_timeout) and not self._tasks:
                        break
                self._idle -= 1
                if not self._tasks:  # idle too long, or closed
                    self._threads -= 1
                    return
                task = self._tasks.popleft()
            try:
                task.run()
            except BaseException:
                log.exception("collateral fetch task failed")
            finally:
                with self._cond:
                    self._outstanding -= 1
