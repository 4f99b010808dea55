"""Unauthenticated gRPC callers sending text PostgreSQL cannot store (issue 9 item 8): a NUL in the policy name is
INVALID_ARGUMENT, an over-long x-request-id is replaced, a NUL in evidence text (Nitro module_id) is a signed result;
none of them is INTERNAL. Runs on SQLite and, with VERIFIER_TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_grpc_server import components, error_info, pki, running  # noqa: F401 - fixtures
from verifier.bootstrap import Components
from verifier.v1 import verifier_pb2 as pb


def test_hostile_text_never_becomes_internal(components: Components, pki: FakeAwsPki) -> None:  # noqa: F811
    async def scenario() -> None:
        async with running(components) as r:
            challenge = await r.verifier.CreateChallenge(pb.CreateChallengeRequest())
            evidence = pki.mint(nonce=challenge.nonce)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await r.verifier.Appraise(
                    pb.AppraiseRequest(
                        kind=pb.EVIDENCE_KIND_NITRO, evidence=evidence, nonce=challenge.nonce, policy="strict\x00"
                    )
                )
            assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(info.value).reason == "POLICY_NAME_INVALID"

            long_id = "r" * 100
            call = r.verifier.Appraise(
                pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=evidence, nonce=challenge.nonce),
                metadata=(("x-request-id", long_id),),
            )
            response = await call
            echoed = dict(await call.trailing_metadata()).get("x-request-id")
            assert response.appraisal_id and echoed and echoed != long_id and len(str(echoed)) <= 64

            challenge = await r.verifier.CreateChallenge(pb.CreateChallengeRequest())
            pcrs = {k: v for k, v in FakeAwsPki.default_pcrs().items() if k}  # no PCR0: module_id describes it
            hostile = pki.mint(nonce=challenge.nonce, module_id="i-\x00evil", pcrs=pcrs)
            response = await r.verifier.Appraise(
                pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=hostile, nonce=challenge.nonce)
            )
            assert response.status == pb.STATUS_CONTRAINDICATED and response.appraisal_id
            assert response.claims["module_id"] == "i-\x00evil"  # the response carries the evidence as it was

    asyncio.run(scenario())
