"""A real gRPC server (port 0, the production `VerifierServer` over `bootstrap.build`) on its own event-loop
thread, for fuzzers driving it with the synchronous generated client. It captures the server's unexpected-error
tracebacks (the ERROR records of the error interceptor) by request id, and checks every reply against the error
contract of the API (README "gRPC API"): only the expected non-OK codes, each with a google.rpc.ErrorInfo."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.property.fuzz_findings import compact, origin
from verifier.bootstrap import Components
from verifier.logging_setup import REQUEST_ID
from verifier.settings import Rate
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2_grpc as pb_grpc

ALLOWED_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
INTERCEPTOR_LOGGER = "verifier.transport.grpc.interceptors"


class _Tracebacks(logging.Handler):
    """Keeps the traceback and origin of every record logged with exc_info, keyed by the request id in effect."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.by_request: dict[str, tuple[str, str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            self.by_request[REQUEST_ID.get() or "-"] = (compact(error), origin(error))


@dataclass
class Failure:
    """An RPC that broke the contract: INTERNAL (a crash), an unexpected code, or a missing ErrorInfo."""

    method: str
    code: str
    reason: str
    request_id: str
    traceback: str
    where: str  # `origin()` of the server-side exception, or the code when there is none


@dataclass
class Reply:
    response: Any = None
    code: grpc.StatusCode = grpc.StatusCode.OK
    reason: str = ""
    request_id: str = ""
    failure: Failure | None = None
    echoed_request_id: str | None = field(default=None)


class ServerThread:
    """Start with `start()`, stop with `stop()`; `call(stub_method, request, metadata)` returns a `Reply`."""

    def __init__(self, components: Components) -> None:
        self.components = components
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-fuzz-server", daemon=True)
        # The fuzzers call admin methods with bearer tokens over plaintext loopback: they opt in, as an operator
        # would have to (the server refuses the opt-in on a non-loopback listen address). They make hundreds of
        # calls a second from one client: rate limits off (tested in test_rate_limit*.py).
        off = Rate(0.0, 0)
        opted_in = dataclasses.replace(
            components.settings,
            allow_plaintext_admin=True,
            rate_challenge_per_client=off,
            rate_challenge_global=off,
            rate_appraise_per_client=off,
            rate_appraise_global=off,
        )
        self._server = VerifierServer(dataclasses.replace(components, settings=opted_in))
        self._tracebacks = _Tracebacks()
        self.channel: grpc.Channel | None = None
        self.port = 0  # the gRPC port once started

    def start(self) -> None:
        logging.getLogger(INTERCEPTOR_LOGGER).addHandler(self._tracebacks)
        self._thread.start()
        port, _ = asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(30)
        self.port = port
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[
                ("grpc.max_send_message_length", 8 * 1024 * 1024),
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ],
        )
        grpc.channel_ready_future(self.channel).result(timeout=30)

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()
        asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        logging.getLogger(INTERCEPTOR_LOGGER).removeHandler(self._tracebacks)

    @property
    def verifier(self) -> Any:
        return pb_grpc.VerifierStub(self.channel)  # type: ignore[no-untyped-call]

    @property
    def refs(self) -> Any:
        return rv_grpc.ReferenceValuesStub(self.channel)  # type: ignore[no-untyped-call]

    def call(self, method: Any, request: Any, metadata: Sequence[tuple[str, str]] = ()) -> Reply:
        name = getattr(method, "_method", b"?")
        name = name.decode() if isinstance(name, bytes) else str(name)
        try:
            response, call = method.with_call(request, metadata=tuple(metadata), timeout=60)
        except grpc.RpcError as error:
            return self._error(name, error)
        echoed = dict(call.trailing_metadata()).get("x-request-id")
        return Reply(response=response, echoed_request_id=echoed)

    def _error(self, method: str, error: grpc.RpcError) -> Reply:
        code: grpc.StatusCode = error.code()
        info = error_details_pb2.ErrorInfo()
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except ValueError as inconsistent:  # the status the client got is not the one the server sent
            problem = str(inconsistent)
            failure = Failure(method, code.name, "", "", problem, f"inconsistent status: {problem}")
            return Reply(code=code, failure=failure)
        has_info = status is not None and any(d.Unpack(info) for d in status.details)
        request_id = info.metadata.get("request_id", "") if has_info else ""
        reply = Reply(code=code, reason=info.reason if has_info else "", request_id=request_id)
        if code not in ALLOWED_CODES or not has_info or not info.reason or info.domain != "tee-verifier":
            details = str(error.details())
            text, where = self._tracebacks.by_request.pop(request_id, (f"(no server traceback: {details!r})", ""))
            where = where or (f"{code.name} without ErrorInfo: {str(details)[:120]}" if not has_info else code.name)
            reply.failure = Failure(method, code.name, reply.reason, request_id, text, where)
        return reply
