"""verifier.client against the real gRPC server on port 0: a workload's round trip, then the relying party."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.client import (
    AsyncVerifierClient,
    ClientError,
    JwksCache,
    ResultError,
    VerifierClient,
    fetch_jwks_http,
    verify_result,
)
from verifier.client.jwks import fetch_jwks_grpc
from verifier.clock import FixedClock
from verifier.errors import ErrorKind
from verifier.results.cnf import key_to_jwk
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer

LABEL = "image v1"


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.fixture
def components(db: Database, database_url: str, pki: FakeAwsPki) -> Iterator[Components]:
    settings = Settings(
        database_url=database_url, development=True, listen="127.0.0.1:0", http_listen="127.0.0.1:0", grace_seconds=0.5
    )
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    for index in (0, 1, 2):
        built.references.add(f"nitro.pcr{index}", FakeAwsPki.default_pcrs()[index], LABEL, now=pki.now)
    yield built
    built.close()


@contextlib.asynccontextmanager
async def running(components: Components) -> AsyncIterator[tuple[str, str]]:
    server = VerifierServer(components)
    port, http_port = await server.start()
    try:
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}/.well-known/jwks.json"
    finally:
        await server.stop(0)


def workload_key() -> tuple[bytes, dict[str, object]]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = key_to_jwk(public)
    assert jwk is not None
    return spki, jwk


def relying_party(token: str, cache: JwksCache, nonce: bytes, pki: FakeAwsPki, jwk: dict[str, object]) -> None:
    result = verify_result(
        token, cache, expected_nonce=nonce, now=pki.now, issuer="tee-verifier", required_labels={LABEL}
    )
    assert (result.status, result.tee, result.policy_id) == ("affirming", "nitro", "default")
    assert result.cnf_jwk == jwk and result.nonce == nonce
    with pytest.raises(ResultError) as caught:
        verify_result(token, cache, expected_nonce=hashlib.sha256(nonce).digest(), now=pki.now)
    assert caught.value.code == "TOKEN_NONCE_MISMATCH"


def sync_flow(target: str, jwks_url: str, pki: FakeAwsPki) -> None:
    spki, jwk = workload_key()
    with VerifierClient(target, timeout=5, metadata=(("x-request-id", "sync-1"),)) as client:
        challenge = client.create_challenge()
        assert len(challenge.nonce) == 32 and challenge.expires_at > pki.now
        evidence = pki.mint(nonce=challenge.nonce, public_key=spki)
        appraisal = client.appraise("nitro", evidence, nonce=challenge.nonce, runtime_data=spki)
        assert appraisal.status == "affirming", appraisal.findings
        assert appraisal.appraisal_id and appraisal.tee == "nitro" and appraisal.findings == ()
        assert appraisal.trust_vector["executables"] == 2 and appraisal.claims["nonce"] == challenge.nonce.hex()
        http_cache = JwksCache(functools.partial(fetch_jwks_http, jwks_url))
        relying_party(appraisal.token, http_cache, challenge.nonce, pki, jwk)
        assert http_cache.fetches == 1
        assert client.signing_keys() == http_cache.keys()
        relying_party(appraisal.token, client.jwks_cache(), challenge.nonce, pki, jwk)

        replay = client.appraise("nitro", evidence, nonce=challenge.nonce, runtime_data=spki)
        assert replay.status == "contraindicated" and [f["code"] for f in replay.findings] == ["CHALLENGE_REPLAYED"]
        with pytest.raises(ResultError) as status:
            verify_result(replay.token, http_cache, expected_nonce=challenge.nonce, now=pki.now)
        assert status.value.code == "TOKEN_STATUS_INSUFFICIENT"

        with pytest.raises(ClientError) as caught:
            client.appraise("nitro", b"")
        error = caught.value
        assert (error.code, error.status, error.kind) == (
            "EVIDENCE_EMPTY",
            grpc.StatusCode.INVALID_ARGUMENT,
            ErrorKind.REQUEST,
        )
        assert error.request_id == "sync-1" and not error.retryable
        with pytest.raises(ClientError) as caught:
            client.create_challenge(size=1000)
        assert caught.value.code == "NONCE_SIZE"


async def async_flow(target: str, jwks_url: str, pki: FakeAwsPki) -> None:
    spki, jwk = workload_key()
    async with AsyncVerifierClient(target, timeout=5) as client:
        challenge = await client.create_challenge(16)
        assert len(challenge.nonce) == 16
        appraisal = await client.appraise(
            "nitro", pki.mint(nonce=challenge.nonce, public_key=spki), nonce=challenge.nonce, runtime_data=spki
        )
        assert appraisal.status == "affirming", appraisal.findings
        cache = JwksCache(functools.partial(fetch_jwks_http, jwks_url))
        await asyncio.to_thread(relying_party, appraisal.token, cache, challenge.nonce, pki, jwk)
        primed = await client.jwks_cache()
        assert primed.fetches == 0 and primed.keys() == await client.signing_keys()
        relying_party(appraisal.token, primed, challenge.nonce, pki, jwk)  # no fetch: the kid is known
        assert await asyncio.to_thread(client._fetch_blocking) == primed.keys()
        with pytest.raises(ClientError) as caught:
            await client.appraise("nitro", b"", nonce=challenge.nonce)
        assert caught.value.code == "EVIDENCE_EMPTY" and caught.value.request_id
        with pytest.raises(ValueError):
            await client.appraise("sgx", b"x")


def test_sync_and_async_clients_round_trip(components: Components, pki: FakeAwsPki) -> None:
    async def scenario() -> None:
        async with running(components) as (target, jwks_url):
            await asyncio.to_thread(sync_flow, target, jwks_url, pki)
            await async_flow(target, jwks_url, pki)

            def grpc_keys() -> dict[str, object]:
                with grpc.insecure_channel(target) as channel:
                    return fetch_jwks_grpc(channel)

            assert await asyncio.to_thread(grpc_keys) == await asyncio.to_thread(fetch_jwks_http, jwks_url)

    asyncio.run(scenario())


def test_unreachable_verifier_is_a_retryable_client_error() -> None:
    with VerifierClient("127.0.0.1:1", timeout=2) as client, pytest.raises(ClientError) as caught:
        client.create_challenge()
    assert caught.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") and caught.value.retryable
