"""Issue 9 item 1: the server restricts which policies a client may select, through a real gRPC server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_grpc_server import error_info, running
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.errors import ConfigError
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.v1 import verifier_pb2 as pb


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[Components]:
    pki = FakeAwsPki()
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        grace_seconds=0.5,
        default_policy="nonce-required",
        selectable_policies=("nonce-required",),
    )
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built
    built.close()


def test_a_request_cannot_select_a_policy_outside_the_allowed_set(components: Components) -> None:
    pki = FakeAwsPki()

    async def scenario() -> None:
        async with running(components) as r:
            request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(), policy="default")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await r.verifier.Appraise(request)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_info(refused.value).reason == "POLICY_NOT_ALLOWED"
            unnamed = await r.verifier.Appraise(pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint()))
            assert unnamed.policy_id == "nonce-required"  # the server's default, not the built-in "default"
            assert "NONCE_MISSING" in [f.code for f in unnamed.findings]

    asyncio.run(scenario())


def test_unknown_default_or_selectable_policy_is_refused_at_start(database_url: str, db: Database) -> None:
    for settings in (
        Settings(database_url=database_url, development=True, default_policy="nope"),
        Settings(database_url=database_url, development=True, selectable_policies=("default", "x")),
    ):
        with pytest.raises(ConfigError) as error:
            build(settings)
        assert error.value.code == "POLICY_UNKNOWN"
