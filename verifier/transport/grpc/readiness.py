"""Readiness: a quick database check, cached and refreshed in the background so probes cost nothing.

`Readiness.run()` (a task of the server) calls the check every `interval` seconds in a daemon thread and waits at
most `timeout` seconds for it; a check that fails, raises or hangs makes the service not ready. At most one check
thread is ever in flight: while a hung one is still running, no other is started and the service stays not ready.
`on_change(ready)` runs on the event loop whenever the cached answer changes (the server flips gRPC health).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between checks: the cached answer is at most about this old
CHECK_TIMEOUT = 1.0  # seconds a check may take before it counts as failed


class Readiness:
    """The cached result of `check` (it raises when the dependency is not usable)."""

    def __init__(
        self,
        check: Callable[[], None],
        on_change: Callable[[bool], Awaitable[None]],
        *,
        interval: float = CHECK_INTERVAL,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self._check, self._on_change = check, on_change
        self._interval, self._timeout = interval, timeout
        self._pending: asyncio.Future[BaseException | None] | None = None
        self.ready = True  # the server checked the database before starting
        self.reason = ""

    async def run(self) -> None:
        """Check forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(self._interval)
            ready, reason = await self.probe()
            if ready != self.ready:
                self.ready, self.reason = ready, reason
                if ready:
                    log.warning("readiness: the database check passes again: ready")
                else:
                    log.warning("readiness: the database check fails (%s): not ready", reason)
                await self._on_change(ready)

    async def probe(self) -> tuple[bool, str]:
        """(passed, why not) for one check, never blocking the event loop for longer than `timeout`."""
        if self._pending is not None and not self._pending.done():
            return False, "the previous check has not finished"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BaseException | None] = loop.create_future()
        self._pending = future

        def work() -> None:
            outcome: BaseException | None = None
            try:
                self._check()
            except BaseException as error:  # noqa: BLE001 - every failure means "not ready"
                outcome = error
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop has closed meanwhile
                pass

        threading.Thread(target=work, name="verifier-readiness", daemon=True).start()
        try:
            error = await asyncio.wait_for(asyncio.shield(future), self._timeout)
        except TimeoutError:
            return False, f"no answer within {self._timeout:g}s"
        if error is not None:
            return False, str(getattr(error, "code", "")) or type(error).__name__
        return True, ""


def _settle(future: asyncio.Future[BaseException | None], outcome: BaseException | None) -> None:
    if not future.done():
        future.set_result(outcome)
