"""Thin grpc.aio servicers: convert, call the synchronous service in a worker thread of its lane (`lanes`),
convert back.

Errors are raised as `VerifierError`s and mapped to gRPC status by `interceptors.ErrorInterceptor`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc

from ...bootstrap import Components
from ...logging_setup import current_request_id
from ...metrics import Metrics
from ...v1 import verifier_pb2 as pb
from ...v1 import verifier_pb2_grpc as pb_grpc
from . import convert
from .lanes import Runner
from .refs_admin_servicer import ReferenceValuesServicer as ReferenceValuesServicer  # served by server.py

Context = grpc.aio.ServicerContext[Any, Any]


class VerifierServicer(pb_grpc.VerifierServicer):
    """verifier.v1.Verifier. A nonce in Appraise must be a live challenge of this verifier (single use)."""

    def __init__(
        self,
        components: Components,
        metrics: Metrics | None = None,
        *,
        appraise: Runner = asyncio.to_thread,
        challenge: Runner = asyncio.to_thread,
    ) -> None:
        self._service = components.service
        self._metrics = metrics
        self._appraise = appraise
        self._challenge = challenge

    async def CreateChallenge(self, request: pb.CreateChallengeRequest, context: Context) -> pb.CreateChallengeResponse:  # noqa: N802
        challenge = await self._challenge(self._service.create_challenge, request.nonce_size)
        return pb.CreateChallengeResponse(nonce=challenge.nonce, expires_at=convert.timestamp(challenge.expires_at))

    async def Appraise(self, request: pb.AppraiseRequest, context: Context) -> pb.AppraiseResponse:  # noqa: N802
        domain = convert.appraisal_request(request, request_id=current_request_id())
        result = await self._appraise(self._service.appraise, domain, require_challenge=True)
        return convert.appraise_response(result)

    async def GetSigningKeys(self, request: pb.GetSigningKeysRequest, context: Context) -> pb.GetSigningKeysResponse:  # noqa: N802
        jwks = self._service.jwks()  # in memory, microseconds: answered on the event loop, never queued
        return pb.GetSigningKeysResponse(jwks_json=json.dumps(jwks, sort_keys=True))
