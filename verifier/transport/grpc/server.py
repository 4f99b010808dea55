"""The gRPC server: verifier + admin services, health, reflection, interceptors, TLS, HTTP side server.

    server = VerifierServer(components)
    grpc_port, http_port = await server.start()
    await server.wait()            # or: await serve(components) which also handles SIGTERM/SIGINT

Shutdown is graceful: health flips to NOT_SERVING first, then in-flight RPCs get `grace` seconds.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from ...bootstrap import Components
from ...errors import ConfigError, UnavailableError
from ...metrics import Metrics
from ...v1 import verifier_pb2 as pb
from ...v1 import verifier_pb2_grpc as pb_grpc
from .http import HttpApp, HttpServer, is_loopback, split_hostport
from .interceptors import default_chain
from .servicers import ReferenceValuesServicer, VerifierServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(s.full_name for s in pb.DESCRIPTOR.services_by_name.values())
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class VerifierServer:
    """One gRPC server plus its HTTP side server, each on its own private metrics registry."""

    def __init__(self, components: Components, *, metrics: Metrics | None = None,
                 check_database: bool = True) -> None:
        self.components = components
        self.settings = components.settings
        self.metrics = metrics or Metrics()
        self._check_database = check_database
        self._health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._serving = False
        self._stopping: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        return self._serving

    async def start(self) -> tuple[int, int]:
        """Bind and start; return (grpc_port, http_port), http_port 0 when HTTP is disabled."""
        if self._check_database:
            await asyncio.to_thread(self.components.database.check)
        settings = self.settings
        limit = settings.max_message_bytes
        server = grpc.aio.server(
            interceptors=default_chain(self.metrics, settings.admin_token_sha256),
            options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
        )
        pb_grpc.add_VerifierServicer_to_server(  # type: ignore[no-untyped-call]
            VerifierServicer(self.components, self.metrics), server
        )
        pb_grpc.add_ReferenceValuesServicer_to_server(  # type: ignore[no-untyped-call]
            ReferenceValuesServicer(self.components), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection((*SERVICE_NAMES, HEALTH_SERVICE, reflection.SERVICE_NAME), server)
        port = self._bind(server)
        await server.start()
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        log.info("gRPC listening on port %d (%s)", port, "TLS" if self._tls() else "plaintext")
        http_port = 0
        if settings.http_listen and settings.http_listen.lower() != "off":
            app = HttpApp(self.metrics, self.components.service.jwks, lambda: self._serving)
            self._http = HttpServer(settings.http_listen, app)
            http_port = self._http.start()
        return port, http_port

    def _tls(self) -> bool:
        return self.settings.tls_cert is not None and self.settings.tls_key is not None

    def _bind(self, server: grpc.aio.Server) -> int:
        address = self.settings.listen
        host, _ = split_hostport(address)
        if self._tls():
            assert self.settings.tls_cert is not None and self.settings.tls_key is not None
            try:
                pair = (self.settings.tls_key.read_bytes(), self.settings.tls_cert.read_bytes())
            except OSError as error:
                raise ConfigError("TLS_FILES_UNREADABLE", f"cannot read TLS key or certificate: {error}") from None
            credentials = grpc.ssl_server_credentials([pair])
            port = _add_port(lambda: server.add_secure_port(address, credentials), address)
        else:
            if self.settings.tls_cert is not None or self.settings.tls_key is not None:
                raise ConfigError("TLS_INCOMPLETE", "TLS needs both a certificate and a key")
            if not is_loopback(host):
                log.warning("gRPC listening on %s WITHOUT TLS: configure a certificate and key", address)
            port = _add_port(lambda: server.add_insecure_port(address), address)
        return port

    def request_stop(self, grace: float | None = None) -> asyncio.Task[None]:
        """Start the graceful shutdown (once) without waiting for it; safe from a signal handler."""
        if self._stopping is None:
            seconds = self.settings.grace_seconds if grace is None else grace
            self._stopping = asyncio.get_running_loop().create_task(self._stop(seconds))
        return self._stopping

    async def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING first, then stop accepting and give in-flight RPCs `grace` seconds. Idempotent."""
        await asyncio.shield(self.request_stop(grace))

    async def _stop(self, grace: float) -> None:
        self._serving = False
        await self._health.enter_graceful_shutdown()
        log.info("shutting down (grace %.1fs)", grace)
        if self._server is not None:
            await self._server.stop(grace)
        if self._http is not None:
            await asyncio.to_thread(self._http.stop)
        log.info("stopped")

    async def wait(self) -> None:
        """Until the server terminates (after `stop`)."""
        if self._server is not None:
            await self._server.wait_for_termination()
        if self._stopping is not None:
            await asyncio.shield(self._stopping)


def _add_port(bind: Any, address: str) -> int:
    try:
        port = int(bind())
    except RuntimeError as error:
        raise UnavailableError("LISTEN_FAILED", f"cannot listen on {address}: {error}") from None
    if port == 0:
        raise UnavailableError("LISTEN_FAILED", f"cannot listen on {address}")
    return port


async def serve(components: Components, *, ready: asyncio.Event | None = None,
                port_file: Path | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully. The CLI calls `asyncio.run(serve(components))`.
    `port_file` receives {"grpc": port, "http": port} once listening (useful with port 0)."""
    server = VerifierServer(components)
    grpc_port, http_port = await server.start()
    if port_file is not None:
        write_port_file(port_file, {"grpc": grpc_port, "http": http_port})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, functools.partial(_on_signal, server, sig))
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signal support
            log.debug("cannot install a handler for %s", sig.name)
    log.info("serving; SIGTERM or SIGINT stops gracefully")
    if ready is not None:
        ready.set()
    try:
        await server.wait()
    finally:
        await server.stop()


def write_port_file(path: Path, ports: dict[str, int]) -> None:
    """Write the bound ports atomically (a reader never sees a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(ports))
    os.replace(tmp, path)


def _on_signal(server: VerifierServer, sig: signal.Signals) -> None:
    log.info("received %s: graceful shutdown", sig.name)
    server.request_stop()
