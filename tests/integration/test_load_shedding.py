"""Issue 11: past `max_concurrent_rpcs` in-flight calls the server refuses at once (RESOURCE_EXHAUSTED) instead of
queueing without bound (150 queued 4 MiB requests reached 2 GiB RSS)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator

import grpc
import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.integration.test_grpc_server import running
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product
from verifier.v1 import verifier_pb2 as pb


class SilentVendor:
    """A collateral source that does not answer until released (a vendor that hangs)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.entered.set()
        self.release.wait(timeout=10)
        raise CollateralUnavailableError("COLLATERAL_TIMEOUT", key.kind)


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
        max_concurrent_rpcs=1,
        check_crl=False,
    )
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built
    built.close()


def test_calls_past_the_limit_are_refused_at_once(components: Components) -> None:
    pki = FakeAmdPki(Product.GENOA)
    vendor = SilentVendor()
    components.service.collateral_source = vendor

    async def scenario() -> None:
        async with running(components) as r:
            stuck = asyncio.ensure_future(
                r.verifier.Appraise(pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=pki.report()))
            )  # needs the VCEK: waits on the vendor
            assert await asyncio.to_thread(vendor.entered.wait, 10)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await r.verifier.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            vendor.release.set()
            with pytest.raises(grpc.aio.AioRpcError) as unavailable:
                await stuck
            assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE
            assert (await r.verifier.GetSigningKeys(pb.GetSigningKeysRequest())).jwks_json  # capacity is back

    asyncio.run(scenario())
