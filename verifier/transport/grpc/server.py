"""The gRPC server: verifier + admin services, health, reflection, interceptors, TLS, HTTP side server.

With `admin_listen` a second TLS port requires client certificates from the admin CA (gRPC Python cannot ask for
an optional client certificate, so the main port either requires one, `appraisal_requires_mtls`, or never asks).

    server = VerifierServer(components)
    grpc_port, http_port = await server.start()
    await server.wait()            # or: await serve(components) which also handles SIGTERM/SIGINT

Health tells the truth: a background task checks the database every second (in a thread, with a timeout) and
gRPC health ("" and every verifier.v1 service) says NOT_SERVING while that check fails, SERVING once it passes
again; HTTP /readyz follows it, /livez does not.

Shutdown drains: health flips to NOT_SERVING first, the server keeps serving for `drain` seconds (on SIGTERM:
`drain_seconds`), then stops accepting and gives in-flight RPCs `grace` seconds.

One server per port: SO_REUSEPORT is off, so a busy gRPC or HTTP port is ConfigError `ADDRESS_IN_USE`. The one
exception are the workers of `verifier serve --workers N` (`share_port`, see workers.py): they share their port on
purpose, and their supervisor makes sure no unrelated server shares it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from ...auth import ROLES, Role
from ...bootstrap import Components
from ...errors import ConfigError
from ...housekeeping import RetentionPolicy, load_verifier_keys, run_once
from ...metrics import Metrics
from ...storage import migrate
from ...storage.admin_tokens import SqlAdminTokens
from ...v1 import admin_pb2, reference_values_pb2, workloads_pb2
from ...v1 import admin_pb2_grpc as admin_grpc
from ...v1 import reference_values_pb2_grpc as rv_grpc
from ...v1 import verifier_pb2 as pb
from ...v1 import verifier_pb2_grpc as pb_grpc
from ...v1 import workloads_pb2_grpc as wl_grpc
from . import ratelimit
from .admin_auth import AdminAuthInterceptor, ClientCertVerifier
from .admin_servicers import AdminTokenServicer, AuditServicer, PolicyServicer
from .binding import GenericHandlersOnly, add_port, write_port_file
from .http import HttpApp, HttpServer, is_loopback, split_hostport, tls_context
from .interceptor_base import InterceptorChain
from .interceptors import default_chain
from .lanes import ADMIN, APPRAISE, CHALLENGE, DEFAULT_LIMITS, HOUSEKEEPING, LaneLimits, Lanes
from .readiness import Readiness
from .reflection import add_reflection
from .servicers import ReferenceValuesServicer, VerifierServicer
from .workloads_servicer import WorkloadsServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = tuple(
    s.full_name
    for module in (pb, reference_values_pb2, workloads_pb2, admin_pb2)
    for s in module.DESCRIPTOR.services_by_name.values()
)
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class VerifierServer:
    """One gRPC server plus its HTTP side server, each on its own private metrics registry."""

    share_port = False  # True for the workers of `--workers N`: SO_REUSEPORT beside their siblings (workers.py)

    def __init__(self, components: Components, *, metrics: Metrics | None = None, check_database: bool = True) -> None:
        self.components = components
        self.settings = components.settings
        self.metrics = metrics or Metrics()
        self.metrics.attach(components)  # the service, collateral cache and database report to this server's metrics
        self._check_database = check_database
        self._health = health_aio.HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._http: HttpServer | None = None
        self._serving = False
        self._stopping: asyncio.Task[None] | None = None
        self._readiness = Readiness(functools.partial(migrate.check, self.components.database), self._set_health)
        self._refresher: asyncio.Task[None] | None = None
        s = self.settings
        self.lanes = Lanes(
            {
                APPRAISE: LaneLimits(s.appraise_threads, s.appraise_queue),
                CHALLENGE: LaneLimits(s.challenge_threads, s.challenge_queue),
                ADMIN: LaneLimits(s.admin_threads, s.admin_queue),
                HOUSEKEEPING: DEFAULT_LIMITS[HOUSEKEEPING],
            }
        )
        self._retention = self._retention_policy()
        self._housekeeper: asyncio.Task[None] | None = None
        self.admin_port = 0  # the `admin_listen` port once started, 0 when there is none

    @property
    def serving(self) -> bool:
        return self._serving

    @property
    def ready(self) -> bool:
        """Serving and the cached database check passes (what /readyz and gRPC health report)."""
        return self._serving and self._readiness.ready

    async def _set_health(self, ready: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        if self._serving:  # once shutting down, health stays NOT_SERVING
            for name in ("", *SERVICE_NAMES):
                await self._health.set(name, status)

    async def start(self) -> tuple[int, int]:
        """Bind and start; return (grpc_port, http_port), http_port 0 when HTTP is disabled."""
        if self._check_database:
            await asyncio.to_thread(migrate.check, self.components.database)
        settings = self.settings
        limit = settings.max_message_bytes
        layers = default_chain(
            self.metrics,
            auth=self._auth_interceptor(),
            rate_limiter=ratelimit.from_settings(settings),
            max_request_bytes_in_flight=settings.max_request_bytes_in_flight,
        )
        server = grpc.aio.server(
            interceptors=[InterceptorChain(layers)],  # the same layers, one interceptor hop per call
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 1 if self.share_port else 0),
            ],  # a second server on a busy port must fail, not share it (but workers of one supervisor share it)
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs or None,  # shed load, never queue without bound
        )
        pb_grpc.add_VerifierServicer_to_server(  # type: ignore[no-untyped-call]
            VerifierServicer(
                self.components,
                self.metrics,
                appraise=self.lanes[APPRAISE].run,
                challenge=self.lanes[CHALLENGE].run,
                inline=settings.appraise_threads + settings.appraise_queue if settings.appraise_inline else 0,
            ),
            server,
        )
        generic = GenericHandlersOnly(server)
        self._add_admin_services(generic)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, generic)
        add_reflection(generic, (*SERVICE_NAMES, HEALTH_SERVICE))  # reflection v1 and v1alpha (reflection.py)
        port = self._bind(server)
        self.admin_port = self._bind_admin(server)
        if settings.http_listen and settings.http_listen.lower() != "off":  # bound before anything serves
            app = HttpApp.from_settings(settings, self.metrics, self.components.service.jwks, lambda: self.ready)
            self._http = HttpServer(settings.http_listen, app, tls=tls_context(settings))  # HTTPS with TLS
        await server.start()
        self._server = server
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._serving = True
        self._refresher = asyncio.get_running_loop().create_task(self._readiness.run())
        if settings.retention_interval_s > 0:
            self._housekeeper = asyncio.get_running_loop().create_task(self._housekeep(settings.retention_interval_s))
        log.info("gRPC listening on port %d (%s)", port, self._describe_main())
        if self.admin_port:
            log.info("admin gRPC (client certificates from the admin CA required) on port %d", self.admin_port)
        http_port = self._http.start() if self._http is not None else 0
        return port, http_port

    def _add_admin_services(self, generic: GenericHandlersOnly) -> None:
        """Every admin service (admin_auth guards them), each running its work on the admin lane."""
        admin = self.lanes[ADMIN].run
        rv_grpc.add_ReferenceValuesServicer_to_server(  # type: ignore[no-untyped-call]
            ReferenceValuesServicer(self.components, run=admin), generic
        )
        wl_grpc.add_WorkloadsServicer_to_server(  # type: ignore[no-untyped-call]
            WorkloadsServicer(self.components, run=admin), generic
        )
        admin_grpc.add_PolicyServiceServicer_to_server(  # type: ignore[no-untyped-call]
            PolicyServicer(self.components, run=admin), generic
        )
        admin_grpc.add_AdminTokenServiceServicer_to_server(  # type: ignore[no-untyped-call]
            AdminTokenServicer(self.components, run=admin), generic
        )
        admin_grpc.add_AuditServiceServicer_to_server(  # type: ignore[no-untyped-call]
            AuditServicer(self.components, run=admin), generic
        )

    def _retention_policy(self) -> RetentionPolicy:
        """From settings; ConfigError for unreadable checkpoint keys or a directory without keys."""
        s = self.settings
        if (s.audit_checkpoint_dir is None) != (not s.audit_checkpoint_keys):
            raise ConfigError(
                "AUDIT_CHECKPOINT_CONFIG", "audit_checkpoint_dir and audit_checkpoint_keys are configured together"
            )
        return RetentionPolicy(
            keep_days=s.retention_keep_days,
            appraisal_days=s.retention_appraisal_days or None,
            audit_days=s.retention_audit_days or None,
            audit_checkpoints=s.audit_checkpoint_dir,
            verifier_keys=load_verifier_keys(s.audit_checkpoint_keys),
        )

    async def _housekeep(self, interval: float) -> None:
        """A retention pass every `interval` seconds, the first one `interval` after start (cancel to stop)."""
        clock = self.components.service.clock
        while True:
            await asyncio.sleep(interval)
            try:
                await self.lanes[HOUSEKEEPING].run(run_once, self.components.database, self._retention, clock.now)
            except Exception:  # never ends the task: the next pass tries again
                log.exception("retention pass failed")

    def _tls(self) -> bool:
        return self.settings.tls_cert is not None and self.settings.tls_key is not None

    def _check_auth_settings(self) -> None:
        """Refuse combinations that would silently not authenticate what they claim to."""
        s = self.settings
        if s.admin_cert_role not in ROLES:
            raise ConfigError("ADMIN_CERT_ROLE_UNKNOWN", f"admin certificate role must be one of {', '.join(ROLES)}")
        mtls = s.admin_client_ca is not None or s.appraisal_requires_mtls or s.admin_listen
        if mtls and not self._tls():
            raise ConfigError("MTLS_NEEDS_TLS", "client certificates need TLS: configure --tls-cert and --tls-key")
        if s.admin_listen and s.admin_client_ca is None:
            raise ConfigError("ADMIN_CLIENT_CA_MISSING", "--admin-listen needs --admin-client-ca")
        if s.allow_plaintext_admin and not is_loopback(split_hostport(s.listen)[0]):
            raise ConfigError(
                "PLAINTEXT_ADMIN_NOT_LOOPBACK",
                f"--allow-plaintext-admin needs a loopback --listen address, not {s.listen}",
            )
        if s.appraisal_requires_mtls and s.appraisal_client_ca is None and s.admin_client_ca is None:
            raise ConfigError(
                "APPRAISAL_CLIENT_CA_MISSING",
                "--appraisal-requires-mtls needs --appraisal-client-ca (or --admin-client-ca)",
            )
        if s.admin_client_ca is not None and not s.admin_listen and not s.appraisal_requires_mtls:
            # gRPC Python can only require client certificates or not ask for them at all: on a port where
            # appraisal stays open, no client certificate would ever be presented.
            raise ConfigError(
                "ADMIN_LISTEN_REQUIRED",
                "--admin-client-ca needs --admin-listen HOST:PORT (a TLS port that requires client "
                "certificates) unless --appraisal-requires-mtls makes the main port require them",
            )

    def _auth_interceptor(self) -> AdminAuthInterceptor:
        self._check_auth_settings()
        s = self.settings
        admin_cas = ClientCertVerifier.from_files(s.admin_client_ca) if s.admin_client_ca is not None else None
        appraisal_cas = None
        if s.appraisal_requires_mtls:
            appraisal_cas = ClientCertVerifier.from_files(*self._appraisal_ca_files())
        database = self.components.database
        return AdminAuthInterceptor(
            s.admin_token_sha256,
            tokens=SqlAdminTokens(database),
            admin_cas=admin_cas,
            cert_role=cast(Role, s.admin_cert_role),
            appraisal_cas=appraisal_cas,
            audit_db=database,
            clock=self.components.service.clock.now,
            admin_needs_tls=not s.allow_plaintext_admin,
            run=self.lanes[ADMIN].run,
        )

    def _appraisal_ca_files(self) -> list[Path]:
        return [p for p in (self.settings.appraisal_client_ca, self.settings.admin_client_ca) if p is not None]

    def _describe_main(self) -> str:
        if not self._tls():
            return "plaintext"
        return "TLS, client certificates required" if self.settings.appraisal_requires_mtls else "TLS"

    def _credentials(self, client_cas: list[Path]) -> grpc.ServerCredentials:
        assert self.settings.tls_cert is not None and self.settings.tls_key is not None
        try:
            pair = (self.settings.tls_key.read_bytes(), self.settings.tls_cert.read_bytes())
            roots = b"\n".join(p.read_bytes().strip() for p in client_cas) + b"\n" if client_cas else None
        except OSError as error:
            raise ConfigError("TLS_FILES_UNREADABLE", f"cannot read a TLS key or certificate: {error}") from None
        if roots is None:
            return grpc.ssl_server_credentials([pair])
        return grpc.ssl_server_credentials([pair], root_certificates=roots, require_client_auth=True)

    def _bind(self, server: grpc.aio.Server) -> int:
        address = self.settings.listen
        host, _ = split_hostport(address)
        if self._tls():
            client_cas = self._appraisal_ca_files() if self.settings.appraisal_requires_mtls else []
            credentials = self._credentials(client_cas)
            port = add_port(lambda: server.add_secure_port(address, credentials), address)
        else:
            if self.settings.tls_cert is not None or self.settings.tls_key is not None:
                raise ConfigError("TLS_INCOMPLETE", "TLS needs both a certificate and a key")
            if not is_loopback(host):
                log.warning("gRPC listening on %s WITHOUT TLS: configure a certificate and key", address)
            port = add_port(lambda: server.add_insecure_port(address), address)
        return port

    def _bind_admin(self, server: grpc.aio.Server) -> int:
        """The admin mTLS port: every connection must present a certificate from the admin CA."""
        address = self.settings.admin_listen
        if not address or self.settings.admin_client_ca is None:
            return 0
        credentials = self._credentials([self.settings.admin_client_ca])
        return add_port(lambda: server.add_secure_port(address, credentials), address)

    def request_stop(self, grace: float | None = None, *, drain: float = 0.0) -> asyncio.Task[None]:
        """Start the graceful shutdown (once) without waiting for it; safe from a signal handler.
        `drain`: seconds to keep serving after health says NOT_SERVING (SIGTERM uses `drain_seconds`)."""
        if self._stopping is None:
            seconds = self.settings.grace_seconds if grace is None else grace
            self._stopping = asyncio.get_running_loop().create_task(self._stop(seconds, drain))
        return self._stopping

    async def stop(self, grace: float | None = None, *, drain: float = 0.0) -> None:
        """Health NOT_SERVING first, keep serving `drain` seconds, then stop accepting and give in-flight RPCs
        `grace` seconds. Idempotent."""
        await asyncio.shield(self.request_stop(grace, drain=drain))

    async def _stop(self, grace: float, drain: float) -> None:
        self._serving = False
        for task in (self._refresher, self._housekeeper):
            if task is not None:
                task.cancel()
        await self._health.enter_graceful_shutdown()
        if drain > 0 and self._server is not None:
            log.info("draining: NOT_SERVING, still answering for %.1fs", drain)
            await asyncio.sleep(drain)
        log.info("shutting down (grace %.1fs)", grace)
        if self._server is not None:
            await self._server.stop(grace)
        if self._http is not None:
            await asyncio.to_thread(self._http.stop)
        self.lanes.close()  # daemon workers: one stuck in a silent dependency never holds the exit
        log.info("stopped")

    async def wait(self) -> None:
        """Until the server terminates (after `stop`)."""
        if self._server is not None:
            await self._server.wait_for_termination()
        if self._stopping is not None:
            await asyncio.shield(self._stopping)


async def serve(
    components: Components,
    *,
    ready: asyncio.Event | None = None,
    port_file: Path | None = None,
    server: VerifierServer | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully. The CLI calls `asyncio.run(serve(components))`.
    `port_file` receives {"grpc": port, "http": port} once listening (useful with port 0); `server` (a worker of
    `--workers N`) is a `VerifierServer` of `components` made by the caller."""
    server = server or VerifierServer(components)
    grpc_port, http_port = await server.start()
    if port_file is not None:
        ports = {"grpc": grpc_port, "http": http_port}
        if server.admin_port:
            ports["admin"] = server.admin_port
        write_port_file(port_file, ports)
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


def _on_signal(server: VerifierServer, sig: signal.Signals) -> None:
    log.info("received %s: graceful shutdown", sig.name)
    server.request_stop(drain=server.settings.drain_seconds)
