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

log = logging.getLogger(__name__)


class BestEffortWorker:
    def __init__(self, name: str, *, max_pending: int = 256) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_pending)
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._dropped

    def submit(self, work: Callable[[], None]) -> bool:
        """Queue `work`; False (and a warning) when the queue is full: the work is dropped, never waited for."""
        try:
            self._queue.put_nowait(work)
        except queue.Full:
            self._dropped += 1
            log.warning("best-effort queue %s is full: work dropped (%d so far)", self._thread.name, self._dropped)
            return False
        return True

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
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                work()
            except Exception:
                log.exception("best-effort work failed")
            finally:
                self._queue.task_done()
