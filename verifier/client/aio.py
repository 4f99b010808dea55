"""Asyncio gRPC client (grpc.aio) with the same methods and results as `VerifierClient`, as coroutines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc

from verifier.client.jwks import JwksCache, fetch_jwks_grpc
from verifier.client.sync import (
    Appraisal,
    Challenge,
    GpuInput,
    Metadata,
    appraisal_of,
    appraise_request,
    challenge_of,
    challenge_request,
    client_error,
    jwks_of,
    open_channel,
)
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc


class AsyncVerifierClient:
    """`async with AsyncVerifierClient(target, credentials=...) as client: await client.appraise(...)`."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = 10,
        metadata: Metadata = (),
    ) -> None:
        self._target, self._credentials = target, credentials
        self._timeout, self._metadata = timeout, tuple(metadata)
        self._channel = (
            grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
        )
        self._stub = pb_grpc.VerifierStub(self._channel)  # type: ignore[no-untyped-call]

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self._stub, method)(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            raise client_error(error) from error

    async def create_challenge(self, size: int = 32) -> Challenge:
        return challenge_of(await self._call("CreateChallenge", challenge_request(size)))

    async def appraise(
        self,
        kind: str,
        evidence: bytes,
        *,
        nonce: bytes | None = None,
        runtime_data: bytes | None = None,
        collateral: Mapping[str, bytes] | None = None,
        policy: str | None = None,
        gpus: Sequence[GpuInput] | None = None,
        claims: bool = True,
    ) -> Appraisal:
        """As `VerifierClient.appraise` (composite evidence with `gpus`, no extracted claims in the answer with
        `claims=False`). Raises ValueError or TypeError before any call, ClientError for a failed RPC."""
        request = appraise_request(
            kind,
            evidence,
            nonce=nonce,
            runtime_data=runtime_data,
            collateral=collateral,
            policy=policy,
            gpus=gpus,
            claims=claims,
        )
        return appraisal_of(await self._call("Appraise", request))

    async def signing_keys(self) -> dict[str, Any]:
        return jwks_of(await self._call("GetSigningKeys", pb.GetSigningKeysRequest()))

    async def jwks_cache(self, **options: Any) -> JwksCache:
        """A JwksCache primed with the current keys. Later refreshes (rotation, max_age) are blocking calls on a
        short-lived channel: in an event loop, run `verify_result` in `asyncio.to_thread` to keep it free."""
        initial = await self.signing_keys()
        return JwksCache(self._fetch_blocking, initial=initial, **options)

    def _fetch_blocking(self) -> dict[str, Any]:
        channel = open_channel(self._target, self._credentials)
        try:
            return fetch_jwks_grpc(channel, timeout=self._timeout, metadata=self._metadata)
        finally:
            channel.close()

    async def close(self) -> None:
        await self._channel.close(None)

    async def __aenter__(self) -> AsyncVerifierClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.close()
