"""Interceptor logic without a server: error mapping, admin auth, request ids and the logging filter."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from verifier import errors
from verifier.logging_setup import REQUEST_ID, RequestIdFilter, accept_request_id, install_logging
from verifier.metrics import Metrics
from verifier.transport.grpc.interceptors import (
    AdminAuthInterceptor,
    ErrorInterceptor,
    MetricsInterceptor,
    RequestIdInterceptor,
)


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self) -> None:
        self.status: grpc.Status | None = None
        self.initial: Any = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted

    async def send_initial_metadata(self, metadata: Any) -> None:
        self.initial = metadata

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def code(self) -> Any:
        return None


class Details:
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.method, self.invocation_metadata = method, metadata


def raising(error: BaseException) -> Any:
    async def inner(request: Any, context: Any) -> Any:
        raise error
    return inner


async def ok(request: Any, context: Any) -> str:
    return "ok"


def decoded(context: FakeContext) -> tuple[grpc.StatusCode, str, error_details_pb2.ErrorInfo]:
    assert context.status is not None
    (key, value), = context.status.trailing_metadata
    assert key == "grpc-status-details-bin"
    status = status_pb2.Status.FromString(value)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return context.status.code, context.status.details, info


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (errors.RequestError("BAD", "m"), grpc.StatusCode.INVALID_ARGUMENT, "BAD"),
        (errors.NotFoundError("NF", "m"), grpc.StatusCode.NOT_FOUND, "NF"),
        (errors.UnavailableError("DOWN", "m"), grpc.StatusCode.UNAVAILABLE, "DOWN"),
        (errors.AuthError("AUTH", "m"), grpc.StatusCode.UNAUTHENTICATED, "AUTH"),
        (errors.AccessDeniedError("PERM", "m"), grpc.StatusCode.PERMISSION_DENIED, "PERM"),
        (errors.EvidenceError("SIG", "secret"), grpc.StatusCode.INTERNAL, "INTERNAL"),
        (errors.VerifierError("BUG", "secret"), grpc.StatusCode.INTERNAL, "INTERNAL"),
        (KeyError("secret"), grpc.StatusCode.INTERNAL, "INTERNAL"),
    ],
)
def test_error_mapping(error: BaseException, code: grpc.StatusCode, reason: str) -> None:
    context = FakeContext()
    token = REQUEST_ID.set("rid-1")
    try:
        with pytest.raises(Aborted):
            asyncio.run(ErrorInterceptor().around("/m", Details("/m"), raising(error), None, context))  # type: ignore[arg-type]
    finally:
        REQUEST_ID.reset(token)
    got_code, message, info = decoded(context)
    assert (got_code, info.reason, info.domain, info.metadata["request_id"]) == (code, reason, "tee-verifier", "rid-1")
    assert "secret" not in message
    if code is grpc.StatusCode.INTERNAL:
        assert message == "internal error (request id rid-1)"
    assert info.metadata["retryable"] == ("true" if code is grpc.StatusCode.UNAVAILABLE else "false")


DIGEST = hashlib.sha256(b"tok").hexdigest()


@pytest.mark.parametrize(
    ("digests", "header", "reason"),
    [
        ((DIGEST,), None, "ADMIN_AUTH_REQUIRED"),
        ((DIGEST,), "Basic dG9r", "ADMIN_AUTH_REQUIRED"),
        ((DIGEST,), "Bearer ", "ADMIN_AUTH_REQUIRED"),
        ((DIGEST,), "Bearer nope", "ADMIN_TOKEN_INVALID"),
        ((), "Bearer tok", "ADMIN_TOKEN_INVALID"),  # nothing configured: fail closed
        ((DIGEST,), "Bearer tok", None),
        (("00" * 32, DIGEST.upper()), "bearer tok", None),
    ],
)
def test_admin_auth(digests: tuple[str, ...], header: str | None, reason: str | None,
                    caplog: pytest.LogCaptureFixture) -> None:
    interceptor = AdminAuthInterceptor(digests)
    metadata = (("authorization", header),) if header is not None else ()
    call = interceptor.around("/verifier.v1.ReferenceValues/Add", Details("/x", metadata), ok, None,  # type: ignore[arg-type]
                              FakeContext())  # type: ignore[arg-type]
    if reason is None:
        assert asyncio.run(call) == "ok"
        return
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(call)
    assert info.value.code == reason
    assert "tok" not in caplog.text.replace("token", "")


def test_admin_auth_leaves_other_services_open() -> None:
    call = AdminAuthInterceptor(()).around("/verifier.v1.Verifier/Appraise", Details("/x"), ok, None,  # type: ignore[arg-type]
                                          FakeContext())  # type: ignore[arg-type]
    assert asyncio.run(call) == "ok"


def test_request_id_is_echoed_and_scoped() -> None:
    seen: list[str | None] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(REQUEST_ID.get())
        return "ok"

    context = FakeContext()
    asyncio.run(RequestIdInterceptor().around("/m", Details("/m", (("x-request-id", "abc-1"),)), inner, None,  # type: ignore[arg-type]
                                              context))  # type: ignore[arg-type]
    assert seen == ["abc-1"] and context.initial == (("x-request-id", "abc-1"),)
    assert REQUEST_ID.get() is None
    asyncio.run(RequestIdInterceptor().around("/m", Details("/m", (("x-request-id", "bad\nid"),)), inner, None,  # type: ignore[arg-type]
                                              context))  # type: ignore[arg-type]
    assert seen[1] != "bad\nid" and len(seen[1] or "") == 36


def test_accept_request_id() -> None:
    assert accept_request_id("a.b:c-d_1") == "a.b:c-d_1"
    assert accept_request_id("x" * 129) != "x" * 129
    assert accept_request_id(None)


def test_metrics_observed_after_the_handler() -> None:
    metrics = Metrics()

    async def slow(request: Any, context: Any) -> str:
        await asyncio.sleep(0.02)
        return "ok"

    asyncio.run(MetricsInterceptor(metrics).around("/m", Details("/m"), slow, None, FakeContext()))  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        asyncio.run(MetricsInterceptor(metrics).around("/m", Details("/m"), raising(KeyError()), None,  # type: ignore[arg-type]
                                                       FakeContext()))  # type: ignore[arg-type]
    text = metrics.exposition().decode()
    assert 'verifier_rpc_requests_total{code="OK",method="/m"} 1.0' in text
    assert 'verifier_rpc_requests_total{code="UNKNOWN",method="/m"} 1.0' in text
    assert metrics.registry.get_sample_value("verifier_rpc_duration_seconds_sum", {"method": "/m"}) >= 0.02  # type: ignore[operator]
    assert Metrics().exposition() != metrics.exposition()  # private registries


def test_request_id_filter_and_install_logging() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    token = REQUEST_ID.set("rid-9")
    try:
        assert RequestIdFilter().filter(record) and record.request_id == "rid-9"  # type: ignore[attr-defined]
    finally:
        REQUEST_ID.reset(token)
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers = []
    try:
        install_logging("debug")
        install_logging("debug")  # idempotent
        (handler,) = root.handlers
        assert any(isinstance(f, RequestIdFilter) for f in handler.filters)
        assert root.level == logging.DEBUG
    finally:
        root.handlers, root.level = saved, level
