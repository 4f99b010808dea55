"""The real gRPC server on port 0 over real components (SQLite / PostgreSQL), driven by the generated client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.logging_setup import RequestIdFilter
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import reference_values_pb2_grpc as rv_grpc
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

TOKEN = "admin-secret-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.fixture
def components(db: Database, database_url: str, pki: FakeAwsPki) -> Iterator[Components]:
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        admin_token_sha256=(hashlib.sha256(TOKEN.encode()).hexdigest(),),
        grace_seconds=0.5,
        allow_plaintext_admin=True,
        drain_seconds=0,
    )  # bearer tokens on loopback
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built
    built.close()


@dataclasses.dataclass
class Running:
    server: VerifierServer
    channel: grpc.aio.Channel
    http: str
    port: int

    @property
    def verifier(self) -> Any:
        return pb_grpc.VerifierStub(self.channel)

    @property
    def refs(self) -> Any:
        return rv_grpc.ReferenceValuesStub(self.channel)

    async def get(self, path: str) -> tuple[int, bytes]:
        def fetch() -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(self.http + path, timeout=5) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as error:
                return error.code, error.read()

        return await asyncio.to_thread(fetch)


@contextlib.asynccontextmanager
async def running(components: Components, **overrides: Any) -> AsyncIterator[Running]:
    if overrides:
        components = dataclasses.replace(components, settings=dataclasses.replace(components.settings, **overrides))
    server = VerifierServer(components)
    port, http_port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Running(server, channel, f"http://127.0.0.1:{http_port}", port)
    finally:
        await channel.close()
        await server.stop(0)


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None and status.code == error.code().value[0]
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.domain == "tee-verifier"
    return info


def verify_token(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    return dict(jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"]).claims)  # type: ignore[arg-type]


def test_challenge_appraise_replay_and_signing_keys(components: Components, pki: FakeAwsPki) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            challenge = await r.verifier.CreateChallenge(pb.CreateChallengeRequest())
            assert len(challenge.nonce) == 32
            assert challenge.expires_at.ToDatetime(tzinfo=dt.UTC) == pki.now + components.settings.challenge_ttl
            for index in (0, 1, 2):
                ref = await r.refs.Add(
                    pb.AddReferenceValueRequest(
                        kind=f"nitro.pcr{index}", value=FakeAwsPki.default_pcrs()[index].hex(), label="image v1"
                    ),
                    metadata=ADMIN,
                )
                assert ref.state == "active" and ref.id
            request = pb.AppraiseRequest(
                kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=challenge.nonce), nonce=challenge.nonce
            )
            call = r.verifier.Appraise(request, metadata=(("x-request-id", "req-123"),))
            response = await call
            assert dict(await call.trailing_metadata()).get("x-request-id") == "req-123"
            assert response.status == pb.STATUS_AFFIRMING, [f.code for f in response.findings]
            assert response.tee == "nitro" and response.policy_id == "default" and response.appraisal_id
            assert dict(response.trust_vector)["instance-identity"] == 2
            assert response.claims["pcrs"]["0"] == FakeAwsPki.default_pcrs()[0].hex()
            assert response.claims["nonce"] == challenge.nonce.hex()
            keys = json.loads((await r.verifier.GetSigningKeys(pb.GetSigningKeysRequest())).jwks_json)
            status, body = await r.get("/.well-known/jwks.json")
            assert status == 200 and json.loads(body) == keys
            assert verify_token(response.token, keys)["ear_status"] == "affirming"
            assert verify_token(response.token, json.loads(body))["submods"]["nitro"]["ear_status"] == "affirming"

            replay = await r.verifier.Appraise(request)  # gRPC OK: a signed "no"
            assert replay.status == pb.STATUS_CONTRAINDICATED
            assert [f.code for f in replay.findings] == ["CHALLENGE_REPLAYED"]
            assert replay.findings[0].tier == pb.STATUS_CONTRAINDICATED
            assert verify_token(replay.token, keys)["ear_status"] == "contraindicated"

            listed = await r.refs.List(pb.ListReferenceValuesRequest(kind="nitro.pcr0"), metadata=ADMIN)
            (pcr0,) = listed.reference_values
            revoked = await r.refs.Revoke(
                pb.RevokeReferenceValueRequest(id=pcr0.id, reason="withdrawn"), metadata=ADMIN
            )
            assert revoked.state == "revoked" and revoked.revoke_reason == "withdrawn"
            assert revoked.HasField("revoked_at")
            assert not (
                await r.refs.List(pb.ListReferenceValuesRequest(kind="nitro.pcr0"), metadata=ADMIN)
            ).reference_values
            everything = await r.refs.List(pb.ListReferenceValuesRequest(include_inactive=True), metadata=ADMIN)
            assert len(everything.reference_values) == 3

    asyncio.run(scenario())


def test_health_reflection_metrics_and_healthz(components: Components) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            health = health_pb2_grpc.HealthStub(r.channel)
            for name in ("", "verifier.v1.Verifier", "verifier.v1.ReferenceValues"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            reflection = reflection_pb2_grpc.ServerReflectionStub(r.channel)
            services: set[str] = set()
            async for message in reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            ):
                services |= {s.name for s in message.list_services_response.service}
            assert {
                "verifier.v1.Verifier",
                "verifier.v1.ReferenceValues",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            } <= services
            await r.verifier.CreateChallenge(pb.CreateChallengeRequest(nonce_size=16))
            with pytest.raises(grpc.aio.AioRpcError):
                await r.verifier.CreateChallenge(pb.CreateChallengeRequest(nonce_size=1000))
            challenge = 'grpc_method="CreateChallenge",grpc_service="verifier.v1.Verifier",grpc_type="unary"'
            refused = f'grpc_server_handled_total{{grpc_code="InvalidArgument",{challenge}}} 1.0'
            for _ in range(100):  # a refused call is counted as its status goes out: the client may see it first
                status, body = await r.get("/metrics")
                text = body.decode()
                if refused in text:
                    break
                await asyncio.sleep(0.02)
            assert status == 200
            assert f'grpc_server_handled_total{{grpc_code="OK",{challenge}}} 1.0' in text
            assert f'grpc_server_handled_total{{grpc_code="InvalidArgument",{challenge}}} 1.0' in text
            assert f"grpc_server_handling_seconds_count{{{challenge}}} 2.0" in text
            assert 'grpc_service="grpc.health.v1.Health"' not in text  # health checks are not traffic
            assert (await r.get("/healthz"))[0] == 200
            assert (await r.get("/nope"))[0] == 404

    asyncio.run(scenario())


def test_malformed_requests_are_invalid_argument_with_error_info(components: Components) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            cases = [
                (pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO), "EVIDENCE_EMPTY"),
                (pb.AppraiseRequest(evidence=b"x"), "EVIDENCE_KIND_UNSPECIFIED"),
                (pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x", policy="lenient"), "POLICY_UNKNOWN"),
            ]
            for request, reason in cases:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await r.verifier.Appraise(request, metadata=(("x-request-id", "bad-1"),))
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                info = error_info(caught.value)
                assert info.reason == reason
                assert info.metadata["request_id"] == "bad-1"

    asyncio.run(scenario())


def test_admin_calls_need_a_valid_bearer_token(components: Components, caplog: pytest.LogCaptureFixture) -> None:
    add = pb.AddReferenceValueRequest(kind="nitro.pcr0", value="00" * 48, label="x")

    async def refused(r: Running, metadata: tuple[tuple[str, str], ...], reason: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await r.refs.Add(add, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(caught.value).reason == reason

    async def scenario() -> None:
        async with running(components) as r:
            await refused(r, (), "ADMIN_AUTH_REQUIRED")
            await refused(r, (("authorization", "Bearer wrong-token"),), "ADMIN_TOKEN_INVALID")
            await refused(r, (("authorization", TOKEN),), "ADMIN_AUTH_REQUIRED")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.refs.Revoke(pb.RevokeReferenceValueRequest(id="nope", reason="x"), metadata=ADMIN)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # the message quotes the id: bounded in bytes
                await r.refs.Revoke(pb.RevokeReferenceValueRequest(id="\U0001f600" * 2000, reason="x"), metadata=ADMIN)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND, caught.value.details()
            assert len((caught.value.details() or "").encode()) <= 512 + len(" ... (truncated)")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.refs.Add(pb.AddReferenceValueRequest(kind="nitro.pcr0", value="zz"), metadata=ADMIN)
            assert error_info(caught.value).reason == "REFERENCE_VALUE_NOT_HEX"
        async with running(components, admin_token_sha256=()) as r:  # fail closed
            await refused(r, ADMIN, "ADMIN_TOKEN_INVALID")

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert "refused" in caplog.text
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


def test_unexpected_errors_are_internal_without_detail(
    components: Components, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        logging.getLogger("verifier.test").warning("inside the service")
        raise RuntimeError("secret detail")

    monkeypatch.setattr(components.service, "appraise", explode)

    async def scenario() -> None:
        async with running(components) as r:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.verifier.Appraise(
                    pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x"),
                    metadata=(("x-request-id", "rid-42"),),
                )
            assert caught.value.code() == grpc.StatusCode.INTERNAL
            assert "secret detail" not in (caught.value.details() or "")
            assert caught.value.details() == "internal error (request id rid-42)"
            assert error_info(caught.value).reason == "INTERNAL"
            assert "secret detail" not in str(caught.value.trailing_metadata())
            assert dict(caught.value.trailing_metadata() or ()).get("x-request-id") == "rid-42"  # echoed on errors

    request_ids = RequestIdFilter()
    caplog.handler.addFilter(request_ids)
    try:
        with caplog.at_level(logging.INFO):
            asyncio.run(scenario())
    finally:
        caplog.handler.removeFilter(request_ids)
    assert "secret detail" in caplog.text  # the traceback stays in the server log
    inside = [rec for rec in caplog.records if rec.getMessage() == "inside the service"]
    assert inside and inside[0].request_id == "rid-42"  # type: ignore[attr-defined]


def _self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "tls.crt").write_bytes(pem)
    (tmp_path / "tls.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "tls.crt", tmp_path / "tls.key", pem


def test_tls(components: Components, tmp_path: Path) -> None:
    cert, key, pem = _self_signed(tmp_path)

    async def scenario() -> None:
        async with running(components, tls_cert=cert, tls_key=key) as r:
            credentials = grpc.ssl_channel_credentials(root_certificates=pem)
            async with grpc.aio.secure_channel(f"localhost:{r.port}", credentials) as channel:
                challenge = await pb_grpc.VerifierStub(channel).CreateChallenge(pb.CreateChallengeRequest())
                assert len(challenge.nonce) == 32
            with pytest.raises(grpc.aio.AioRpcError):  # r.channel is plaintext
                await r.verifier.CreateChallenge(pb.CreateChallengeRequest(), timeout=2)

    asyncio.run(scenario())


def test_graceful_stop_flips_health_to_not_serving(components: Components) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            watch = health_pb2_grpc.HealthStub(r.channel).Watch(health_pb2.HealthCheckRequest(service=""))
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            stopping = r.server.request_stop(0.5)
            second = await watch.read()
            assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not r.server.serving
            assert (await r.get("/healthz"))[0] == 503  # HTTP stays up while in-flight RPCs drain
            await stopping
            watch.cancel()

    asyncio.run(scenario())


SERVE_SCRIPT = """
import asyncio, sys
from verifier.bootstrap import build
from verifier.logging_setup import install_logging
from verifier.settings import Settings
from verifier.transport.grpc import serve
install_logging("INFO")
components = build(Settings(database_url=sys.argv[1], development=True, listen="127.0.0.1:0",
                            http_listen="127.0.0.1:0", grace_seconds=0.2, drain_seconds=0))
asyncio.run(serve(components))
print("exited cleanly", file=sys.stderr)
"""


def test_serve_shuts_down_gracefully_on_sigterm(sqlite_db: Database) -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", SERVE_SCRIPT, sqlite_db.url], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    lines: list[str] = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "SIGTERM or SIGINT stops gracefully" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    finally:
        process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "received SIGTERM: graceful shutdown" in output
    assert "[request_id=-]" in output and "exited cleanly" in output
