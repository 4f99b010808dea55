"""AppraiseRequest.view over gRPC (a real server on port 0, SQLite and PostgreSQL): RESPONSE_VIEW_TOKEN answers the
same appraisal without the extracted claims, the token still carrying them; an unknown view is INVALID_ARGUMENT
RESPONSE_VIEW_UNKNOWN before anything is appraised, so the challenge it named is still live."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration import test_grpc_server as base
from tests.integration.test_grpc_server import ADMIN, Running, error_info, running, verify_token
from verifier.bootstrap import Components
from verifier.v1 import verifier_pb2 as pb

pki = base.pki
components = base.components
PCRS = FakeAwsPki.default_pcrs()


async def _request(r: Running, pki: FakeAwsPki, view: int) -> pb.AppraiseRequest:
    nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
    return pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=nonce), nonce=nonce, view=view)


def test_the_token_view_leaves_out_the_claims_and_nothing_else(components: Components, pki: FakeAwsPki) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            for index in (0, 1, 2):
                value = PCRS[index].hex()
                request = pb.AddReferenceValueRequest(kind=f"nitro.pcr{index}", value=value, label="image")
                await r.refs.Add(request, metadata=ADMIN)
            keys = json.loads((await r.verifier.GetSigningKeys(pb.GetSigningKeysRequest())).jwks_json)
            answers = {}
            for view in (pb.RESPONSE_VIEW_UNSPECIFIED, pb.RESPONSE_VIEW_FULL, pb.RESPONSE_VIEW_TOKEN):
                answers[view] = await r.verifier.Appraise(await _request(r, pki, view), timeout=20)
            full, token_only = answers[pb.RESPONSE_VIEW_FULL], answers[pb.RESPONSE_VIEW_TOKEN]
            for answer in answers.values():
                assert answer.status == pb.STATUS_AFFIRMING, [f.code for f in answer.findings]
                assert dict(answer.trust_vector) == dict(full.trust_vector)
                assert verify_token(answer.token, keys)["ear_status"] == "affirming"
            assert answers[pb.RESPONSE_VIEW_UNSPECIFIED].HasField("claims") and full.claims_json != ""
            assert not token_only.HasField("claims") and token_only.claims_json == ""
            assert token_only.appraisal_id and token_only.tee == "nitro" and token_only.policy_id == full.policy_id
            assert token_only.HasField("appraised_at")
            submod = verify_token(token_only.token, keys)["submods"]["nitro"]
            assert submod["ear_attester_claims"]["pcrs"]["0"] == PCRS[0].hex()  # the token still carries them
            assert len(token_only.SerializeToString()) < len(full.SerializeToString()) - len(full.claims_json)

    asyncio.run(scenario())


def test_an_unknown_view_is_refused_before_the_challenge_is_spent(components: Components, pki: FakeAwsPki) -> None:
    async def scenario() -> None:
        async with running(components) as r:
            request = await _request(r, pki, 7)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await r.verifier.Appraise(request, timeout=20)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(caught.value).reason == "RESPONSE_VIEW_UNKNOWN"
            request.view = pb.RESPONSE_VIEW_TOKEN
            answer = await r.verifier.Appraise(request, timeout=20)
            assert "CHALLENGE_REPLAYED" not in [f.code for f in answer.findings]  # the nonce was still live

    asyncio.run(scenario())
