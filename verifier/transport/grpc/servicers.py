"""Thin grpc.aio servicers: convert, call the synchronous service in a worker thread of its lane (`lanes`),
convert back.

Errors are raised as `VerifierError`s and mapped to gRPC status by `interceptors.ErrorInterceptor`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc

from ...auth import current_actor
from ...bootstrap import Components
from ...errors import RequestError
from ...logging_setup import current_request_id
from ...metrics import Metrics
from ...reference_values.kinds import normalize_value
from ...reference_values.model import STATES, State
from ...v1 import reference_values_pb2_grpc as rv_grpc
from ...v1 import verifier_pb2 as pb
from ...v1 import verifier_pb2_grpc as pb_grpc
from . import convert
from .lanes import Runner

Context = grpc.aio.ServicerContext[Any, Any]
MAX_REASON = 500


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
        if self._metrics is not None:
            self._metrics.observe_appraisal(result.appraisal.tee, result.appraisal.status.value)
        return convert.appraise_response(result)

    async def GetSigningKeys(self, request: pb.GetSigningKeysRequest, context: Context) -> pb.GetSigningKeysResponse:  # noqa: N802
        jwks = self._service.jwks()  # in memory, microseconds: answered on the event loop, never queued
        return pb.GetSigningKeysResponse(jwks_json=json.dumps(jwks, sort_keys=True))


class ReferenceValuesServicer(rv_grpc.ReferenceValuesServicer):
    """verifier.v1.ReferenceValues (admin; `interceptors.AdminAuthInterceptor` guards it and sets the principal
    whose actor string the store records as created_by / revoked_by and in the audit log)."""

    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._store = components.references
        self._clock = components.service.clock
        self._run = run

    async def Add(self, request: pb.AddReferenceValueRequest, context: Context) -> pb.ReferenceValue:  # noqa: N802
        """A revoked value (kind and value, any label) is refused with REFERENCE_VALUE_REVOKED (INVALID_ARGUMENT) by
        the store, the rule every add path shares; re-approval is CLI-only for now (`verifier refs reapprove`)."""
        value = normalize_value(request.kind, request.value)
        now = self._clock.now()
        expires_at = convert.from_timestamp(request.expires_at) if request.HasField("expires_at") else None
        valid_from = convert.from_timestamp(request.valid_from) if request.HasField("valid_from") else None
        if expires_at is not None and expires_at <= now:
            raise RequestError("REFERENCE_EXPIRES_IN_PAST", "expires_at must be in the future")
        ref = await self._run(
            self._store.add,
            request.kind,
            value,
            request.label,
            now=now,
            expires_at=expires_at,
            valid_from=valid_from,
            version=request.version or None,
            actor=current_actor(),
        )
        return convert.reference_value(ref, at=now)

    async def List(  # noqa: N802
        self, request: pb.ListReferenceValuesRequest, context: Context
    ) -> pb.ListReferenceValuesResponse:
        state: State | None = None
        if request.state:
            if request.state not in STATES:
                raise RequestError("REFERENCE_STATE_UNKNOWN", f"state must be one of {', '.join(STATES)}")
            state = request.state
        now = self._clock.now()
        refs = await self._run(
            self._store.list,
            kind=request.kind or None,
            label=request.label or None,
            state=state,
            include_inactive=request.include_inactive,
            at=now,
        )
        return pb.ListReferenceValuesResponse(reference_values=[convert.reference_value(r, at=now) for r in refs])

    async def Revoke(self, request: pb.RevokeReferenceValueRequest, context: Context) -> pb.ReferenceValue:  # noqa: N802
        """Revokes the row and with it its value: every live row with the same kind and value is revoked too (each
        audited); the response is the row named by `id`."""
        if not request.id:
            raise RequestError("REFERENCE_ID_REQUIRED", "the id of the reference value is required")
        reason = request.reason.strip()
        if not reason:
            raise RequestError("REVOKE_REASON_REQUIRED", "a revocation needs a reason")
        if len(reason) > MAX_REASON:
            raise RequestError("REVOKE_REASON_TOO_LONG", f"the reason has more than {MAX_REASON} characters")
        now = self._clock.now()
        ref = await self._run(self._store.revoke, request.id, reason, now=now, actor=current_actor())
        return convert.reference_value(ref, at=now)
