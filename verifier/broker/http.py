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

import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .http_handler import MAX_HEADER_BYTES, MAX_JSON_DEPTH, BrokerRequestHandler
from .release import Broker

__all__ = [
    "MAX_BODY",
    "MAX_HEADER_BYTES",
    "MAX_JSON_DEPTH",
    "BrokerHTTPServer",
    "BrokerRequestHandler",
    "make_server",
    "serve_in_thread",
]

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024  # the default of `max_body_bytes`
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Cache-Control: no-store\r\nContent-Length: 24\r\n\r\n" + b'{"error": "BROKER_BUSY"}'
)


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
    server = BrokerHTTPServer((host, port), BrokerRequestHandler.for_broker(broker), broker.config.max_connections)
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
