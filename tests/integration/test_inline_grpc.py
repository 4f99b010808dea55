"""The Appraise path over gRPC with evaluation on the event loop (issue 13): appraisals that need no I/O are
evaluated inline and only their unit of work goes to the group commit's thread; challenges stay exactly-once under
concurrent calls with one nonce, a revocation through the admin API decides the very next appraisal (the stale
snapshot is caught at the commit and evaluated again in the lane), and `appraise_inline` off takes the lane for
everything with the same answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration import test_grpc_server as base
from tests.integration.test_grpc_server import ADMIN, Running, running
from verifier.bootstrap import Components
from verifier.v1 import verifier_pb2 as pb

PCRS = FakeAwsPki.default_pcrs()


# The server's fixtures: a Nitro fake PKI and a migrated app with an admin token over plaintext loopback.
pki = base.pki
components = base.components


def _count_inline(components: Components, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every appraisal recorded through `record_inline` (the event-loop path) appends its appraisal id."""
    service, seen = components.service, []
    original: Callable[..., Any] = service.record_inline

    def counted(prepared: Any, done: Any) -> None:
        seen.append(prepared.ids[1])
        original(prepared, done)

    monkeypatch.setattr(service, "record_inline", counted)
    return seen


async def _approve(r: Running) -> list[str]:
    ids = []
    for index in (0, 1, 2):
        request = pb.AddReferenceValueRequest(kind=f"nitro.pcr{index}", value=PCRS[index].hex(), label="image")
        ids.append((await r.refs.Add(request, metadata=ADMIN)).id)
    return ids


async def _appraise(r: Running, pki: FakeAwsPki, nonce: bytes | None = None) -> Any:
    if nonce is None:
        nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
    request = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=nonce), nonce=nonce)
    return await r.verifier.Appraise(request, timeout=20)


def test_concurrent_appraisals_go_inline_and_one_nonce_is_spent_once(
    components: Components, pki: FakeAwsPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = _count_inline(components, monkeypatch)

    async def scenario() -> None:
        async with running(components) as r:
            await _approve(r)
            first = await _appraise(r, pki)  # cold: the snapshot is read in the lane
            assert first.status == pb.STATUS_AFFIRMING
            answers = await asyncio.gather(*(_appraise(r, pki) for _ in range(16)))
            assert {a.status for a in answers} == {pb.STATUS_AFFIRMING}
            assert set(inline) >= {a.appraisal_id for a in answers}  # every warm one went inline
            registry = r.server.metrics.registry
            assert registry.get_sample_value("verifier_appraise_path_total", {"path": "inline"}) >= 16
            assert registry.get_sample_value("verifier_appraise_path_total", {"path": "lane"}) >= 1  # the cold one
            nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
            twice = await asyncio.gather(*(_appraise(r, pki, nonce) for _ in range(2)))
            codes = sorted([f.code for f in a.findings] for a in twice)
            assert codes == [[], ["CHALLENGE_REPLAYED"]], codes  # exactly once, whatever the batch

    asyncio.run(scenario())


def test_a_revocation_decides_the_next_inline_appraisal(
    components: Components, pki: FakeAwsPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = _count_inline(components, monkeypatch)

    async def scenario() -> None:
        async with running(components) as r:
            ids = await _approve(r)
            assert (await _appraise(r, pki)).status == pb.STATUS_AFFIRMING
            assert (await _appraise(r, pki)).status == pb.STATUS_AFFIRMING
            assert inline  # warm: evaluated on the event loop
            await r.refs.Revoke(pb.RevokeReferenceValueRequest(id=ids[0], reason="CVE"), metadata=ADMIN)
            after = await _appraise(r, pki)
            assert after.status == pb.STATUS_CONTRAINDICATED, [f.code for f in after.findings]

    asyncio.run(scenario())


def test_with_inline_off_every_appraisal_takes_the_lane(
    components: Components, pki: FakeAwsPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    inline = _count_inline(components, monkeypatch)

    async def scenario() -> None:
        async with running(components, appraise_inline=False) as r:
            await _approve(r)
            answers = await asyncio.gather(*(_appraise(r, pki) for _ in range(4)))
            assert {a.status for a in answers} == {pb.STATUS_AFFIRMING}
            assert inline == []
            registry = r.server.metrics.registry
            assert registry.get_sample_value("verifier_appraise_path_total", {"path": "inline"}) == 0
            assert registry.get_sample_value("verifier_appraise_path_total", {"path": "lane"}) == 4

    asyncio.run(scenario())
