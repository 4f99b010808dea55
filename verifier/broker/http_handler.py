"""The request handler of the broker's HTTP API (the endpoints and limits are in verifier.broker.http's docstring):
the connection's reads bounded by one deadline and a byte budget, the JSON body of a POST, the JSON answers."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
import ssl
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

from ..clock import to_rfc3339
from ..errors import ErrorKind, VerifierError
from ..results.cnf import json_depth_within
from .release import Broker, ChallengeRefused, ReleaseRefused

log = logging.getLogger("verifier.broker.http")  # the broker server's logger, as before the handler moved here
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
# After a refusal, what the client still sends is read (and dropped) before the connection closes: at most this
# many bytes within this many seconds (RFC 9112 section 9.6's lingering close).
LINGER_BYTES = 1 << 20
LINGER_SECONDS = 1.0
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


class BrokerRequestHandler(BaseHTTPRequestHandler):
    """One request of the broker's HTTP API (verifier.broker.http), answered as JSON. `for_broker` makes the class a
    server uses: `broker` serves the requests, `request_timeout` bounds the whole request (headers and body) and
    `max_body` the POST body, both from `broker.config`."""

    broker: Broker
    request_timeout: float
    max_body: int
    server_version = "tee-verifier-broker"
    sys_version = ""
    reader: _RequestReader | None = None
    refused = False  # an answer of 400 or more was sent: the connection closes lingering (`_linger`)

    @classmethod
    def for_broker(cls, broker: Broker) -> type[BrokerRequestHandler]:
        """A subclass of this handler serving `broker` with the limits of `broker.config`. Never raises."""
        config = broker.config
        bound = {"broker": broker, "request_timeout": config.request_timeout_seconds, "max_body": config.max_body_bytes}
        return cast("type[BrokerRequestHandler]", type(cls.__name__, (cls,), bound))

    def setup(self) -> None:
        self.connection = self.request
        deadline = time.monotonic() + self.request_timeout
        self.connection.settimeout(self.request_timeout)
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
            self.connection.settimeout(self.request_timeout)
            self.wfile.flush()
        except OSError:
            pass
        if self.refused:
            _linger(self.connection)
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
                issued, expires = self.broker.new_challenge(self.client_address[0])
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
                done = self.broker.release(secret, token, nonce_b64)
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
        length = int(digits) if len(digits) <= 18 else self.max_body + 1  # int() refuses over 4300 digits
        if length > self.max_body:
            raise ReleaseRefused("REQUEST_TOO_LARGE", f"bodies are limited to {self.max_body} bytes", 413)
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
        self.refused = self.refused or status >= 400  # the request may not have been read to its end
        data = json.dumps(payload).encode()
        try:
            self.connection.settimeout(self.request_timeout)
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


def _linger(sock: socket.socket) -> None:
    """Half-close `sock`, then read and drop what the client still sends until it closes its side, at most
    LINGER_BYTES within LINGER_SECONDS (RFC 9112 section 9.6): closing with request bytes unread makes the TCP stack
    reset the connection, and the client then loses the answer it has not read yet. Never raises."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline, left = time.monotonic() + LINGER_SECONDS, LINGER_BYTES
        while left > 0 and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            chunk = sock.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError):  # reset, timed out, or a TLS socket that cannot read any more
        return
