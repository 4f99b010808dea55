"""OIDC discovery and the JWKS on the HTTP side server, over TLS when TLS is configured (issue 14 item 4).

A real server on loopback with a temporary CA: /.well-known/openid-configuration and the JWKS fetched over HTTPS
(the certificate verified), a real token from Appraise verified with the fetched keys by a stock consumer (PyJWT's
PyJWKClient on the discovery's jwks_uri) and by joserfc; the probes answer over HTTPS too (as a kubelet with
`scheme: HTTPS` asks), plaintext is refused there, `--http-plaintext` keeps HTTP; the threadless server of
`--workers N` speaks the same HTTPS without letting a silent or non-TLS client hold its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import http.client
import ipaddress
import json
import selectors
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.dbfixtures import sqlite_url
from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.errors import ConfigError
from verifier.metrics import Metrics
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.http import HttpApp, PolledHttpServer, tls_context
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

REQUIRED = ("issuer", "jwks_uri", "response_types_supported", "subject_types_supported")


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclasses.dataclass
class Tls:
    ca_pem: bytes
    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """A client context that trusts only the temporary CA (and checks the host name)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test ca"))
        .issuer_name(_name("test ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .sign(ca_key, hashes.SHA256())
    )
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    root = tmp_path_factory.mktemp("tls")
    (root / "server.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Tls(ca.public_bytes(serialization.Encoding.PEM), root / "server.crt", root / "server.key")


@contextlib.contextmanager
def reserved_port() -> Iterator[int]:
    """A loopback port nobody else gets while held (bound, never listening, SO_REUSEADDR): the server binds it too,
    so the issuer URL can name the port before the server starts."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki(now=dt.datetime.now(dt.UTC).replace(microsecond=0))  # tokens valid now, for PyJWT's exp check


Make = Callable[..., Components]


@pytest.fixture
def make(sqlite_db: Database, tmp_path: Path, pki: FakeAwsPki, tls: Tls) -> Iterator[Make]:
    """Components with TLS on both ports and `overrides` (the issuer too: the service signs with it); SQLite only:
    nothing here depends on the database."""
    database_url = sqlite_url(tmp_path)
    made: list[Components] = []

    def components(**overrides: Any) -> Components:
        settings = Settings(
            database_url=database_url,
            development=True,
            listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            tls_cert=tls.cert,
            tls_key=tls.key,
            grace_seconds=0.2,
        )
        built = build(dataclasses.replace(settings, **overrides), clock=FixedClock(pki.now))
        made.append(built)
        built.service.anchors = pki.anchors()
        if not made[:-1]:  # one database: the reference values once
            for index in (0, 1, 2):
                built.references.add(f"nitro.pcr{index}", FakeAwsPki.default_pcrs()[index], "image v1", now=pki.now)
        return built

    yield components
    for built in made:
        built.close()


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[tuple[VerifierServer, int, int]]:
    server = VerifierServer(components)
    port, http_port = await server.start()
    try:
        yield server, port, http_port
    finally:
        await server.stop(0)


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def appraise_over_tls(port: int, tls: Tls, pki: FakeAwsPki) -> str:
    """A real token: CreateChallenge and Appraise of fresh evidence over the TLS gRPC port."""
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca_pem)
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = pb_grpc.VerifierStub(channel)
        nonce = (await stub.CreateChallenge(pb.CreateChallengeRequest())).nonce
        request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=nonce), nonce=nonce)
        reply = await stub.Appraise(request)
    assert reply.status == pb.STATUS_AFFIRMING, [f.code for f in reply.findings]
    return str(reply.token)


def pyjwt_verify(token: str, document: dict[str, Any], context: ssl.SSLContext) -> dict[str, Any]:
    """What a stock consumer does: the key from the discovery's jwks_uri by the token's kid, then the checks."""
    key = jwt.PyJWKClient(document["jwks_uri"], ssl_context=context).get_signing_key_from_jwt(token)
    algorithms = document["id_token_signing_alg_values_supported"]
    options = {"verify_aud": False, "require": ["iss", "iat", "exp"]}
    return dict(jwt.decode(token, key, algorithms=algorithms, issuer=document["issuer"], options=options))


def test_discovery_and_jwks_over_tls_verify_a_real_token(make: Make, tls: Tls, pki: FakeAwsPki) -> None:
    with reserved_port() as http_port:
        issuer = f"https://127.0.0.1:{http_port}"

        async def scenario() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, str]]:
            components = make(http_listen=f"127.0.0.1:{http_port}", issuer=issuer)
            async with running(components) as (_, port, bound):
                assert bound == http_port
                url = issuer + "/.well-known/openid-configuration"
                status, headers, body = await asyncio.to_thread(fetch, url, tls.context())
                assert status == 200, body
                document = json.loads(body)
                token = await appraise_over_tls(port, tls, pki)
                claims = await asyncio.to_thread(pyjwt_verify, token, document, tls.context())
                status, jwks_headers, jwks = await asyncio.to_thread(fetch, document["jwks_uri"], tls.context())
                assert status == 200 and jwks_headers["Content-Type"] == "application/jwk-set+json"
                assert jwks_headers["Cache-Control"] == "max-age=300"
                keys = KeySet.import_key_set(json.loads(jwks))  # a second JOSE library on the fetched keys
                assert dict(jose_jwt.decode(token, keys, algorithms=["ES256"]).claims) == claims
                return document, claims, json.loads(jwks), headers

        document, claims, jwks, headers = asyncio.run(scenario())
    assert document["issuer"] == issuer == claims["iss"]  # discovery's issuer is the tokens' iss
    assert document["jwks_uri"] == issuer + "/.well-known/jwks.json"
    assert all(document[name] for name in REQUIRED)
    assert document["id_token_signing_alg_values_supported"] == ["ES256"]
    assert document["response_types_supported"] == ["id_token"] and document["subject_types_supported"] == ["public"]
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "max-age=300"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert [k["alg"] for k in jwks["keys"]] == ["ES256"] * len(jwks["keys"])


def test_every_path_speaks_https_and_plaintext_is_refused(make: Make, tls: Tls) -> None:
    """Probes and metrics over HTTPS too (a kubelet probe with `scheme: HTTPS` does not verify the certificate);
    a plaintext request to the TLS port gets no answer; without an issuer URL there is no discovery (404 saying
    how to get one) while the JWKS is still served."""

    async def scenario() -> None:
        async with running(make()) as (server, _, http_port):
            base = f"https://127.0.0.1:{http_port}"
            unverified = ssl._create_unverified_context()  # as a kubelet probe
            for path, expected in (("/livez", 200), ("/readyz", 200), ("/healthz", 200), ("/metrics", 200)):
                status, _, _ = await asyncio.to_thread(fetch, base + path, unverified)
                assert status == expected, path
            status, _, body = await asyncio.to_thread(fetch, base + "/.well-known/openid-configuration", tls.context())
            assert status == 404 and b"--issuer" in body and b"--public-url" in body
            status, _, body = await asyncio.to_thread(fetch, base + "/.well-known/jwks.json", tls.context())
            assert status == 200 and json.loads(body)["keys"]
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                await asyncio.to_thread(fetch, f"http://127.0.0.1:{http_port}/livez")
            assert server.ready

    asyncio.run(scenario())


def test_http_plaintext_keeps_http_beside_tls_grpc(make: Make, tls: Tls, pki: FakeAwsPki) -> None:
    """`--http-plaintext` (behind a proxy that terminates TLS): HTTP on the side port, gRPC keeps TLS. An issuer
    with a path: discovery where OIDC looks for it (the path, then the suffix) and at the root (a proxy that
    strips the prefix); jwks_uri below the issuer, served at both places too."""

    async def scenario() -> None:
        components = make(http_plaintext=True, issuer="https://verifier.example/tee")
        async with running(components) as (_, grpc_port, port):
            status, _, body = await asyncio.to_thread(
                fetch, f"http://127.0.0.1:{port}/tee/.well-known/openid-configuration"
            )
            assert status == 200
            document = json.loads(body)
            assert document["issuer"] == "https://verifier.example/tee"
            assert document["jwks_uri"] == "https://verifier.example/tee/.well-known/jwks.json"
            for path in ("/.well-known/openid-configuration", "/tee/.well-known/jwks.json", "/.well-known/jwks.json"):
                status, _, _ = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}{path}")
                assert status == 200, path
            token = await appraise_over_tls(grpc_port, tls, pki)
            assert jwt.decode(token, options={"verify_signature": False})["iss"] == document["issuer"]

    asyncio.run(scenario())


def test_tls_files_that_do_not_load_are_config_errors(tls: Tls, tmp_path: Path) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    mismatched = tmp_path / "other.key"
    mismatched.write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = {
        mismatched: "TLS_FILES_INVALID",
        encrypted: "TLS_FILES_INVALID",
        tmp_path / "absent": "TLS_FILES_UNREADABLE",
    }
    for key, code in cases.items():
        with pytest.raises(ConfigError) as caught:
            tls_context(Settings(tls_cert=tls.cert, tls_key=key))
        assert caught.value.code == code, key
    assert tls_context(Settings(tls_cert=tls.cert, tls_key=tls.key, http_plaintext=True)) is None
    assert tls_context(Settings()) is None


def closed(sock: socket.socket) -> bool:
    """The peer closed `sock` (end of stream or a reset) within its timeout, having sent nothing."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


@contextlib.contextmanager
def polled(app: HttpApp, context: ssl.SSLContext) -> Iterator[PolledHttpServer]:
    """`PolledHttpServer` on its own selector loop in a thread (as the `--workers` supervisor runs it)."""
    server = PolledHttpServer("127.0.0.1:0", app, timeout=1.0, tls=context)
    selector = selectors.DefaultSelector()
    server.start(selector)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.05):
                key.data()
            server.expire()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        server.stop()
        selector.close()


def test_the_threadless_server_speaks_https_and_no_client_holds_it(tls: Tls) -> None:
    context = tls_context(Settings(tls_cert=tls.cert, tls_key=tls.key))
    assert context is not None
    app = HttpApp.from_settings(Settings(issuer="https://127.0.0.1"), Metrics(), lambda: {"keys": []}, lambda: True)
    with polled(app, context) as server:
        base = f"https://127.0.0.1:{server.port}"
        silent = socket.create_connection(("127.0.0.1", server.port))  # says nothing: expired after 1 s
        garbage = socket.create_connection(("127.0.0.1", server.port))
        garbage.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")  # plaintext to the TLS port: closed
        garbage.settimeout(5)
        assert closed(garbage)
        for _ in range(3):  # meanwhile every request is answered
            status, _, body = fetch(base + "/.well-known/openid-configuration", tls.context())
            assert status == 200 and json.loads(body)["issuer"] == "https://127.0.0.1"
            status, _, body = fetch(base + "/.well-known/jwks.json", tls.context())
            assert status == 200 and json.loads(body) == {"keys": []}
        silent.settimeout(5)
        started = time.monotonic()
        assert closed(silent)  # by the deadline, not by us
        assert time.monotonic() - started < 4
        silent.close()
        garbage.close()
