"""Thin grpc.aio servicers: convert, call the synchronous service, convert back.

Appraise first evaluates on the event loop (`VerifierService.prepare_inline`: no I/O, `verifier.blocking`) and hands
only the unit of work to the group commit's thread (`record_inline`), awaiting its commit without holding a thread:
a hop to a worker thread and back per call costs more CPU than the appraisal's database work. A batch's outcomes
come back through one `LoopMailbox` wake-up. When the evaluation
would block (a collateral load, a database read), when the snapshot went stale before the commit, or when `inline`
appraisals are already in flight, the whole appraisal runs in a worker thread of its lane (`lanes`), as every
other blocking call does.

Errors are raised as `VerifierError`s and mapped to gRPC status by `interceptors.ErrorInterceptor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import grpc

from ...bootstrap import Components
from ...logging_setup import current_request_id
from ...metrics import Metrics
from ...recording import StaleReadError
from ...requests import AppraisalRequest, AppraisalResult, Recorded
from ...v1 import verifier_pb2 as pb
from ...v1 import verifier_pb2_grpc as pb_grpc
from . import convert
from .lanes import Runner
from .loop_mailbox import LoopMailbox
from .refs_admin_servicer import ReferenceValuesServicer as ReferenceValuesServicer  # served by server.py

Context = grpc.aio.ServicerContext[Any, Any]


class VerifierServicer(pb_grpc.VerifierServicer):
    """verifier.v1.Verifier. A nonce in Appraise must be a live challenge of this verifier (single use). `inline`:
    how many appraisals may await their commit on the event loop at once (0: every one runs in the lane)."""

    def __init__(
        self,
        components: Components,
        metrics: Metrics | None = None,
        *,
        appraise: Runner = asyncio.to_thread,
        challenge: Runner = asyncio.to_thread,
        inline: int = 0,
    ) -> None:
        self._service = components.service
        self._metrics = metrics
        self._appraise = appraise
        self._challenge = challenge
        self._inline_limit = inline
        self._inline = 0  # appraisals awaiting their commit on the event loop now
        self._mailbox: LoopMailbox | None = None

    async def CreateChallenge(self, request: pb.CreateChallengeRequest, context: Context) -> pb.CreateChallengeResponse:  # noqa: N802
        challenge = await self._challenge(self._service.create_challenge, request.nonce_size)
        return pb.CreateChallengeResponse(nonce=challenge.nonce, expires_at=convert.timestamp(challenge.expires_at))

    async def Appraise(self, request: pb.AppraiseRequest, context: Context) -> pb.AppraiseResponse:  # noqa: N802
        domain = convert.appraisal_request(request, request_id=current_request_id())
        claims = convert.with_claims(request)
        result = await self._appraise_inline(domain) if self._inline < self._inline_limit else None
        path = "inline" if result is not None else "lane"
        if result is None:
            result = await self._appraise(self._service.appraise, domain, require_challenge=True)
        if self._metrics is not None:
            self._metrics.appraise_path(path)
        return convert.appraise_response(result, claims=claims)

    async def _appraise_inline(self, domain: AppraisalRequest) -> AppraisalResult | None:
        """The appraisal evaluated here and recorded by the group commit, or None when the lane must do it (module
        docstring). Raises what `VerifierService.appraise` raises."""
        prepared = self._service.prepare_inline(domain, require_challenge=True)
        if prepared is None:
            return None
        mailbox = self._mailbox_here()
        committed: asyncio.Future[Recorded] = mailbox.loop.create_future()

        def done(recorded: Recorded | None, error: BaseException | None) -> None:  # in the committing thread
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits the answer any more
                mailbox.post(_settle, committed, recorded, error)

        self._inline += 1
        try:
            self._service.record_inline(prepared, done)
            recorded = await committed
        except StaleReadError:
            return None  # the reference set moved: evaluated again on a fresh read, in the lane
        finally:
            self._inline -= 1
        return self._service.finish(prepared, recorded)

    def _mailbox_here(self) -> LoopMailbox:
        """The mailbox of the running loop (one per servicer and loop: a batch's outcomes wake the loop once)."""
        loop = asyncio.get_running_loop()
        if self._mailbox is None or self._mailbox.loop is not loop:
            self._mailbox = LoopMailbox(loop)
        return self._mailbox

    async def GetSigningKeys(self, request: pb.GetSigningKeysRequest, context: Context) -> pb.GetSigningKeysResponse:  # noqa: N802
        jwks = self._service.jwks()  # in memory, microseconds: answered on the event loop, never queued
        return pb.GetSigningKeysResponse(jwks_json=json.dumps(jwks, sort_keys=True))


def _settle(future: asyncio.Future[Recorded], recorded: Recorded | None, error: BaseException | None) -> None:
    """Hand a unit's outcome to the awaiting call (on the event loop); nothing when that call was cancelled."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert recorded is not None
        future.set_result(recorded)
