"""A small HTTP side server (stdlib wsgiref in a daemon thread): /metrics, /.well-known/jwks.json, and the probes
/livez (200 while the process serves HTTP), /readyz (200 only while the server is serving and its cached database
check passes, 503 otherwise) and /healthz (an alias of /readyz)."""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ...errors import ConfigError
from ...metrics import Metrics

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def split_hostport(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port). Raises ValueError on anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {address!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means every interface


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s " + format, self.address_string(), *args)


class HttpApp:
    """The WSGI application; `healthy()` (serving and ready) decides /readyz and /healthz (200, else 503)."""

    def __init__(self, metrics: Metrics, jwks: Callable[[], dict[str, Any]], healthy: Callable[[], bool]) -> None:
        self._metrics, self._jwks, self._healthy = metrics, jwks, healthy

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"method not allowed\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return _reply(start_response, "200 OK", self._metrics.exposition(), content_type=self._metrics.content_type)
        if path == "/.well-known/jwks.json":
            try:
                body = json.dumps(self._jwks(), sort_keys=True).encode()
            except Exception:
                log.exception("cannot serve the JWKS")
                return _reply(start_response, "503 Service Unavailable", b"signing keys unavailable\n")
            return _reply(
                start_response,
                "200 OK",
                body,
                [("Cache-Control", "max-age=300")],
                content_type="application/jwk-set+json",
            )
        if path == "/livez":
            return _reply(start_response, "200 OK", b"alive\n")
        if path in ("/readyz", "/healthz"):
            if self._healthy():
                return _reply(start_response, "200 OK", b"ok\n")
            return _reply(start_response, "503 Service Unavailable", b"not serving\n")
        return _reply(start_response, "404 Not Found", b"not found\n")


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    headers: list[tuple[str, str]] | None = None,
    *,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *(headers or [])])
    return [body]


class HttpServer:
    """Runs `HttpApp` on `address` (port 0 picks a free port) in a daemon thread."""

    def __init__(self, address: str, app: HttpApp) -> None:
        """Bind `address` now. Raises ConfigError `ADDRESS_IN_USE` when another process listens there."""
        host, port = split_hostport(address)
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError("ADDRESS_IN_USE", f"HTTP address {address} is already in use") from None
            raise ConfigError("LISTEN_FAILED", f"cannot listen on HTTP address {address}: {error.strerror}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="verifier-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        self._thread.start()
        log.info("HTTP (metrics, JWKS, livez, readyz) listening on port %d", self.port)
        return self.port

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
