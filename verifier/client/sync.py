"""Blocking gRPC client of `verifier.v1.Verifier` for workloads and relying parties (plus the shared conversions).

Errors become ClientError with the server's stable code: the `google.rpc.ErrorInfo` reason carried in the
`grpc-status-details-bin` trailer (decoded with grpc_status), or the gRPC status name when there is none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from verifier.client.jwks import JwksCache, fetch_jwks_grpc
from verifier.errors import ErrorKind, VerifierError
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

KINDS: dict[str, Any] = {"nitro": pb.EVIDENCE_KIND_NITRO, "snp": pb.EVIDENCE_KIND_SEV_SNP, "tdx": pb.EVIDENCE_KIND_TDX}
STATUS_NAMES: dict[int, str] = {
    pb.STATUS_AFFIRMING: "affirming",
    pb.STATUS_WARNING: "warning",
    pb.STATUS_CONTRAINDICATED: "contraindicated",
    pb.STATUS_NONE: "none",
}
_KIND_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorKind.REQUEST,
    grpc.StatusCode.NOT_FOUND: ErrorKind.NOT_FOUND,
    grpc.StatusCode.UNAVAILABLE: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorKind.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: ErrorKind.AUTH,
    grpc.StatusCode.PERMISSION_DENIED: ErrorKind.PERMISSION,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorKind.OVERLOADED,
}
Metadata = Sequence[tuple[str, str]]


class ClientError(VerifierError):
    """A failed RPC: `code` is the server's stable reason (e.g. EVIDENCE_EMPTY) or the gRPC status name."""

    def __init__(
        self, code: str, message: str, *, status: grpc.StatusCode, request_id: str = "", retryable: bool | None = None
    ) -> None:
        super().__init__(code, message)
        self.status = status
        self.request_id = request_id
        self.kind = _KIND_OF_STATUS.get(status, ErrorKind.INTERNAL)
        transient = self.kind in (ErrorKind.UNAVAILABLE, ErrorKind.OVERLOADED)
        self.retryable = transient if retryable is None else retryable


@dataclass(frozen=True)
class Challenge:
    """A single-use nonce from CreateChallenge, to embed in the evidence before `expires_at`."""

    nonce: bytes
    expires_at: datetime


@dataclass(frozen=True)
class Appraisal:
    """An Appraise reply. `token` is the signed EAR: verify it with `verify_result`, never trust `status` alone
    when it reached you through someone else."""

    status: str
    token: str
    trust_vector: dict[str, int]
    claims: dict[str, Any]
    findings: tuple[dict[str, Any], ...]
    appraisal_id: str
    tee: str = ""
    policy_id: str = ""


def client_error(error: grpc.RpcError) -> ClientError:
    """Decode a failed call's `google.rpc.Status` details into a ClientError."""
    call: Any = error
    status = call.code() if callable(getattr(call, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (call.details() if callable(getattr(call, "details", None)) else "") or status.name
    code, request_id, retryable = status.name, "", None
    try:
        detail_status = rpc_status.from_call(call)
    except ValueError:  # details inconsistent with the call's status: ignore them
        detail_status = None
    for detail in detail_status.details if detail_status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
            code, request_id = info.reason or code, info.metadata.get("request_id", "")
            if "retryable" in info.metadata:
                retryable = info.metadata["retryable"] == "true"
            break
    return ClientError(code, message, status=status, request_id=request_id, retryable=retryable)


def challenge_request(size: int) -> pb.CreateChallengeRequest:
    return pb.CreateChallengeRequest(nonce_size=size)


def challenge_of(reply: pb.CreateChallengeResponse) -> Challenge:
    return Challenge(bytes(reply.nonce), reply.expires_at.ToDatetime(tzinfo=UTC))


def appraise_request(
    kind: str,
    evidence: bytes,
    *,
    nonce: bytes | None,
    runtime_data: bytes | None,
    collateral: Mapping[str, bytes] | None,
    policy: str | None,
) -> pb.AppraiseRequest:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    return pb.AppraiseRequest(
        kind=KINDS[kind],
        evidence=evidence,
        nonce=nonce or b"",
        runtime_data=runtime_data or b"",
        collateral=[pb.CollateralFile(name=n, content=c) for n, c in (collateral or {}).items()],
        policy=policy or "",
    )


def appraisal_of(reply: pb.AppraiseResponse) -> Appraisal:
    findings = tuple(
        {
            "code": f.code,
            "tier": STATUS_NAMES.get(f.tier, "none"),
            "claim": f.claim,
            "value": f.value,
            "expected": f.expected,
            "actual": f.actual,
            "message": f.message,
        }
        for f in reply.findings
    )
    return Appraisal(
        status=STATUS_NAMES.get(reply.status, "none"),
        token=reply.token,
        trust_vector=dict(reply.trust_vector),
        claims=json_format.MessageToDict(reply.claims),
        findings=findings,
        appraisal_id=reply.appraisal_id,
        tee=reply.tee,
        policy_id=reply.policy_id,
    )


def jwks_of(reply: pb.GetSigningKeysResponse) -> dict[str, Any]:
    try:
        document = json.loads(reply.jwks_json)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ClientError("JWKS_INVALID", "GetSigningKeys returned no JSON object", status=grpc.StatusCode.UNKNOWN)
    return document


def open_channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    return grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)


class VerifierClient:
    """`with VerifierClient("verifier:50051", credentials=grpc.ssl_channel_credentials()) as client: ...`

    Without credentials the channel is plaintext (loopback and tests only).
    """

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
        self._channel = open_channel(target, credentials)
        self._stub = pb_grpc.VerifierStub(self._channel)  # type: ignore[no-untyped-call]

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise client_error(error) from error

    def create_challenge(self, size: int = 32) -> Challenge:
        return challenge_of(self._call("CreateChallenge", challenge_request(size)))

    def appraise(
        self,
        kind: str,
        evidence: bytes,
        *,
        nonce: bytes | None = None,
        runtime_data: bytes | None = None,
        collateral: Mapping[str, bytes] | None = None,
        policy: str | None = None,
    ) -> Appraisal:
        """Appraise `kind` ("nitro", "snp", "tdx") evidence; untrustworthy evidence is a result, not an error."""
        request = appraise_request(
            kind, evidence, nonce=nonce, runtime_data=runtime_data, collateral=collateral, policy=policy
        )
        return appraisal_of(self._call("Appraise", request))

    def signing_keys(self) -> dict[str, Any]:
        """The verifier's JWKS (RFC 7517 s5)."""
        return jwks_of(self._call("GetSigningKeys", pb.GetSigningKeysRequest()))

    def jwks_cache(self, **options: Any) -> JwksCache:
        """A JwksCache fetching through this client's channel (options: min_refresh, max_age, clock)."""
        return JwksCache(
            lambda: fetch_jwks_grpc(self._channel, timeout=self._timeout, metadata=self._metadata), **options
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> VerifierClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
