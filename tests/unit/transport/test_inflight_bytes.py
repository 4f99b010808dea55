"""Issue 11 item 2: the bytes of requests held at once are bounded (150 queued 4 MiB requests reached 2 GiB RSS)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from verifier.errors import OverloadedError
from verifier.transport.grpc.limit_interceptors import InFlightBytesInterceptor
from verifier.v1 import verifier_pb2 as pb

MIB = 1024 * 1024


def _request(size: int) -> pb.AppraiseRequest:
    return pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=b"\0" * size)


def test_requests_past_the_budget_are_refused_and_the_budget_frees() -> None:
    interceptor = InFlightBytesInterceptor(3 * MIB)
    release = asyncio.Event()

    async def inner(request: Any, context: Any) -> str:
        await release.wait()
        return "ok"

    async def call(size: int) -> Any:
        return await interceptor.around("/verifier.v1.Verifier/Appraise", None, inner, _request(size), None)  # type: ignore[arg-type]

    async def scenario() -> None:
        held = [asyncio.ensure_future(call(MIB)) for _ in range(2)]
        await asyncio.sleep(0)
        assert interceptor.in_flight > 2 * MIB
        with pytest.raises(OverloadedError) as refused:
            await call(2 * MIB)
        assert refused.value.code == "REQUEST_BYTES_IN_FLIGHT" and refused.value.retry_after
        release.set()
        assert await asyncio.gather(*held) == ["ok", "ok"]
        assert interceptor.in_flight == 0
        assert await call(2 * MIB) == "ok"

    asyncio.run(scenario())


def test_one_request_larger_than_the_budget_passes_when_alone() -> None:
    interceptor = InFlightBytesInterceptor(MIB)

    async def inner(request: Any, context: Any) -> str:
        return "ok"

    async def scenario() -> None:
        result = await interceptor.around("/m", None, inner, _request(2 * MIB), None)  # type: ignore[arg-type]
        assert result == "ok"

    asyncio.run(scenario())
