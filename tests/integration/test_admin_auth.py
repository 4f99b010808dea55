"""Admin API authentication over real TLS: database tokens with roles, admin client certificates on the admin
mTLS port, a foreign CA refused (by the handshake) and a CA that may not sign certificates refused (by the
verifier's own check after it), appraisal open (or mTLS-only), refusals in the audit log and the server log."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.errors import ConfigError
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.admin_tokens import SqlAdminTokens
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

Key = ec.EllipticCurvePrivateKey


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclasses.dataclass
class Issued:
    key: Key
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)


# The keyUsage of a CA certificate (RFC 5280 section 4.2.1.3: a CA asserts keyCertSign; the client-certificate
# check, verifier.trust.client_certs, refuses an issuer without it) and of a leaf that signs (TLS client auth).
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _ca(name: str, *, key_usage: bool = True) -> Issued:
    """A self-signed CA valid for two hours around now; without `key_usage`, one lacking the keyUsage extension
    (which gRPC's TLS stack accepts and the verifier does not: RFC 5280 section 4.2.1.3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if key_usage:
        builder = builder.add_extension(CA_KEY_USAGE, critical=True)
    return Issued(key, builder.sign(key, hashes.SHA256()))


def _leaf(ca: Issued, cn: str, *, server: bool = False, names: Sequence[x509.GeneralName] = ()) -> Issued:
    """A client certificate for `cn` (EKU clientAuth; subjectAltName `names` when given), or with `server` a server
    certificate for localhost (EKU serverAuth)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    elif names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


@dataclasses.dataclass
class Pki:
    server_ca: Issued
    server: Issued
    admin_ca: Issued
    alice: Issued  # admin client certificate
    foreign_ca: Issued
    mallory: Issued  # same CN scheme, another CA
    workload_ca: Issued
    workload: Issued
    files: dict[str, Path]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    server_ca, admin_ca, foreign_ca, workload_ca = _ca("server ca"), _ca("admin ca"), _ca("admin ca"), _ca("wl ca")
    pki = Pki(
        server_ca,
        _leaf(server_ca, "localhost", server=True),
        admin_ca,
        _leaf(admin_ca, "alice"),
        foreign_ca,
        _leaf(foreign_ca, "alice"),
        workload_ca,
        _leaf(workload_ca, "workload-7"),
        {},
    )
    root = tmp_path_factory.mktemp("tls")
    for name, data in {
        "server.crt": pki.server.pem,
        "server.key": _key_pem(pki.server.key),
        "admin-ca.pem": admin_ca.pem,
        "workload-ca.pem": workload_ca.pem,
    }.items():
        (root / name).write_bytes(data)
        pki.files[name] = root / name
    return pki


@pytest.fixture(scope="module")
def aws() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.fixture
def components(db: Database, database_url: str, aws: FakeAwsPki, tls: Pki) -> Iterator[Components]:
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0.2,
        tls_cert=tls.files["server.crt"],
        tls_key=tls.files["server.key"],
        admin_client_ca=tls.files["admin-ca.pem"],
        admin_listen="127.0.0.1:0",
    )
    built = build(settings, clock=FixedClock(aws.now))
    built.service.anchors = aws.anchors()
    yield built
    built.close()


@dataclasses.dataclass
class Running:
    server: VerifierServer
    port: int
    tls: Pki
    channels: list[grpc.aio.Channel] = dataclasses.field(default_factory=list)

    def channel(self, client: Issued | None = None, *, admin_port: bool = False) -> grpc.aio.Channel:
        if client is None:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.tls.server_ca.pem)
        else:
            credentials = grpc.ssl_channel_credentials(self.tls.server_ca.pem, _key_pem(client.key), client.pem)
        port = self.server.admin_port if admin_port else self.port
        channel = grpc.aio.secure_channel(f"localhost:{port}", credentials)
        self.channels.append(channel)
        return channel

    def refs(self, client: Issued | None = None, *, admin_port: bool = False) -> Any:
        return rv_grpc.ReferenceValuesStub(self.channel(client, admin_port=admin_port))

    def verifier(self, client: Issued | None = None) -> Any:
        return pb_grpc.VerifierStub(self.channel(client))


@contextlib.asynccontextmanager
async def running(components: Components, tls: Pki, **overrides: Any) -> AsyncIterator[Running]:
    if overrides:
        components = dataclasses.replace(components, settings=dataclasses.replace(components.settings, **overrides))
    server = VerifierServer(components)
    port, _ = await server.start()
    r = Running(server, port, tls)
    try:
        yield r
    finally:
        for channel in r.channels:
            await channel.close()
        await server.stop(0)


def reason_of(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info.reason


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


PCR0 = FakeAwsPki.default_pcrs()[0].hex()


def add_request(label: str = "image v1") -> pb.AddReferenceValueRequest:
    return pb.AddReferenceValueRequest(kind="nitro.pcr0", value=PCR0, label=label, version="1.4")


def test_tokens_roles_refusals_audit_and_log(
    components: Components, db: Database, tls: Pki, aws: FakeAwsPki, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = SqlAdminTokens(db)
    _, admin = tokens.create("deployer", "admin", now=aws.now, actor="cli:test")
    _, auditor = tokens.create("dashboards", "auditor", now=aws.now, actor="cli:test")
    old, revoked = tokens.create("old-ci", "admin", now=aws.now, actor="cli:test")
    tokens.revoke(old.id, now=aws.now, actor="cli:test")

    async def refused(call: Any, code: grpc.StatusCode, reason: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == code, caught.value.details()
        assert reason_of(caught.value) == reason

    async def scenario() -> None:
        async with running(components, tls) as r:
            refs = r.refs()
            unauthenticated = grpc.StatusCode.UNAUTHENTICATED
            await refused(refs.List(pb.ListReferenceValuesRequest()), unauthenticated, "ADMIN_AUTH_REQUIRED")
            await refused(refs.Add(add_request(), metadata=bearer(revoked)), unauthenticated, "ADMIN_TOKEN_INVALID")
            await refused(
                refs.Add(add_request(), metadata=bearer("vat_" + "A" * 43)), unauthenticated, "ADMIN_TOKEN_INVALID"
            )
            assert not (await refs.List(pb.ListReferenceValuesRequest(), metadata=bearer(auditor))).reference_values
            await refused(
                refs.Add(add_request(), metadata=bearer(auditor)),
                grpc.StatusCode.PERMISSION_DENIED,
                "ADMIN_ROLE_INSUFFICIENT",
            )

            added = await refs.Add(add_request(), metadata=bearer(admin))
            assert (added.created_by, added.version, added.state) == ("token:deployer", "1.4", "active")
            listed = await refs.List(pb.ListReferenceValuesRequest(label="image v1"), metadata=bearer(auditor))
            assert [v.id for v in listed.reference_values] == [added.id]
            assert not (
                await refs.List(pb.ListReferenceValuesRequest(label="other"), metadata=bearer(auditor))
            ).reference_values
            await refused(
                refs.List(pb.ListReferenceValuesRequest(state="bogus"), metadata=bearer(auditor)),
                grpc.StatusCode.INVALID_ARGUMENT,
                "REFERENCE_STATE_UNKNOWN",
            )
            await refused(
                refs.Revoke(pb.RevokeReferenceValueRequest(id=added.id, reason="x"), metadata=bearer(auditor)),
                grpc.StatusCode.PERMISSION_DENIED,
                "ADMIN_ROLE_INSUFFICIENT",
            )
            gone = await refs.Revoke(
                pb.RevokeReferenceValueRequest(id=added.id, reason="withdrawn"), metadata=bearer(admin)
            )
            assert (gone.state, gone.revoked_by) == ("revoked", "token:deployer")
            listed = await refs.List(pb.ListReferenceValuesRequest(state="revoked"), metadata=bearer(admin))
            assert [(v.id, v.created_by, v.revoked_by) for v in listed.reference_values] == [
                (added.id, "token:deployer", "token:deployer")
            ]

            # Appraisal stays open: TLS without a client certificate, no credentials.
            appraised = await r.verifier().Appraise(
                pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=aws.mint())
            )
            assert appraised.token

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    refusals = audit.entries(db, action="admin.refused")
    assert [e.details["reason"] for e in refusals] == [
        "ADMIN_AUTH_REQUIRED",
        "ADMIN_TOKEN_INVALID",
        "ADMIN_TOKEN_INVALID",
        "ADMIN_ROLE_INSUFFICIENT",
        "ADMIN_ROLE_INSUFFICIENT",
    ]
    assert refusals[0].subject == "/verifier.v1.ReferenceValues/List" and refusals[0].actor == "anonymous"
    assert refusals[3].actor == "token:dashboards"
    assert [e.actor for e in audit.entries(db) if e.action in ("ref.add", "ref.revoke")] == ["token:deployer"] * 2
    assert audit.verify_chain(db).ok
    everything = caplog.text + json.dumps([dataclasses.asdict(e) for e in audit.entries(db, limit=1000)], default=str)
    for secret in (admin, auditor, revoked, "A" * 43):
        assert secret not in everything
    assert "refused: ADMIN_TOKEN_INVALID" in caplog.text and "refused: ADMIN_ROLE_INSUFFICIENT" in caplog.text


def test_admin_client_certificate_on_the_admin_port(
    components: Components, db: Database, tls: Pki, aws: FakeAwsPki
) -> None:
    async def scenario() -> None:
        async with running(components, tls) as r:
            assert r.server.admin_port and r.server.admin_port != r.port
            added = await r.refs(tls.alice, admin_port=True).Add(add_request())
            assert added.created_by == "cert:alice"
            revoked = await r.refs(tls.alice, admin_port=True).Revoke(
                pb.RevokeReferenceValueRequest(id=added.id, reason="test")
            )
            assert revoked.revoked_by == "cert:alice"
            for client in (tls.mallory, None):  # a foreign CA (same CN), or no certificate: the handshake fails
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await r.refs(client, admin_port=True).Add(add_request("mallory"), timeout=5)
                assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
            # The main port never asks for a certificate: presenting one grants nothing there.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.refs(tls.alice).Add(add_request("main port"))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason_of(caught.value) == "ADMIN_AUTH_REQUIRED"

    asyncio.run(scenario())
    labels = [e.details["label"] for e in audit.entries(db, action="ref.add")]
    assert labels == ["image v1"]  # nothing from the foreign certificate or the main port


def test_an_admin_ca_the_tls_stack_accepts_but_the_verifier_does_not(
    components: Components, db: Database, tls: Pki, tmp_path: Path
) -> None:
    """An admin CA without keyUsage passes gRPC's handshake; verifier.trust.client_certs refuses its leaf (a CA must
    assert keyCertSign), so the call is UNAUTHENTICATED ADMIN_CERT_INVALID and audited as such."""
    lax = _ca("lax admin ca", key_usage=False)
    carol = _leaf(lax, "carol")
    (tmp_path / "lax-ca.pem").write_bytes(lax.pem)

    async def scenario() -> None:
        async with running(components, tls, admin_client_ca=tmp_path / "lax-ca.pem") as r:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.refs(carol, admin_port=True).List(pb.ListReferenceValuesRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value.details()
            assert reason_of(caught.value) == "ADMIN_CERT_INVALID"

    asyncio.run(scenario())
    (refusal,) = audit.entries(db, action="admin.refused")
    assert (refusal.details["reason"], refusal.details["certificate"]) == ("ADMIN_CERT_INVALID", "unverified carol")


def test_appraisal_requires_mtls(components: Components, db: Database, tls: Pki, aws: FakeAwsPki) -> None:
    request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=aws.mint())
    _, auditor = SqlAdminTokens(db).create("dashboards", "auditor", now=aws.now, actor="cli:test")

    async def scenario() -> None:
        async with running(
            components, tls, appraisal_requires_mtls=True, appraisal_client_ca=tls.files["workload-ca.pem"]
        ) as r:
            for client in (None, tls.mallory):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await r.verifier(client).Appraise(request, timeout=5)
                assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)
            assert (await r.verifier(tls.workload).Appraise(request)).token
            assert (await r.verifier(tls.alice).Appraise(request)).token  # the admin CA is accepted too
            # A workload certificate is no admin credential; a token over that connection is.
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.refs(tls.workload).List(pb.ListReferenceValuesRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert reason_of(caught.value) == "ADMIN_CERT_INVALID"
            await r.refs(tls.workload).List(pb.ListReferenceValuesRequest(), metadata=bearer(auditor))
            assert (await r.refs(tls.alice).Add(add_request())).created_by == "cert:alice"

    asyncio.run(scenario())
    (refusal,) = audit.entries(db, action="admin.refused")
    assert refusal.details["reason"] == "ADMIN_CERT_INVALID"
    assert refusal.details["certificate"] == "unverified workload-7"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"admin_listen": None}, "ADMIN_LISTEN_REQUIRED"),
        ({"tls_cert": None, "tls_key": None}, "MTLS_NEEDS_TLS"),
        ({"admin_client_ca": None}, "ADMIN_CLIENT_CA_MISSING"),
        ({"admin_cert_role": "root"}, "ADMIN_CERT_ROLE_UNKNOWN"),
        (
            {"admin_client_ca": None, "admin_listen": None, "appraisal_requires_mtls": True},
            "APPRAISAL_CLIENT_CA_MISSING",
        ),
    ],
)
def test_configurations_that_would_not_authenticate_are_refused(
    components: Components, tls: Pki, overrides: dict[str, Any], code: str
) -> None:
    async def scenario() -> None:
        with pytest.raises(ConfigError) as caught:
            async with running(components, tls, **overrides):
                pass
        assert caught.value.code == code

    asyncio.run(scenario())
