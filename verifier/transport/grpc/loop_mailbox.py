"""Outcomes handed from another thread to the event loop, one wake-up of the loop per burst.

`loop.call_soon_threadsafe` writes a byte to the loop's self-pipe on every call; the group commit's thread ends a
batch of several appraisals at once, and each of them used to cost a `write` (and the loop a `read`). A `LoopMailbox`
queues the outcomes and schedules one drain until the loop ran it: the first outcome of a burst wakes the loop, the
others ride along."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class LoopMailbox:
    """`post(callback, *args)` from any thread: `callback(*args)` on `loop`, in posting order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, callback: Callable[..., None], *args: Any) -> None:
        """Queue the call; wake the loop unless a drain is already scheduled. Raises RuntimeError when the loop is
        closed (as `call_soon_threadsafe` does)."""
        with self._lock:
            self._items.append((callback, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            with self._lock:
                self._scheduled = False
            raise

    def _drain(self) -> None:
        """Run everything queued so far (on the loop). A callback that raises is reported to the loop's exception
        handler and does not stop the others."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._scheduled = False
        for callback, args in items:
            try:
                callback(*args)
            except Exception as error:  # noqa: BLE001 - as asyncio does for a failing call_soon callback
                self.loop.call_exception_handler({"message": "LoopMailbox callback failed", "exception": error})
