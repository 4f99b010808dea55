"""The shared base of the server interceptors: the per-call `CallState`, the unary-unary wrapper every interceptor
derives from, `InterceptorChain` (the server's layers as one gRPC interceptor) and `_abort` (a gRPC status with
google.rpc.ErrorInfo and RetryInfo details).

A per-call `CallState` in a contextvar carries the request id and final status code between the layers;
`asyncio.to_thread` copies the context, so service logs carry the request id too.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ...logging_setup import REQUEST_ID

ERROR_DOMAIN = "tee-verifier"

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


@dataclass
class CallState:
    method: str
    request_id: str
    code: grpc.StatusCode = grpc.StatusCode.OK


CALL: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("verifier_call", default=None)


def _metadata(values: Sequence[tuple[str, str | bytes]] | None, key: str) -> str | None:
    for k, v in values or ():
        if k.lower() == key:
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else v
    return None


class _UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Base: wrap the unary-unary behavior of every handler `applies` to with `self.around`. Usable alone as a gRPC
    interceptor; the server runs its layers through one `InterceptorChain`."""

    def applies(self, method: str) -> bool:
        """False when `around` is not to run for `method` (the chain then skips it): it would do nothing but await
        `inner`, or the layer leaves the method out (the metrics layer and health checks)."""
        return True

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or handler.unary_unary is None or not self.applies(method):
            return handler
        inner = cast(Behavior, handler.unary_unary)
        details = handler_call_details

        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await self.around(method, details, inner, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def around(
        self,
        method: str,
        details: grpc.HandlerCallDetails,
        inner: Behavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        raise NotImplementedError


class InterceptorChain(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """`layers` (outermost first) as one gRPC interceptor: each call runs the same `around`s in the same order as
    the layers installed one by one would, without the handler, wrapper coroutine and interceptor hop each layer
    adds per call. Per method, the layers whose `applies(method)` is false are left out (they would only await the
    next one); the set of layers of a method is computed once."""

    def __init__(self, layers: Sequence[_UnaryInterceptor]) -> None:
        self.layers = tuple(layers)
        self._plans: dict[str, tuple[_UnaryInterceptor, ...]] = {}

    def layers_for(self, method: str) -> tuple[_UnaryInterceptor, ...]:
        """The layers that act on `method`, outermost first."""
        plan = self._plans.get(method)
        if plan is None:
            plan = self._plans[method] = tuple(layer for layer in self.layers if layer.applies(method))
        return plan

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # unknown methods (only served ones reach `layers_for`) and streaming handlers
        method = handler_call_details.method
        behavior = cast(Behavior, handler.unary_unary)
        for layer in reversed(self.layers_for(method)):
            # a partial of the plain function, which grpc (inspect.iscoroutinefunction) sees as a coroutine function
            behavior = functools.partial(type(layer).around, layer, method, handler_call_details, behavior)
        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


REQUEST_ID_KEY = "x-request-id"  # metadata a caller may send; the id is echoed in the trailing metadata
# UTF-8 bytes of the message: the status travels in trailers, which gRPC bounds at 8-16 KiB, and it is sent twice
# there (grpc-message, percent-encoded: up to 3 bytes per byte, and inside grpc-status-details-bin), beside the
# request id; counted in characters, 512 emoji made 8.9 KB and the call failed RESOURCE_EXHAUSTED.
MAX_ERROR_MESSAGE = 512


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    reason: str,
    message: str,
    *,
    retryable: bool = False,
    retry_delay: float | None = None,
) -> None:
    """Abort with `code`, an ErrorInfo (`reason`, request id, retryable) and, with `retry_delay` (seconds), a
    google.rpc.RetryInfo."""
    request_id = REQUEST_ID.get() or ""
    encoded = message.encode("utf-8", "replace")
    if len(encoded) > MAX_ERROR_MESSAGE:  # messages may quote the request: keep the status within gRPC's limits
        message = encoded[:MAX_ERROR_MESSAGE].decode("utf-8", "ignore") + " ... (truncated)"
    state = CALL.get()
    if state is not None:
        state.code = code
    info = error_details_pb2.ErrorInfo(
        reason=reason,
        domain=ERROR_DOMAIN,
        metadata={"request_id": request_id, "retryable": "true" if retryable else "false"},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    details = [detail]
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1_000_000, int(retry_delay * 1e9)))  # at least 1 ms: zero reads as "no delay"
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=details)
    final = rpc_status.to_status(status)
    trailers = (*final.trailing_metadata, (REQUEST_ID_KEY, request_id)) if request_id else final.trailing_metadata
    # grpc-stubs lacks the aio abort_with_status; it supersedes code, message and trailing metadata, so the request
    # id the RequestIdInterceptor set goes in again.
    # (`to_status` makes a namedtuple grpc.Status: `_replace` keeps its type.)
    await context.abort_with_status(final._replace(trailing_metadata=trailers))  # type: ignore[attr-defined]
