"""Server interceptors: request id, metrics, error mapping, admin auth (outermost first, see `default_chain`).

Each wraps unary-unary handlers only (the whole verifier.v1 API); streaming handlers (health Watch, reflection)
pass through untouched. A per-call `CallState` in a contextvar carries the request id and final status code
between the layers; `asyncio.to_thread` copies the context, so service logs carry the request id too.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ...errors import AuthError, ErrorKind, VerifierError
from ...logging_setup import REQUEST_ID, accept_request_id
from ...metrics import Metrics

log = logging.getLogger(__name__)

ERROR_DOMAIN = "tee-verifier"
REQUEST_ID_KEY = "x-request-id"
ADMIN_SERVICE = "verifier.v1.ReferenceValues"

Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]

_CODE_OF_KIND: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.AUTH: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
}


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
    """Base: wrap the unary-unary behavior of every handler with `self.around`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = cast(Behavior, handler.unary_unary)
        method = handler_call_details.method
        details = handler_call_details

        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await self.around(method, details, inner, request, context)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def around(
        self, method: str, details: grpc.HandlerCallDetails, inner: Behavior, request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        raise NotImplementedError


class RequestIdInterceptor(_UnaryInterceptor):
    """Takes `x-request-id` from the caller (if log-safe) or makes a uuid4; echoes it in initial metadata."""

    async def around(self, method: str, details: grpc.HandlerCallDetails, inner: Behavior, request: Any,
                     context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request_id = accept_request_id(_metadata(details.invocation_metadata, REQUEST_ID_KEY))
        call_token = CALL.set(CallState(method=method, request_id=request_id))
        id_token = REQUEST_ID.set(request_id)
        try:
            await context.send_initial_metadata(((REQUEST_ID_KEY, request_id),))
            return await inner(request, context)
        finally:
            REQUEST_ID.reset(id_token)
            CALL.reset(call_token)


class MetricsInterceptor(_UnaryInterceptor):
    """Counts every RPC by method and final code and observes its latency once the handler has finished."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def around(self, method: str, details: grpc.HandlerCallDetails, inner: Behavior, request: Any,
                     context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            response = await inner(request, context)
            code = grpc.StatusCode.OK
            return response
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except BaseException:
            code = _final_code(context)
            raise
        finally:
            self._metrics.observe_rpc(method, code.name, time.perf_counter() - started)


def _final_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """The code an aborted call ends with: ours (CallState) or the handler's own abort (context.code())."""
    state = CALL.get()
    if state is not None and state.code != grpc.StatusCode.OK:
        return state.code
    code: Any = context.code()  # an int in grpc.aio, a StatusCode in some versions; None when never set
    if isinstance(code, grpc.StatusCode):
        return code
    for candidate in grpc.StatusCode:
        if candidate.value[0] == code:
            return candidate
    return grpc.StatusCode.UNKNOWN


class ErrorInterceptor(_UnaryInterceptor):
    """Maps exceptions to gRPC status + google.rpc.ErrorInfo; never sends exception text of unexpected errors."""

    async def around(self, method: str, details: grpc.HandlerCallDetails, inner: Behavior, request: Any,
                     context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            raise  # a handler already aborted with its own status
        except VerifierError as error:
            code = _CODE_OF_KIND.get(error.kind)
            if code is None:  # EvidenceError must have become a signed result; INTERNAL kind is a bug
                await _abort_internal(context, method, error)
                raise
            log.info("%s failed: %s %s", method, code.name, error.code)
            await _abort(context, code, error.code, error.message, retryable=error.retryable)
            raise
        except Exception as error:
            await _abort_internal(context, method, error)
            raise


async def _abort_internal(context: grpc.aio.ServicerContext[Any, Any], method: str, error: BaseException) -> None:
    request_id = REQUEST_ID.get() or "-"
    log.error("%s failed with an unexpected error", method, exc_info=error)
    await _abort(context, grpc.StatusCode.INTERNAL, "INTERNAL", f"internal error (request id {request_id})")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, reason: str, message: str,
                 *, retryable: bool = False) -> None:
    request_id = REQUEST_ID.get() or ""
    state = CALL.get()
    if state is not None:
        state.code = code
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=ERROR_DOMAIN,
        metadata={"request_id": request_id, "retryable": "true" if retryable else "false"},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=[detail])
    # grpc-stubs lacks the aio abort_with_status; it supersedes code, message and trailing metadata.
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]


class AdminAuthInterceptor(_UnaryInterceptor):
    """`authorization: Bearer <token>` whose SHA-256 hex is configured; fail closed when none is configured."""

    def __init__(self, token_sha256: Sequence[str], service: str = ADMIN_SERVICE) -> None:
        self._digests = tuple(d.strip().lower() for d in token_sha256 if d.strip())
        self._prefix = f"/{service}/"
        if not self._digests:
            log.warning("no admin tokens configured: every %s call will be refused", service)

    async def around(self, method: str, details: grpc.HandlerCallDetails, inner: Behavior, request: Any,
                     context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if method.startswith(self._prefix):
            self._check(method, _metadata(details.invocation_metadata, "authorization"), context.peer())
        return await inner(request, context)

    def _check(self, method: str, header: str | None, peer: str) -> None:
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            log.warning("admin call %s from %s refused: no bearer token", method, peer)
            raise AuthError("ADMIN_AUTH_REQUIRED", "admin calls need `authorization: Bearer <token>` metadata")
        presented = hashlib.sha256(token.encode("utf-8")).hexdigest()
        matched = False
        for digest in self._digests:  # compare against every digest: no early exit
            matched |= hmac.compare_digest(presented, digest)
        if not matched:
            why = "invalid token" if self._digests else "no admin tokens configured"
            log.warning("admin call %s from %s refused: %s", method, peer, why)
            raise AuthError("ADMIN_TOKEN_INVALID", "the admin token is not accepted")
        log.info("admin call %s from %s authorized", method, peer)


def default_chain(metrics: Metrics, admin_token_sha256: Sequence[str]) -> list[grpc.aio.ServerInterceptor[Any, Any]]:
    """The server's interceptors, outermost first: request id, metrics, errors, admin auth."""
    return [RequestIdInterceptor(), MetricsInterceptor(metrics), ErrorInterceptor(),
            AdminAuthInterceptor(admin_token_sha256)]
