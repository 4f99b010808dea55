"""Blocking gRPC client of `verifier.v1.Verifier` for workloads and relying parties (plus the shared conversions).

Errors become ClientError with the server's stable code: the `google.rpc.ErrorInfo` reason carried in the
`grpc-status-details-bin` trailer (decoded with grpc_status), or the gRPC status name when there is none.

Composite evidence (a SEV-SNP or TDX report with the reports of the GPUs its confidential VM drives): `appraise(...,
gpus=[GpuReport(report, files), ...])` (or `(report, files)` pairs); each GPU is appraised as a component "gpu<i>"
(`Appraisal.components`, its findings carry `component`), the status is the worst of all. The binding the server
checks: every GPU report's SPDM request nonce is the request's nonce, and the CPU report's REPORT_DATA commits to
SHA-384 of every GPU report in this order (proto AppraiseRequest.gpus).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

KINDS: dict[str, Any] = {
    "nitro": pb.EVIDENCE_KIND_NITRO,
    "snp": pb.EVIDENCE_KIND_SEV_SNP,
    "tdx": pb.EVIDENCE_KIND_TDX,
    "gpu": pb.EVIDENCE_KIND_NVIDIA_GPU,
}
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
class GpuReport:
    """One GPU of a composite Appraise: its attestation report (the SPDM GET_MEASUREMENTS request and MEASUREMENTS
    response, as NVML returns them) and its collateral files by name ("cert_chain.pem", "driver_rim.xml",
    "vbios_rim.xml", DER OCSP responses "ocsp-<name>.der")."""

    evidence: bytes
    collateral: Mapping[str, bytes] = field(default_factory=dict)


GpuInput = GpuReport | tuple[bytes, Mapping[str, bytes]]


@dataclass(frozen=True)
class ComponentAppraisal:
    """The appraisal of one GPU of a composite request: "gpu<i>" in request order, its own status, trust vector and
    claims (the reply's claims_json; {} when that is not a JSON object), and the SHA-384 (hex) of its report, what
    the CPU report's REPORT_DATA commits to. As `Appraisal`, informational: the token is what a relying party
    verifies (`verify_result`, `ResultClaims.components`)."""

    name: str
    tee: str
    status: str
    trust_vector: dict[str, int]
    claims: dict[str, Any]
    evidence_sha384: str


@dataclass(frozen=True)
class Appraisal:
    """An Appraise reply. `token` is the signed EAR: verify it with `verify_result`, never trust `status` alone
    when it reached you through someone else. `components`: the GPUs of a composite request (else empty); a
    finding about one names it in its "component" ("" for the request's evidence)."""

    status: str
    token: str
    trust_vector: dict[str, int]
    claims: dict[str, Any]
    findings: tuple[dict[str, Any], ...]
    appraisal_id: str
    tee: str = ""
    policy_id: str = ""
    components: tuple[ComponentAppraisal, ...] = ()


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


def _files(collateral: Mapping[str, bytes] | None) -> list[pb.CollateralFile]:
    return [pb.CollateralFile(name=n, content=c) for n, c in (collateral or {}).items()]


def gpu_evidence(gpu: GpuInput, index: int = 0) -> pb.GpuEvidence:
    """The proto form of one GPU (a GpuReport or an (evidence, collateral) pair). Raises TypeError for anything
    else (the message names `gpus[index]`)."""
    if isinstance(gpu, GpuReport):
        evidence, collateral = gpu.evidence, gpu.collateral
    elif isinstance(gpu, (tuple, list)) and len(gpu) == 2:
        evidence, collateral = gpu
    else:
        raise TypeError(f"gpus[{index}] must be a GpuReport or an (evidence, collateral) pair")
    if not isinstance(evidence, (bytes, bytearray, memoryview)) or not isinstance(collateral, Mapping):
        raise TypeError(f"gpus[{index}]: the evidence must be bytes and the collateral a mapping of name to bytes")
    return pb.GpuEvidence(evidence=bytes(evidence), collateral=_files(collateral))


def appraise_request(
    kind: str,
    evidence: bytes,
    *,
    nonce: bytes | None,
    runtime_data: bytes | None,
    collateral: Mapping[str, bytes] | None,
    policy: str | None,
    gpus: Sequence[GpuInput] | None = None,
    claims: bool = True,
) -> pb.AppraiseRequest:
    """The Appraise request; without `claims`, RESPONSE_VIEW_TOKEN (the answer leaves the extracted claims out).
    Raises ValueError for an unknown `kind`, TypeError for a `gpus` entry that is not a GpuReport or an (evidence,
    collateral) pair, or for `gpus` given as a single report (bytes)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}")
    if isinstance(gpus, (bytes, str, GpuReport)):
        raise TypeError("gpus must be a sequence of GPU reports")
    return pb.AppraiseRequest(
        kind=KINDS[kind],
        evidence=evidence,
        nonce=nonce or b"",
        runtime_data=runtime_data or b"",
        collateral=_files(collateral),
        policy=policy or "",
        gpus=[gpu_evidence(gpu, index) for index, gpu in enumerate(gpus or ())],
        view=pb.RESPONSE_VIEW_FULL if claims else pb.RESPONSE_VIEW_TOKEN,
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {}


def component_of(reply: pb.ComponentAppraisal) -> ComponentAppraisal:
    return ComponentAppraisal(
        name=reply.name,
        tee=reply.tee,
        status=STATUS_NAMES.get(reply.status, "none"),
        trust_vector=dict(reply.trust_vector),
        claims=_json_object(reply.claims_json),
        evidence_sha384=reply.evidence_sha384,
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
            "component": f.component,
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
        components=tuple(component_of(c) for c in reply.components),
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
        gpus: Sequence[GpuInput] | None = None,
        claims: bool = True,
    ) -> Appraisal:
        """Appraise `kind` ("nitro", "snp", "tdx", "gpu") evidence, with `gpus` the GPUs a "snp" or "tdx" report's
        confidential VM drives (module docstring); untrustworthy evidence is a result, not an error. `claims=False`
        asks for the answer without the extracted claims (RESPONSE_VIEW_TOKEN: `Appraisal.claims` is then empty; the
        token carries them). Raises ValueError (unknown kind) or TypeError (a malformed `gpus` entry) before any
        call, ClientError for a failed RPC (e.g. COMPOSITE_TEE_UNSUPPORTED, GPU_COUNT_TOO_LARGE)."""
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
