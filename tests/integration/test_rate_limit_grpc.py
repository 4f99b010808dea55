"""Rate limits over a real gRPC server on port 0 (issue 11 item 9): a loopback client over its CreateChallenge or
Appraise limit gets RESOURCE_EXHAUSTED RATE_LIMITED with a RetryInfo; GetSigningKeys and health are never limited.
(Two distinct clients are shown in tests/unit/transport/test_rate_limit.py: a second peer address is hard on
loopback.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from verifier.bootstrap import Components, build
from verifier.settings import Rate, Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

SLOW = Rate(0.01, 3)  # three calls, then one token every 100 s: no refill during the test


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[Components]:
    settings = Settings(
        database_url=database_url,
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="off",
        grace_seconds=0.5,
        drain_seconds=0,
        rate_challenge_per_client=SLOW,
        rate_appraise_per_client=Rate(0.01, 1),
        rate_challenge_global=Rate(0, 0),
        rate_appraise_global=Rate(0, 0),
    )
    built = build(settings)
    yield built
    built.close()


def rate_limited(error: grpc.aio.AioRpcError) -> float:
    """The retry delay (seconds) of a RATE_LIMITED refusal; fails the test on anything else."""
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.reason == "RATE_LIMITED" and info.domain == "tee-verifier"
    assert status.details[1].Unpack(retry)
    return float(retry.retry_delay.ToNanoseconds()) / 1e9


def test_a_client_over_its_limit_is_refused_with_retry_info(components: Components) -> None:
    async def scenario() -> None:
        server = VerifierServer(components)
        port, _ = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        try:
            verifier = pb_grpc.VerifierStub(channel)  # type: ignore[no-untyped-call]
            for _ in range(SLOW.burst):
                await verifier.CreateChallenge(pb.CreateChallengeRequest(), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await verifier.CreateChallenge(pb.CreateChallengeRequest(), timeout=10)
            assert 1.0 < rate_limited(refused.value) <= 100.0

            # the one Appraise token goes to bogus evidence (answered: a signed "no")
            await verifier.Appraise(pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x"), timeout=10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await verifier.Appraise(pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"x"), timeout=10)
            assert rate_limited(refused.value) > 1.0

            health = health_pb2_grpc.HealthStub(channel)
            for _ in range(20):  # never limited
                keys = await verifier.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=10)
                assert keys.jwks_json
                check = await health.Check(health_pb2.HealthCheckRequest(service="verifier.v1.Verifier"), timeout=10)
                assert check.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await channel.close(None)
            await server.stop(0)

    asyncio.run(scenario())
