"""Admin authentication and authorization (`AdminAuthInterceptor`). Whether a TLS client certificate is valid under
the admin (or appraisal) client CAs is decided by verifier.trust.client_certs (`ClientCertVerifier`, re-exported
here for the server); this module only asks it and turns a refusal into ADMIN_CERT_INVALID / APPRAISAL_CERT_INVALID."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from ...auth import CURRENT_PRINCIPAL, Principal, Role, is_role
from ...errors import AccessDeniedError, AuthError, EvidenceError
from ...logging_setup import REQUEST_ID
from ...storage import audit
from ...storage.admin_tokens import TokenInfo
from ...storage.engine import Database
from ...trust.certs import load_certificate
from ...trust.client_certs import ClientCertVerifier as ClientCertVerifier
from .interceptor_base import Behavior, _metadata, _UnaryInterceptor
from .lanes import Runner

log = logging.getLogger(__name__)

ADMIN_SERVICE = "verifier.v1.ReferenceValues"
WORKLOADS_SERVICE = "verifier.v1.Workloads"
ADMIN_SERVICES: tuple[str, ...] = (ADMIN_SERVICE, WORKLOADS_SERVICE)
APPRAISAL_SERVICE = "verifier.v1.Verifier"
API_PACKAGE = "verifier."  # every service of this API but the appraisal one is admin, listed or not (fail closed)
# The role each admin method needs; any admin method not listed here needs `admin` (fail closed).
METHOD_ROLES: dict[str, Role] = {
    f"/{ADMIN_SERVICE}/List": "auditor",
    f"/{WORKLOADS_SERVICE}/List": "auditor",
    f"/{WORKLOADS_SERVICE}/Get": "auditor",
    # reference_values.proto: History and Plan (with its impact analysis) read only
    f"/{ADMIN_SERVICE}/History": "auditor",
    f"/{ADMIN_SERVICE}/Plan": "auditor",
    # admin.proto: reads are auditor's; SetPolicy and every AdminTokenService method need admin (not listed)
    "/verifier.v1.PolicyService/ListPolicies": "auditor",
    "/verifier.v1.PolicyService/GetPolicy": "auditor",
    "/verifier.v1.AuditService/ListAuditEntries": "auditor",
    "/verifier.v1.AuditService/VerifyAuditChain": "auditor",
}
REFUSALS_AUDITED_PER_MINUTE = 60


class TokenAuthenticator(Protocol):
    def authenticate(self, token: str, *, now: dt.datetime) -> TokenInfo | None: ...


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else cert.subject.rfc4514_string()
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else value)[:150]


def peer_certificate(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[bytes | None, bytes | None]:
    """(leaf PEM, chain PEM) of the TLS client certificate the handshake verified, or (None, None)."""
    auth = context.auth_context() or {}
    if b"ssl" not in auth.get("transport_security_type", ()):
        return None, None
    leaf = list(auth.get("x509_pem_cert", ()))
    chain = list(auth.get("x509_pem_cert_chain", ()))
    return (leaf[0] if leaf else None), (b"".join(chain) if chain else None)


def _is_tls(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """Whether the call came over TLS (gRPC's auth context names the transport security)."""
    auth = context.auth_context() or {}
    return b"ssl" in auth.get("transport_security_type", ())


class _RefusalBudget:
    """At most `per_minute` refused attempts per process go to the audit log (each takes the chain lock);
    every refusal is logged regardless."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._window = 0.0
        self._used = 0
        self.suppressed = 0

    def take(self) -> bool:
        now = time.monotonic()
        if now - self._window >= 60.0:
            self._window, self._used = now, 0
        if self._used >= self._per_minute:
            self.suppressed += 1
            return False
        self._used += 1
        return True


class AdminAuthInterceptor(_UnaryInterceptor):
    """Authenticates and authorizes admin calls; optionally requires client certificates for appraisal calls.

    An admin call (a method of `admin_services`, or of any other `verifier.*` service but the appraisal one, so a
    service added later is admin-only until said otherwise) needs one credential:
    - `authorization: Bearer <token>`: a configured bootstrap digest (`admin_token_sha256`, role admin) or an
      active token of `tokens` (its own role). A bad token is refused even when a certificate is present.
    - without that header, a TLS client certificate that chains to `admin_cas` (role `cert_role`).
    Refusals are UNAUTHENTICATED (no/invalid credential) or PERMISSION_DENIED (role), logged without the
    token, and appended to the audit log as `admin.refused` (rate-limited). The handler runs with
    `CURRENT_PRINCIPAL` set, so stores record the actor.
    With `admin_needs_tls` (the server sets it unless `allow_plaintext_admin` on a loopback-only listener), an
    admin call on a connection without TLS is refused UNAUTHENTICATED `ADMIN_NEEDS_TLS` before any credential is
    looked at: a bearer token sent in the clear is never accepted.
    With `appraisal_cas`, calls of the Verifier service need a client certificate chaining to one of them."""

    def __init__(
        self,
        token_sha256: Sequence[str] = (),
        *,
        tokens: TokenAuthenticator | None = None,
        admin_cas: ClientCertVerifier | None = None,
        cert_role: Role = "admin",
        appraisal_cas: ClientCertVerifier | None = None,
        audit_db: Database | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        admin_services: Sequence[str] = ADMIN_SERVICES,
        admin_needs_tls: bool = False,
        run: Runner = asyncio.to_thread,
    ) -> None:
        """`run` runs the blocking token lookup and refusal audit (the server passes its admin lane)."""
        self._run = run
        self._admin_needs_tls = admin_needs_tls
        self._digests = tuple(d.strip().lower() for d in token_sha256 if d.strip())
        self._tokens = tokens
        self._admin_cas = admin_cas
        self._cert_role: Role = cert_role
        self._appraisal_cas = appraisal_cas
        self._audit_db = audit_db
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._services = frozenset(admin_services)
        self._budget = _RefusalBudget(REFUSALS_AUDITED_PER_MINUTE)
        if not self._digests and tokens is None and admin_cas is None:
            log.warning("no admin credentials configured: every %s call will be refused", ", ".join(admin_services))

    def _classify(self, method: str) -> tuple[bool, bool]:
        """(admin call, appraisal call needing a client certificate) for `method`."""
        service = method.split("/")[1] if method.count("/") >= 2 else ""
        admin = service in self._services or (service.startswith(API_PACKAGE) and service != APPRAISAL_SERVICE)
        return admin, not admin and self._appraisal_cas is not None and service == APPRAISAL_SERVICE

    def applies(self, method: str) -> bool:
        return any(self._classify(method))

    async def around(
        self,
        method: str,
        details: grpc.HandlerCallDetails,
        inner: Behavior,
        request: Any,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> Any:
        admin, needs_cert = self._classify(method)
        if admin:
            principal = await self._admin(method, details, context)
            token = CURRENT_PRINCIPAL.set(principal)
            try:
                return await inner(request, context)
            finally:
                CURRENT_PRINCIPAL.reset(token)
        if needs_cert:
            self._appraisal(method, context)
        return await inner(request, context)

    def _appraisal(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        assert self._appraisal_cas is not None
        leaf, chain = peer_certificate(context)
        if leaf is None:
            log.warning("call %s from %s refused: no client certificate", method, context.peer())
            raise AuthError("APPRAISAL_CERT_REQUIRED", "appraisal calls need a TLS client certificate")
        # The wall clock, not the injected one: the TLS handshake verified this certificate at the real instant,
        # and the injected clock is the appraisal time (a vector's verify_at in tests).
        try:
            self._appraisal_cas.check(leaf, chain, at=dt.datetime.now(dt.UTC))
        except EvidenceError as error:
            log.warning(
                "call %s from %s refused: client certificate not from an accepted CA (%s: %s)",
                method,
                context.peer(),
                error.code,
                error.actual or error.message,
            )
            raise AuthError("APPRAISAL_CERT_INVALID", "the client certificate is not accepted") from None

    async def _admin(
        self, method: str, details: grpc.HandlerCallDetails, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Principal:
        peer = context.peer()
        header = _metadata(details.invocation_metadata, "authorization")
        leaf, chain = peer_certificate(context)
        attempt: dict[str, str] = {"credential": "bearer" if header is not None else "cert" if leaf else "none"}
        principal: Principal | None = None
        try:
            if self._admin_needs_tls and not _is_tls(context):
                raise AuthError(
                    "ADMIN_NEEDS_TLS", "admin calls need a TLS connection (credentials are never accepted in the clear)"
                )
            principal = await self._principal(header, leaf, chain, attempt)
            needed: Role = METHOD_ROLES.get(method, "admin")
            if not principal.may(needed):
                raise AccessDeniedError(
                    "ADMIN_ROLE_INSUFFICIENT", f"{method.rsplit('/', 1)[-1]} needs the {needed} role"
                )
        except (AuthError, AccessDeniedError) as error:
            actor = principal.actor if principal is not None else "anonymous"
            log.warning(
                "admin call %s from %s refused: %s (%s)",
                method,
                peer,
                error.code,
                ", ".join(f"{k}={v}" for k, v in sorted({**attempt, "actor": actor}.items())),
            )
            await self._audit_refusal(method, peer, error.code, actor, attempt)
            raise
        log.info("admin call %s from %s authorized as %s (%s)", method, peer, principal.actor, principal.role)
        return principal

    async def _principal(
        self, header: str | None, leaf: bytes | None, chain: bytes | None, attempt: dict[str, str]
    ) -> Principal:
        if header is not None:
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthError(
                    "ADMIN_AUTH_REQUIRED",
                    "admin calls need `authorization: Bearer <token>` metadata or an admin client certificate",
                )
            presented = hashlib.sha256(token.encode("utf-8")).hexdigest()
            matched = ""
            for digest in self._digests:  # compare against every digest: no early exit
                if hmac.compare_digest(presented, digest):
                    matched = digest
            if matched:
                return Principal("static", matched[:12], "admin")
            if self._tokens is not None:
                info = await self._run(self._tokens.authenticate, token, now=self._clock())
                if info is not None and is_role(info.role):
                    return Principal("token", info.name, cast(Role, info.role))
            raise AuthError("ADMIN_TOKEN_INVALID", "the admin token is not accepted")
        if leaf is not None:
            return Principal("cert", common_name(self._admin_cert(leaf, chain, attempt)), self._cert_role)
        raise AuthError(
            "ADMIN_AUTH_REQUIRED",
            "admin calls need `authorization: Bearer <token>` metadata or an admin client certificate",
        )

    def _admin_cert(self, leaf: bytes, chain: bytes | None, attempt: dict[str, str]) -> x509.Certificate:
        """The leaf when it is a valid client certificate under the admin CAs (verifier.trust.client_certs), else
        AuthError ADMIN_CERT_INVALID (the unverified subject recorded in `attempt`)."""
        if self._admin_cas is not None:
            try:
                # The wall clock, as for appraisal certificates: the handshake verified it at the real instant.
                return self._admin_cas.check(leaf, chain, at=dt.datetime.now(dt.UTC)).leaf
            except EvidenceError as error:
                log.info("admin client certificate refused: %s (%s)", error.code, error.actual or error.message)
        attempt["certificate"] = _unverified_subject(leaf)
        raise AuthError("ADMIN_CERT_INVALID", "the client certificate is not from the admin CA")

    async def _audit_refusal(self, method: str, peer: str, reason: str, actor: str, attempt: dict[str, str]) -> None:
        if self._audit_db is None:
            return
        if not self._budget.take():
            log.warning(
                "admin refusal not audited (more than %d a minute; %d suppressed so far)",
                REFUSALS_AUDITED_PER_MINUTE,
                self._budget.suppressed,
            )
            return
        db = self._audit_db
        details = {"reason": reason, "peer": peer[:100], "request_id": REQUEST_ID.get() or "", **attempt}

        def write() -> None:
            with db.session() as session:
                audit.append(
                    session, at=self._clock(), actor=actor, action="admin.refused", subject=method, details=details
                )

        try:
            await self._run(write)
        except Exception:
            log.exception("cannot append the refused admin call to the audit log")


def _unverified_subject(leaf_pem: bytes) -> str:
    try:
        return "unverified " + common_name(load_certificate(leaf_pem, "client certificate"))
    except (EvidenceError, ValueError):
        return "unparseable"
