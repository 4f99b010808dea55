"""A small bounded pool of daemon threads for collateral loads (`cache.CachedSource`): the shared
`verifier.daemon_pool.DaemonPool` with on-demand workers.

Not `concurrent.futures.ThreadPoolExecutor`: its workers are joined at interpreter exit, so one fetch stuck in a
silent vendor call would keep the process alive. Here the workers are daemon threads, started on demand (at most
`workers`) and ending after `idle_timeout` seconds without work; at most `queue` tasks wait for a worker, and
`submit` refuses more at once instead of queueing. `close` drops the waiting tasks (calling their `cancel`) and
returns without waiting for the running ones.
"""

from __future__ import annotations

import logging

from ..daemon_pool import DaemonPool

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 30.0


class FetchPool(DaemonPool):
    """At most `workers` daemon threads running submitted tasks, at most `queue` tasks waiting for one."""

    def __init__(
        self, *, workers: int, queue: int, name: str = "collateral-fetch", idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        super().__init__(
            workers=workers, queue=queue, name=name, idle_timeout=idle_timeout, logger=log, what="collateral fetch"
        )
