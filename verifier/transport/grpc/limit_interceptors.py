"""Load limits applied before any handler work: per-method rate limits (`RateLimitInterceptor`) and the bound on
request bytes held at once (`InFlightBytesInterceptor`)."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from ...errors import OverloadedError
from .admin_auth import peer_certificate
from .interceptor_base import Behavior, _abort, _UnaryInterceptor
from .ratelimit import RateLimiter, cached_client_key

log = logging.getLogger(__name__)


class RateLimitInterceptor(_UnaryInterceptor):
    """Refuses a call over its method's rate limit (see `ratelimit`) with RESOURCE_EXHAUSTED `RATE_LIMITED` and a
    RetryInfo, before authentication or any handler work. Methods the limiter does not limit pass untouched."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    def applies(self, method: str) -> bool:
        return self._limiter.limits(method)

    async def around(
        self,
        method: str,
        details: grpc.HandlerCallDetails,
        inner: Behavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        if self._limiter.limits(method):
            peer = context.peer()
            leaf, _ = peer_certificate(context)
            decision = self._limiter.acquire(method, cached_client_key(peer, leaf))
            if not decision.allowed:
                log.warning("call %s from %s refused: %s rate limit", method, peer, decision.scope)
                await _abort(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "RATE_LIMITED",
                    f"too many {method.rsplit('/', 1)[-1]} calls ({decision.scope} limit); retry in "
                    f"{decision.retry_after:.3f}s",
                    retryable=True,
                    retry_delay=decision.retry_after,
                )
        return await inner(request, context)


class InFlightBytesInterceptor(_UnaryInterceptor):
    """Bounds the bytes of the requests this server holds at once (running or waiting in a lane): a request that
    would take the total past `budget` is refused at once with OverloadedError `REQUEST_BYTES_IN_FLIGHT`
    (RESOURCE_EXHAUSTED, RetryInfo) and dropped, so memory stays flat under a flood of large requests. A single
    request is always admitted when nothing else is in flight (`max_message_bytes` bounds it)."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self.in_flight = 0  # changed on the event loop only

    async def around(
        self,
        method: str,
        details: grpc.HandlerCallDetails,
        inner: Behavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        size = int(request.ByteSize()) if hasattr(request, "ByteSize") else 0
        if self.in_flight and self.in_flight + size > self._budget:
            log.warning("call %s refused: %d request bytes already in flight", method, self.in_flight)
            raise OverloadedError(
                "REQUEST_BYTES_IN_FLIGHT",
                f"this server holds {self.in_flight} bytes of requests (limit {self._budget}); retry in 1s",
            )
        self.in_flight += size
        try:
            return await inner(request, context)
        finally:
            self.in_flight -= size
