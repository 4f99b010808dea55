"""Issue 11 item 1: work of one kind cannot take the threads of another. Appraisals stuck on a silent vendor fill
the appraise lane only: CreateChallenge and GetSigningKeys keep answering at once, and appraisals past the lane's
queue are refused RESOURCE_EXHAUSTED SERVER_BUSY with a RetryInfo instead of queueing (before: one shared pool of
min(32, cores + 4) threads, so six stuck appraisals froze every call)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.fakes.amd_pki import FakeAmdPki
from tests.integration.test_grpc_server import running
from tests.integration.test_load_shedding import SilentVendor
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product
from verifier.v1 import verifier_pb2 as pb

STUCK = 8  # more than the old shared pool's threads on a 2-core machine (6)


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[Components]:
    pki = FakeAmdPki(Product.GENOA)
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        grace_seconds=0.5,
        drain_seconds=0,
        check_crl=False,
        appraise_threads=2,
        appraise_queue=STUCK - 2,
    )
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built
    built.close()


def _retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


def test_stuck_appraisals_leave_challenges_and_keys_alone(components: Components) -> None:
    pki = FakeAmdPki(Product.GENOA)
    vendor = SilentVendor()
    components.service.collateral_source = vendor
    request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=pki.report())

    async def scenario() -> None:
        async with running(components) as r:
            stuck = [asyncio.ensure_future(r.verifier.Appraise(request, timeout=30)) for _ in range(STUCK)]
            assert await asyncio.to_thread(vendor.entered.wait, 10)
            await asyncio.sleep(0.3)  # every stuck call admitted: two waiting on the vendor, the rest queued
            try:
                challenge = await r.verifier.CreateChallenge(pb.CreateChallengeRequest(), timeout=3)
                assert len(challenge.nonce) >= 32
                keys = await r.verifier.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=3)
                assert keys.jwks_json
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await r.verifier.Appraise(request, timeout=3)
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert _reason(refused.value) == "SERVER_BUSY"
                delay = _retry_delay(refused.value)
                assert delay is not None and 0 < delay <= 5
            finally:
                vendor.release.set()
            outcomes = await asyncio.gather(*stuck, return_exceptions=True)
            codes = {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)}
            assert codes == {grpc.StatusCode.UNAVAILABLE}  # the vendor never answered: incomplete, retryable
            refused_again = await asyncio.gather(r.verifier.Appraise(request, timeout=10), return_exceptions=True)
            assert isinstance(refused_again[0], grpc.aio.AioRpcError)
            assert refused_again[0].code() == grpc.StatusCode.UNAVAILABLE  # the lane has room again

    asyncio.run(scenario())


def _reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return ""
