"""Best-effort work off the answer's path (issue 11 item 7): one worker thread and a bounded queue.

An appraisal is recorded (appraisal row, audit entry) before its token is returned; keeping its evidence for impact
analysis is optional and must never delay or fail the answer, e.g. while SQLite waits out a busy timeout. Work that
does not fit the queue is dropped with a warning; `close` waits for the queue within a bound."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_BATCH = 64  # items of one batched submission handed to its handler at once


@dataclass(frozen=True)
class _Batched:
    """One item for `handler`, which takes every item queued back to back for it in one call."""

    handler: Callable[[list[Any]], None]
    item: Any


class BestEffortWorker:
    def __init__(self, name: str, *, max_pending: int = 256) -> None:
        self._queue: queue.Queue[Callable[[], None] | _Batched | None] = queue.Queue(maxsize=max_pending)
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._dropped

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue `work`; False (and a warning) when the queue is full: the work is dropped, never waited for."""
        return self._put(work)

    def _put(self, work: Callable[[], None] | _Batched) -> bool:
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self._dropped += 1
            log.warning("best-effort queue %s is full: work dropped (%d so far)", self._thread.name, self._dropped)
            return False
        return True

    def submit_batched(self, handler: Callable[[list[Any]], None], item: Any) -> bool:
        """Queue `item` for `handler`: items for the same handler queued back to back are handed to it together
        (at most MAX_BATCH), e.g. written in one transaction. False (and a warning) when the queue is full, as
        `submit`."""
        return self._put(_Batched(handler, item))

    def join(self, timeout: float) -> bool:
        """Wait until the queued work is done, at most `timeout` seconds; True when it is."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (within `timeout`), then stop the worker."""
        self.join(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return  # still busy past the bound: the daemon thread dies with the process
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        held: Callable[[], None] | _Batched | None = None
        while True:
            work = held if held is not None else self._queue.get()
            held, done = None, 1
            try:
                if work is None:
                    return
                if isinstance(work, _Batched):
                    items = [work.item]
                    while len(items) < MAX_BATCH:
                        try:
                            following = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if isinstance(following, _Batched) and following.handler == work.handler:
                            items.append(following.item)
                            done += 1
                        else:
                            held = following  # runs next, after this batch
                            break
                    work.handler(items)
                else:
                    work()
            except Exception:
                log.exception("best-effort work failed")
            finally:
                for _ in range(done):
                    self._queue.task_done()
