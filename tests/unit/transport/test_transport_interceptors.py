"""Interceptor logic without a server: error mapping, admin auth, request ids and the logging filter."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.rpc import error_details_pb2, status_pb2

from tests.integration.test_admin_auth import CA_KEY_USAGE
from verifier import errors
from verifier.auth import current_actor
from verifier.logging_setup import REQUEST_ID, RequestIdFilter, accept_request_id, install_logging
from verifier.metrics import Metrics
from verifier.storage.admin_tokens import TokenInfo
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor, ClientCertVerifier
from verifier.transport.grpc.interceptors import ErrorInterceptor, MetricsInterceptor, RequestIdInterceptor


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, auth: dict[str, list[bytes]] | None = None) -> None:
        self.status: grpc.Status | None = None
        self.trailing: Any = None
        self.auth = auth or {}

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata

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
    trailers = dict(context.status.trailing_metadata)
    assert set(trailers) <= {"grpc-status-details-bin", "x-request-id"}  # the id when one was set (RequestId)
    value = trailers["grpc-status-details-bin"]
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
def test_admin_auth(
    digests: tuple[str, ...], header: str | None, reason: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    interceptor = AdminAuthInterceptor(digests)
    metadata = (("authorization", header),) if header is not None else ()
    call = interceptor.around(
        "/verifier.v1.ReferenceValues/Add",
        Details("/x", metadata),
        ok,
        None,  # type: ignore[arg-type]
        FakeContext(),
    )  # type: ignore[arg-type]
    if reason is None:
        assert asyncio.run(call) == "ok"
        return
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(call)
    assert info.value.code == reason
    assert "tok" not in caplog.text.replace("token", "")


class FakeTokens:
    def __init__(self, role: str) -> None:
        self.role = role

    def authenticate(self, token: str, *, now: dt.datetime) -> TokenInfo | None:
        if token != "db-token":
            return None
        return TokenInfo(id="t1", name="ci", role=self.role, created_at=now, created_by="cli:test")


@pytest.mark.parametrize(
    ("role", "method", "outcome"),
    [
        ("auditor", "List", "ok"),
        ("auditor", "Add", "ADMIN_ROLE_INSUFFICIENT"),
        ("auditor", "Revoke", "ADMIN_ROLE_INSUFFICIENT"),
        ("auditor", "SomethingNew", "ADMIN_ROLE_INSUFFICIENT"),  # unknown admin methods need admin
        ("admin", "Add", "ok"),
    ],
)
def test_admin_roles_from_database_tokens(role: str, method: str, outcome: str) -> None:
    seen: list[str] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(current_actor())
        return "ok"

    interceptor = AdminAuthInterceptor(tokens=FakeTokens(role))
    call = interceptor.around(
        f"/verifier.v1.ReferenceValues/{method}",  # type: ignore[arg-type]
        Details("/x", (("authorization", "Bearer db-token"),)),
        inner,
        None,
        FakeContext(),
    )  # type: ignore[arg-type]
    if outcome == "ok":
        assert asyncio.run(call) == "ok" and seen == ["token:ci"]
        assert current_actor().startswith("cli:")  # reset after the call
        return
    with pytest.raises(errors.AccessDeniedError) as info:
        asyncio.run(call)
    assert info.value.code == outcome and not seen


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)  # a CA asserts keyCertSign (RFC 5280 section 4.2.1.3)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], cn: str, *, ca: bool = False, hours: float = 1
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=2))
        .not_valid_after(now + dt.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(CA_KEY_USAGE, critical=True)
    return key, builder.sign(issuer[0], hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_client_cert_verifier_chains_to_its_own_cas_only() -> None:
    admin, foreign = _ca("admin ca"), _ca("foreign ca")
    verifier = ClientCertVerifier([admin[1]])
    now = dt.datetime.now(dt.UTC)
    alice = _leaf(admin, "alice")[1]
    assert verifier.verify(_pem(alice), None, at=now) == alice
    assert verifier.verify(_pem(_leaf(foreign, "mallory")[1]), None, at=now) is None
    assert verifier.verify(_pem(_leaf(admin, "old", hours=-1)[1]), None, at=now) is None  # expired
    assert verifier.verify(b"not a pem", None, at=now) is None
    intermediate = _leaf(admin, "ops intermediate", ca=True)
    bob = _leaf(intermediate, "bob")[1]
    assert verifier.verify(_pem(bob), _pem(bob) + _pem(intermediate[1]), at=now) == bob
    assert verifier.verify(_pem(bob), None, at=now) is None
    not_a_ca = _leaf(admin, "carol")
    assert verifier.verify(_pem(_leaf(not_a_ca, "dave")[1]), _pem(not_a_ca[1]), at=now) is None


def test_admin_auth_by_client_certificate() -> None:
    admin, foreign = _ca("admin ca"), _ca("foreign ca")
    interceptor = AdminAuthInterceptor(admin_cas=ClientCertVerifier([admin[1]]), cert_role="auditor")
    seen: list[str] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(current_actor())
        return "ok"

    def context(cert: x509.Certificate) -> Any:
        return FakeContext({"transport_security_type": [b"ssl"], "x509_pem_cert": [_pem(cert)]})

    assert (
        asyncio.run(
            interceptor.around(
                "/verifier.v1.ReferenceValues/List",
                Details("/x"),
                inner,
                None,  # type: ignore[arg-type]
                context(_leaf(admin, "alice")[1]),
            )
        )
        == "ok"
    )
    assert seen == ["cert:alice"]
    with pytest.raises(errors.AccessDeniedError):  # cert_role auditor
        asyncio.run(
            interceptor.around(
                "/verifier.v1.ReferenceValues/Add",
                Details("/x"),
                inner,
                None,  # type: ignore[arg-type]
                context(_leaf(admin, "alice")[1]),
            )
        )
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(
            interceptor.around(
                "/verifier.v1.ReferenceValues/List",
                Details("/x"),
                inner,
                None,  # type: ignore[arg-type]
                context(_leaf(foreign, "mallory")[1]),
            )
        )
    assert info.value.code == "ADMIN_CERT_INVALID"
    plaintext = FakeContext({"x509_pem_cert": [_pem(_leaf(admin, "alice")[1])]})  # not over TLS: ignored
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(
            interceptor.around(
                "/verifier.v1.ReferenceValues/List",
                Details("/x"),
                inner,
                None,  # type: ignore[arg-type]
                plaintext,
            )
        )  # type: ignore[arg-type]
    assert info.value.code == "ADMIN_AUTH_REQUIRED"


def test_appraisal_may_require_a_client_certificate() -> None:
    appraisal, foreign = _ca("workload ca"), _ca("foreign ca")
    interceptor = AdminAuthInterceptor(appraisal_cas=ClientCertVerifier([appraisal[1]]))
    method = "/verifier.v1.Verifier/Appraise"
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(interceptor.around(method, Details("/x"), ok, None, FakeContext()))  # type: ignore[arg-type]
    assert info.value.code == "APPRAISAL_CERT_REQUIRED"
    bad = FakeContext({"transport_security_type": [b"ssl"], "x509_pem_cert": [_pem(_leaf(foreign, "m")[1])]})
    with pytest.raises(errors.AuthError) as info:
        asyncio.run(interceptor.around(method, Details("/x"), ok, None, bad))  # type: ignore[arg-type]
    assert info.value.code == "APPRAISAL_CERT_INVALID"
    good = FakeContext({"transport_security_type": [b"ssl"], "x509_pem_cert": [_pem(_leaf(appraisal, "w")[1])]})
    assert asyncio.run(interceptor.around(method, Details("/x"), ok, None, good)) == "ok"  # type: ignore[arg-type]


def test_admin_auth_leaves_other_services_open() -> None:
    call = AdminAuthInterceptor(()).around(
        "/verifier.v1.Verifier/Appraise",
        Details("/x"),
        ok,
        None,  # type: ignore[arg-type]
        FakeContext(),
    )  # type: ignore[arg-type]
    assert asyncio.run(call) == "ok"


def test_request_id_is_echoed_and_scoped() -> None:
    seen: list[str | None] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(REQUEST_ID.get())
        return "ok"

    context = FakeContext()
    asyncio.run(
        RequestIdInterceptor().around(
            "/m",
            Details("/m", (("x-request-id", "abc-1"),)),
            inner,
            None,  # type: ignore[arg-type]
            context,
        )
    )  # type: ignore[arg-type]
    assert seen == ["abc-1"] and context.trailing == (("x-request-id", "abc-1"),)
    assert REQUEST_ID.get() is None
    asyncio.run(
        RequestIdInterceptor().around(
            "/m",
            Details("/m", (("x-request-id", "bad\nid"),)),
            inner,
            None,  # type: ignore[arg-type]
            context,
        )
    )  # type: ignore[arg-type]
    assert seen[1] != "bad\nid" and len(seen[1] or "") == 36


def test_request_id_longer_than_the_stored_column_is_replaced() -> None:
    """A 65..128-character id passed accept_request_id and then overflowed appraisals.request_id (VARCHAR(64)) on
    PostgreSQL: the appraisal failed with INTERNAL."""
    seen: list[str | None] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(REQUEST_ID.get())
        return "ok"

    for candidate, kept in (("r" * 64, True), ("r" * 65, False), ("r" * 128, False)):
        context = FakeContext()
        asyncio.run(
            RequestIdInterceptor().around(
                "/m",
                Details("/m", (("x-request-id", candidate),)),
                inner,  # type: ignore[arg-type]
                None,
                context,
            )
        )  # type: ignore[arg-type]
        assert (seen[-1] == candidate) is kept and len(seen[-1] or "") <= 64


def test_accept_request_id() -> None:
    assert accept_request_id("a.b:c-d_1") == "a.b:c-d_1"
    assert accept_request_id("x" * 129) != "x" * 129
    assert accept_request_id(None)


def test_metrics_observed_after_the_handler() -> None:
    metrics = Metrics()

    async def slow(request: Any, context: Any) -> str:
        await asyncio.sleep(0.02)
        return "ok"

    asyncio.run(MetricsInterceptor(metrics).around("/s.v1.S/M", Details("/s.v1.S/M"), slow, None, FakeContext()))  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        asyncio.run(
            MetricsInterceptor(metrics).around(
                "/s.v1.S/M",
                Details("/s.v1.S/M"),
                raising(KeyError()),
                None,  # type: ignore[arg-type]
                FakeContext(),
            )
        )  # type: ignore[arg-type]
    labels = {"grpc_type": "unary", "grpc_service": "s.v1.S", "grpc_method": "M"}
    value = metrics.registry.get_sample_value
    assert value("grpc_server_started_total", labels) == 2
    assert value("grpc_server_handled_total", {**labels, "grpc_code": "OK"}) == 1
    assert value("grpc_server_handled_total", {**labels, "grpc_code": "Unknown"}) == 1
    assert value("grpc_server_handling_seconds_sum", labels) >= 0.02  # type: ignore[operator]
    assert Metrics().exposition() != metrics.exposition()  # private registries


def test_health_checks_are_not_counted() -> None:
    metrics = Metrics()
    layer = MetricsInterceptor(metrics)
    assert not layer.applies("/grpc.health.v1.Health/Check") and layer.applies("/verifier.v1.Verifier/Appraise")

    async def continuation(details: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(lambda request, context: "ok")

    async def scenario() -> Any:  # installed alone, the layer leaves health checks untouched too
        return await layer.intercept_service(continuation, Details("/grpc.health.v1.Health/Check"))  # type: ignore[arg-type]

    handler = asyncio.run(scenario())
    assert handler.unary_unary(None, None) == "ok"
    assert "grpc_server_started_total{" not in metrics.exposition().decode()


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
        quiet = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        assert quiet.process is None and quiet.thread is None  # FORMAT names neither: not looked up per record
        assert handler.filter(quiet) and "[request_id=-] m" in handler.format(quiet)
    finally:
        root.handlers, root.level = saved, level
