"""A small HTTP side server (stdlib wsgiref in a daemon thread): /metrics, /.well-known/jwks.json and the OIDC
discovery document /.well-known/openid-configuration (wellknown.py), and the probes /livez (200 while the process
serves HTTP), /readyz (200 only while the server is serving and its cached database check passes, 503 otherwise)
and /healthz (an alias of /readyz).

HTTPS when TLS is configured (`tls_context`: the gRPC certificate and key, unless `http_plaintext`), for every path:
the documents relying parties trust must not travel in the clear, and one port speaks one scheme (a kubelet probe
says `scheme: HTTPS`; it does not verify the certificate). No client certificate is asked for: the documents are
public. The TLS handshake runs in the connection's own thread (or, polled, without blocking the loop), never in the
accepting one, and every connection has a deadline, so a client that connects and says nothing holds nothing.

`PolledHttpServer` serves the same `HttpApp` without any thread, from the selector loop of the `--workers N`
supervisor (transport/grpc/workers.py): a process that forks must not run threads.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ...errors import ConfigError
from ...metrics import Exposition
from ...settings import Settings
from .wellknown import DISCOVERY_PATH, JWKS_PATH, Discovery

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


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The HTTP side server's TLS (TLS 1.2 or later, HTTP/1.1 by ALPN): the gRPC `tls_cert` and `tls_key`; None
    (plaintext) without them or with `http_plaintext`. Raises ConfigError TLS_FILES_UNREADABLE for a file that cannot
    be read, TLS_FILES_INVALID for a certificate or key that does not load (not PEM, encrypted, not a pair)."""
    if settings.http_plaintext or settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key, password=lambda: b"")  # never a prompt
    except ssl.SSLError as error:
        raise ConfigError(
            "TLS_FILES_INVALID", f"the TLS certificate and key do not load ({error.reason or 'not PEM'})"
        ) from None
    except OSError as error:
        raise ConfigError("TLS_FILES_UNREADABLE", f"cannot read a TLS key or certificate: {error.strerror}") from None
    return context


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake happens in the connection's thread (_QuietHandler.setup)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (a failed TLS handshake, a reset, a timeout): logged quietly, no traceback."""
        log.debug("http connection from %s failed", client_address[0] if client_address else "?")


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # seconds per blocking read or write of a connection (its handshake included)

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s " + format, self.address_string(), *args)


_PUBLIC = [("Cache-Control", "max-age=300"), ("Access-Control-Allow-Origin", "*")]  # the well-known documents
_NO_DISCOVERY = (
    b"no OIDC discovery: configure the issuer as this verifier's https URL (--issuer, VERIFIER_ISSUER) "
    b"or --public-url (VERIFIER_PUBLIC_URL)\n"
)


class HttpApp:
    """The WSGI application; `healthy()` (serving and ready) decides /readyz and /healthz (200, else 503);
    `discovery` (None: no discovery document) where the well-known documents are and what discovery says."""

    def __init__(
        self,
        metrics: Exposition,
        jwks: Callable[[], dict[str, Any]],
        healthy: Callable[[], bool],
        *,
        discovery: Discovery | None = None,
    ) -> None:
        self._metrics, self._jwks, self._healthy = metrics, jwks, healthy
        self._jwks_paths = discovery.paths(JWKS_PATH) if discovery else frozenset([JWKS_PATH])
        self._discovery_paths = discovery.paths(DISCOVERY_PATH) if discovery else frozenset()
        self._discovery = discovery.body() if discovery else None

    @classmethod
    def from_settings(
        cls, settings: Settings, metrics: Exposition, jwks: Callable[[], dict[str, Any]], healthy: Callable[[], bool]
    ) -> HttpApp:
        """The app with the discovery document of `settings` (issuer, public_url). Raises ConfigError
        PUBLIC_URL_INVALID."""
        return cls(metrics, jwks, healthy, discovery=Discovery.from_settings(settings.issuer, settings.public_url))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"method not allowed\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":  # a failing collector answers 503, never a traceback (nor ends the supervisor's loop)
            try:
                exposition = self._metrics.exposition()
            except Exception:
                log.exception("cannot serve the metrics")
                return _reply(start_response, "503 Service Unavailable", b"metrics unavailable\n")
            return _reply(start_response, "200 OK", exposition, content_type=self._metrics.content_type)
        if path in self._jwks_paths:
            try:
                body = json.dumps(self._jwks(), sort_keys=True).encode()
            except Exception:
                log.exception("cannot serve the JWKS")
                return _reply(start_response, "503 Service Unavailable", b"signing keys unavailable\n")
            return _reply(start_response, "200 OK", body, _PUBLIC, content_type="application/jwk-set+json")
        if path in self._discovery_paths and self._discovery is not None:
            return _reply(start_response, "200 OK", self._discovery, _PUBLIC, content_type="application/json")
        if path == DISCOVERY_PATH:
            return _reply(start_response, "404 Not Found", _NO_DISCOVERY)
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
    """Runs `HttpApp` on `address` (port 0 picks a free port) in a daemon thread; HTTPS with `tls`."""

    def __init__(self, address: str, app: HttpApp, *, tls: ssl.SSLContext | None = None) -> None:
        """Bind `address` now. Raises ConfigError `ADDRESS_IN_USE` when another process listens there."""
        host, port = split_hostport(address)
        server_class = _Server6 if ":" in host else _Server
        try:
            server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        except OSError as error:
            raise _bind_error(address, error) from None
        assert isinstance(server, _Server)
        server.tls = tls
        self._server, self.scheme = server, "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, name="verifier-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        self._thread.start()
        log.info("%s (metrics, JWKS, discovery, livez, readyz) listening on port %d", self.scheme.upper(), self.port)
        return self.port

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def _bind_error(address: str, error: OSError) -> ConfigError:
    if error.errno == errno.EADDRINUSE:
        return ConfigError("ADDRESS_IN_USE", f"HTTP address {address} is already in use")
    return ConfigError("LISTEN_FAILED", f"cannot listen on HTTP address {address}: {error.strerror}")


class _Connection:
    """One HTTP/1.x connection of `PolledHttpServer`: read one request, write one response, close."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock, self.deadline = sock, deadline
        self.inbox, self.outbox = b"", b""
        self.handshaking = isinstance(sock, ssl.SSLSocket)


class PolledHttpServer:
    """`HttpApp` on `address` without threads: the owner's selector calls back on readiness, the owner calls
    `expire()` now and then. One request per connection (Connection: close), at most `MAX_REQUEST` bytes of
    request head, `timeout` seconds per connection and `MAX_CONNECTIONS` at once, so a slow or hostile client
    cannot hold the loop. With `tls`, HTTPS: the handshake is stepped on readiness like the rest."""

    MAX_REQUEST = 16 * 1024
    MAX_CONNECTIONS = 64

    def __init__(self, address: str, app: HttpApp, *, timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> None:
        """Bind `address` now. Raises ConfigError `ADDRESS_IN_USE` when another process listens there."""
        host, port = split_hostport(address)
        self._app, self._timeout, self._tls = app, timeout, tls
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as wsgiref: TIME_WAIT is no owner
            self._sock.bind((host, port))
            self._sock.listen(64)
        except OSError as error:
            self._sock.close()
            raise _bind_error(address, error) from None
        self._sock.setblocking(False)
        self._selector: selectors.BaseSelector | None = None
        self._connections: dict[int, _Connection] = {}

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self, selector: selectors.BaseSelector) -> int:
        """Register with `selector`, whose key data are callables the owner calls when the key is ready."""
        self._selector = selector
        selector.register(self._sock, selectors.EVENT_READ, self._accept)
        scheme = "HTTPS" if self._tls else "HTTP"
        log.info("%s (metrics, JWKS, discovery, livez, readyz) listening on port %d", scheme, self.port)
        return self.port

    def _accept(self) -> None:
        try:
            sock, _ = self._sock.accept()
        except OSError:  # BlockingIOError or a connection reset before accept
            return
        if len(self._connections) >= self.MAX_CONNECTIONS or self._selector is None:
            sock.close()
            return
        sock.setblocking(False)
        if self._tls is not None:
            try:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError:  # reset meanwhile
                sock.close()
                return
        connection = _Connection(sock, time.monotonic() + self._timeout)
        self._connections[sock.fileno()] = connection
        self._selector.register(sock, selectors.EVENT_READ, lambda: self._read(connection))

    def _handshake(self, connection: _Connection) -> bool:
        """One step of the TLS handshake; True once it is done (then the request can be read)."""
        assert self._selector is not None and isinstance(connection.sock, ssl.SSLSocket)
        try:
            connection.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(connection.sock, selectors.EVENT_READ, lambda: self._read(connection))
            return False
        except ssl.SSLWantWriteError:
            self._selector.modify(connection.sock, selectors.EVENT_WRITE, lambda: self._read(connection))
            return False
        except OSError:  # not TLS, no common version or cipher, a reset
            self._close(connection)
            return False
        connection.handshaking = False
        self._selector.modify(connection.sock, selectors.EVENT_READ, lambda: self._read(connection))
        return True

    def _read(self, connection: _Connection) -> None:
        if connection.handshaking and not self._handshake(connection):
            return
        sock = connection.sock
        try:
            chunk = sock.recv(4096)
            while isinstance(sock, ssl.SSLSocket) and sock.pending():  # decrypted already: no readiness will say so
                chunk += sock.recv(sock.pending())
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(connection)
            return
        connection.inbox += chunk
        head, sep, _ = connection.inbox.replace(b"\r\n", b"\n").partition(b"\n\n")
        if not sep and len(connection.inbox) <= self.MAX_REQUEST:
            return
        connection.outbox = self._respond(head if sep else b"")
        assert self._selector is not None
        self._selector.modify(connection.sock, selectors.EVENT_WRITE, lambda: self._write(connection))

    def _respond(self, head: bytes) -> bytes:
        """The whole response to a request head (b"" for one too large)."""
        parts = head.split(b"\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _raw_response("400 Bad Request", [("Content-Type", "text/plain")], b"bad request\n")
        method, target = parts[0], parts[1]
        environ = {"REQUEST_METHOD": method, "PATH_INFO": urllib.parse.unquote(target.split("?", 1)[0])}
        captured: list[tuple[str, list[tuple[str, str]]]] = []
        body = b"".join(self._app(environ, lambda status, headers: captured.append((status, headers))))
        status, headers = captured[0]
        return _raw_response(status, headers, b"" if method == "HEAD" else body)

    def _write(self, connection: _Connection) -> None:
        try:
            sent = connection.sock.send(connection.outbox)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            sent = len(connection.outbox)
        connection.outbox = connection.outbox[sent:]
        if not connection.outbox:
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        self._connections.pop(connection.sock.fileno(), None)
        if self._selector is not None:
            self._selector.unregister(connection.sock)
        try:  # discard what the client sent past its head, so closing sends FIN, not RST, after the response
            while connection.sock.recv(65536):
                pass
        except OSError:
            pass
        connection.sock.close()

    def expire(self) -> None:
        """Close connections past their time."""
        now = time.monotonic()
        for connection in [c for c in self._connections.values() if c.deadline < now]:
            self._close(connection)

    def stop(self) -> None:
        for connection in list(self._connections.values()):
            self._close(connection)
        if self._selector is not None:
            self._selector.unregister(self._sock)
        self._sock.close()

    def close_in_child(self) -> None:
        """In a forked child: close the inherited sockets without touching the selector (the parent's)."""
        for connection in self._connections.values():
            connection.sock.close()
        self._connections.clear()
        self._sock.close()


def _raw_response(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers = [*headers, ("Content-Length", str(len(body)))]
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers if k.lower() != "connection")]
    return ("\r\n".join([*lines, "Connection: close", "", ""])).encode("latin-1") + body
