"""The broker's HTTP API (JSON over HTTP; put TLS in front or use --tls-cert/--tls-key):

POST /v1/challenge            -> {"nonce": b64url, "expires_at": RFC 3339}
POST /v1/release {"secret", "nonce", "token"} -> {"secret", "jwe", "token_id"} or {"error": CODE, "message"}
GET  /healthz

The standard library's server, hardened (README "Reference key broker"): one request per connection (HTTP/1.0
answers), a POST needs one plain `Content-Length` no larger than `max_body_bytes` (RFC 9112 section 6.3; no transfer
codings), headers are limited to MAX_HEADER_BYTES, the whole request must arrive within `request_timeout_seconds`,
at most `max_connections` are served at once (more get 503), JSON bodies are objects nested at most MAX_JSON_DEPTH
deep. Errors are JSON `{"error": CODE}` and never carry exception text."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..clock import to_rfc3339
from ..errors import ErrorKind, VerifierError
from ..results.cnf import json_depth_within
from .release import Broker, ChallengeRefused, ReleaseRefused

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # the default of `max_body_bytes`
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
MAX_JSON_DEPTH = 32
_LENGTH = re.compile(r"[0-9]+")
_ERRORS = {
    400: "REQUEST_MALFORMED",
    404: "NOT_FOUND",
    408: "REQUEST_TIMEOUT",
    411: "REQUEST_LENGTH_REQUIRED",
    413: "REQUEST_TOO_LARGE",
    414: "REQUEST_LINE_TOO_LONG",
    431: "REQUEST_HEADERS_TOO_LARGE",
    501: "METHOD_NOT_SUPPORTED",
    503: "BROKER_BUSY",
}
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Cache-Control: no-store\r\nContent-Length: 24\r\n\r\n" + b'{"error": "BROKER_BUSY"}'
)


class _Dropped(Exception):  # noqa: N818 - the client went away or ran out of time: close without an answer
    pass


class _RequestReader(io.RawIOBase):
    """A connection's bytes for the request parser: every read waits at most until the request's deadline (else
    TimeoutError) and at most `budget` bytes are read in all (then `exhausted` is set and the parser sees EOF)."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        super().__init__()
        self._sock, self.deadline, self.budget, self.exhausted = sock, deadline, budget, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.budget <= 0:
            self.exhausted = True
            return 0
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(remaining)
        view = memoryview(buffer).cast("B")[: self.budget]
        count = self._sock.recv_into(view)
        self.budget -= count
        return count


class _Writer(io.RawIOBase):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(memoryview(data).cast("B"))


class BrokerHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: one more is answered 503 (plain HTTP) or
    simply closed (TLS, before its handshake) from the accepting thread, without blocking it."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("busy: refused a connection from %s", client_address[0])
            try:
                request.setblocking(False)
                request.send(_BUSY)
            except OSError:  # includes ssl.SSLError: a TLS client gets no handshake
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("broker connection from %s failed", client_address[0])


def make_server(
    broker: Broker, host: str, port: int, *, tls_cert: Path | None = None, tls_key: Path | None = None
) -> BrokerHTTPServer:
    """The broker's HTTP server, bound (limits from `broker.config`). Raises OSError when it cannot bind and
    ssl.SSLError / OSError when the TLS key or certificate cannot be loaded."""
    config = broker.config
    timeout, max_body = config.request_timeout_seconds, config.max_body_bytes

    class Handler(BaseHTTPRequestHandler):
        server_version = "tee-verifier-broker"
        sys_version = ""
        reader: _RequestReader | None = None

        def setup(self) -> None:
            self.connection = self.request
            deadline = time.monotonic() + timeout
            self.connection.settimeout(timeout)
            self.wfile = io.BufferedWriter(_Writer(self.connection))
            if isinstance(self.connection, ssl.SSLSocket):
                try:
                    self.connection.do_handshake()  # here, not in the accepting thread, and within the deadline
                except (OSError, ValueError) as exc:
                    log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
                    self.rfile = io.BufferedReader(io.BytesIO(b""))
                    return
            self.reader = _RequestReader(self.connection, deadline, MAX_HEADER_BYTES)
            self.rfile = io.BufferedReader(self.reader)

        def handle(self) -> None:
            if self.reader is None:
                return
            self.close_connection = True
            try:
                self.handle_one_request()  # a timeout while reading the headers closes the connection silently
            except OSError as exc:  # the client reset the connection
                log.debug("connection from %s lost: %s", self.client_address[0], exc)

        def finish(self) -> None:
            try:
                self.connection.settimeout(timeout)
                self.wfile.flush()
            except OSError:
                pass
            self.rfile.close()

        def do_GET(self) -> None:
            if self._headers_overran():
                return
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "NOT_FOUND"})

        def do_POST(self) -> None:
            if self._headers_overran():
                return
            try:
                body = self._body()
                if self.path == "/v1/challenge":
                    issued, expires = broker.new_challenge(self.client_address[0])
                    self._send(
                        200,
                        {
                            "nonce": base64.urlsafe_b64encode(issued).rstrip(b"=").decode(),
                            "expires_at": to_rfc3339(expires),
                        },
                    )
                elif self.path == "/v1/release":
                    secret, nonce_b64, token = (body.get(k) for k in ("secret", "nonce", "token"))
                    if not (
                        isinstance(secret, str)
                        and isinstance(nonce_b64, str)
                        and isinstance(token, str)
                        and secret
                        and nonce_b64
                        and token
                    ):
                        raise ReleaseRefused("REQUEST_MALFORMED", "secret, nonce and token are required", 400)
                    done = broker.release(secret, token, nonce_b64)
                    self._send(200, {"secret": done.secret, "jwe": done.jwe, "token_id": done.token_id})
                else:
                    self._send(404, {"error": "NOT_FOUND"})
            except ChallengeRefused as refused:
                log.warning("refused %s from %s: %s", self.path, self.client_address[0], refused.code)
                self._send(
                    refused.status,
                    {"error": refused.code, "message": refused.message},
                    {"Retry-After": str(refused.retry_after)},
                )
            except ReleaseRefused as refused:
                log.warning("refused %s from %s: %s", self.path, self.client_address[0], refused.code)
                self._send(refused.status, {"error": refused.code, "message": refused.message})
            except _Dropped:
                log.info("dropped an incomplete request from %s", self.client_address[0])
            except VerifierError as error:  # the verifier or its JWKS is unreachable: fail closed, retry later
                log.warning("cannot serve %s: %s", self.path, error.code)
                status = 503 if error.kind is ErrorKind.UNAVAILABLE else 502
                self._send(status, {"error": error.code})
            except Exception:
                log.exception("broker error on %s", self.path)
                self._send(500, {"error": "INTERNAL"})

        def _headers_overran(self) -> bool:
            if self.reader is not None and self.reader.exhausted:
                self._send(
                    431,
                    {
                        "error": "REQUEST_HEADERS_TOO_LARGE",
                        "message": f"request line and headers are limited to {MAX_HEADER_BYTES} bytes",
                    },
                )
                return True
            return False

        def _body(self) -> dict[str, Any]:
            """The JSON object of a POST. Raises ReleaseRefused (400 REQUEST_MALFORMED, 411
            REQUEST_LENGTH_REQUIRED, 413 REQUEST_TOO_LARGE) before reading a byte of a body it would refuse, and
            _Dropped when the client closes or times out mid-body (RFC 9112 section 6.3)."""
            if self.headers.get_all("Transfer-Encoding"):
                raise ReleaseRefused(
                    "REQUEST_LENGTH_REQUIRED", "send the body with a Content-Length and no Transfer-Encoding", 411
                )
            lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
            if not lengths:
                raise ReleaseRefused("REQUEST_LENGTH_REQUIRED", "a POST needs a Content-Length", 411)
            declared = lengths.pop()
            if lengths or not _LENGTH.fullmatch(declared):
                raise ReleaseRefused("REQUEST_MALFORMED", "Content-Length is not one non-negative integer", 400)
            digits = declared.lstrip("0") or "0"
            length = int(digits) if len(digits) <= 18 else max_body + 1  # int() refuses over 4300 digits
            if length > max_body:
                raise ReleaseRefused("REQUEST_TOO_LARGE", f"bodies are limited to {max_body} bytes", 413)
            assert self.reader is not None
            self.reader.budget += length
            try:
                raw = self.rfile.read(length)
            except OSError:  # TimeoutError included: half-sent requests do not hold a thread
                raise _Dropped() from None
            if len(raw) != length:
                raise _Dropped()
            if not raw:
                return {}
            if not json_depth_within(raw, MAX_JSON_DEPTH):
                raise ReleaseRefused("REQUEST_MALFORMED", "the body is not JSON", 400)
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):  # RecursionError: nesting too deep for the decoder
                raise ReleaseRefused("REQUEST_MALFORMED", "the body is not JSON", 400) from None
            if not isinstance(data, dict):
                raise ReleaseRefused("REQUEST_MALFORMED", "the body must be a JSON object", 400)
            return data

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            self.close_connection = True
            if not self.request_version.startswith("HTTP/1."):
                self.request_version = "HTTP/1.0"  # a status line and headers, also for garbage (not HTTP/0.9)
            self._send(code, {"error": _ERRORS.get(code, "REQUEST_MALFORMED")})

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.connection.settimeout(timeout)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
            except OSError as exc:  # the client went away: nothing to tell it
                log.debug("cannot answer %s: %s", self.client_address[0], exc)
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    server = BrokerHTTPServer((host, port), Handler, config.max_connections)
    if tls_cert is not None and tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
        # The handshake runs in the connection's thread under its deadline, never in the accepting thread.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="broker-http", daemon=True)
    thread.start()
    return thread
