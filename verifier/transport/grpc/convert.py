"""proto <-> domain conversion for the verifier.v1 API. No I/O and no grpc import."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from ...appraisal.model import Finding, Tier
from ...appraisal.registry import schemes
from ...errors import RequestError
from ...evaluation import Component
from ...reference_values.model import ReferenceValue
from ...requests import GpuEvidence
from ...service import AppraisalRequest, AppraisalResult
from ...v1 import verifier_pb2 as pb

# The schemes on the gRPC API, by their verifier.v1 EvidenceKind (verifier.appraisal.registry).
TEE_OF_KIND: dict[int, str] = {
    pb.EvidenceKind.Value(s.proto_kind): s.name for s in schemes() if s.proto_kind is not None
}
STATUS_OF_TIER: dict[Tier, pb.Status] = {
    Tier.NONE: pb.STATUS_NONE,
    Tier.AFFIRMING: pb.STATUS_AFFIRMING,
    Tier.WARNING: pb.STATUS_WARNING,
    Tier.CONTRAINDICATED: pb.STATUS_CONTRAINDICATED,
}
_MAX_EXACT_INT = 2**53  # integers beyond this do not fit a double exactly: sent as decimal strings
POLICY_NAME_MAX = 100  # as `verifier policy set` accepts (storage.policies.MAX_NAME) and the appraisal row stores
COLLATERAL_NAME_MAX = 200


def _plain_text(value: str, limit: int) -> bool:
    """1..limit printable characters (no U+0000 or other control characters, which PostgreSQL text, logs and
    metadata cannot all carry), without surrounding blanks."""
    return 0 < len(value) <= limit and value.isprintable() and value.strip() == value


def timestamp(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC))
    return ts


def from_timestamp(ts: Timestamp) -> dt.datetime:
    """A request Timestamp as a UTC datetime. Raises RequestError TIMESTAMP_INVALID for seconds outside
    0001-01-01..9999-12-31 or nanos outside 0..999999999 (google.protobuf.Timestamp's own range)."""
    try:
        return ts.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise RequestError(
            "TIMESTAMP_INVALID", "a timestamp is outside 0001-01-01..9999-12-31 or has bad nanos"
        ) from None


def appraisal_request(msg: pb.AppraiseRequest, *, request_id: str | None) -> AppraisalRequest:
    """Validate the request shape (kind, evidence, collateral and policy names, the GPU reports' collateral names);
    empty bytes mean absent. Raises RequestError (INVALID_ARGUMENT): EVIDENCE_KIND_UNSPECIFIED, EVIDENCE_KIND_UNKNOWN,
    EVIDENCE_EMPTY, COLLATERAL_NAME_INVALID, COLLATERAL_DUPLICATE, POLICY_NAME_INVALID (the bounds, GPU reports
    included, are the service's: `verifier.requests.check_bounds`)."""
    if msg.kind == pb.EVIDENCE_KIND_UNSPECIFIED:
        raise RequestError("EVIDENCE_KIND_UNSPECIFIED", "the request does not say which kind of evidence it carries")
    tee = TEE_OF_KIND.get(msg.kind)
    if tee is None:
        raise RequestError("EVIDENCE_KIND_UNKNOWN", f"unknown evidence kind {msg.kind}")
    if not msg.evidence:
        raise RequestError("EVIDENCE_EMPTY", "the request carries no evidence")
    collateral = _collateral(msg.collateral)
    if msg.policy and not _plain_text(msg.policy, POLICY_NAME_MAX):
        raise RequestError(
            "POLICY_NAME_INVALID",
            f"policy names are 1..{POLICY_NAME_MAX} printable characters without surrounding blanks",
        )
    return AppraisalRequest(
        tee=tee,
        evidence=bytes(msg.evidence),
        collateral=collateral,
        nonce=bytes(msg.nonce) or None,
        runtime_data=bytes(msg.runtime_data) or None,
        policy=msg.policy or None,
        request_id=request_id,
        gpus=tuple(GpuEvidence(bytes(gpu.evidence), _collateral(gpu.collateral)) for gpu in msg.gpus),
    )


def _collateral(items: Any) -> dict[str, bytes]:
    """Named collateral files (repeated CollateralFile) as a dict. Raises RequestError COLLATERAL_NAME_INVALID,
    COLLATERAL_DUPLICATE."""
    collateral: dict[str, bytes] = {}
    for item in items:
        if (
            not _plain_text(item.name, COLLATERAL_NAME_MAX)
            or "/" in item.name
            or "\\" in item.name
            or item.name.startswith(".")
        ):
            raise RequestError(
                "COLLATERAL_NAME_INVALID",
                f"collateral file name {item.name[:COLLATERAL_NAME_MAX]!r} is not a plain name",
            )
        if item.name in collateral:
            raise RequestError("COLLATERAL_DUPLICATE", f"collateral file {item.name!r} appears twice")
        collateral[item.name] = bytes(item.content)
    return collateral


def finding(value: Finding) -> pb.Finding:
    return pb.Finding(**_finding_fields(value))


def _finding_fields(value: Finding, component: str = "") -> dict[str, Any]:
    return {
        "component": component,
        "code": value.code,
        "tier": STATUS_OF_TIER[value.tier],
        "claim": value.claim.value,
        "value": value.value,
        "expected": value.expected,
        "actual": value.actual,
        "message": value.message,
    }


_VIEWS = {pb.RESPONSE_VIEW_UNSPECIFIED: True, pb.RESPONSE_VIEW_FULL: True, pb.RESPONSE_VIEW_TOKEN: False}


def with_claims(msg: pb.AppraiseRequest) -> bool:
    """Whether the response carries the extracted claims (`AppraiseRequest.view`: unspecified or FULL yes, TOKEN
    no). Raises RequestError RESPONSE_VIEW_UNKNOWN for any other value (proto3 keeps unknown enum numbers)."""
    found = _VIEWS.get(msg.view)
    if found is None:
        raise RequestError("RESPONSE_VIEW_UNKNOWN", f"unknown response view {msg.view}")
    return found


def appraise_response(result: AppraisalResult, *, claims: bool = True) -> pb.AppraiseResponse:
    """The response, built in place: findings added to the repeated field, the claims written into the response's
    own Struct (no message built first and copied in). Without `claims` (RESPONSE_VIEW_TOKEN) no claims at all:
    `claims` absent, `claims_json` and the components' `claims_json` empty."""
    appraisal = result.appraisal
    response = pb.AppraiseResponse(
        status=STATUS_OF_TIER[appraisal.status],
        trust_vector=appraisal.trust_vector.to_json(),
        token=result.token,
        appraisal_id=result.appraisal_id,
        tee=appraisal.tee,
        policy_id=appraisal.policy_id,
    )
    response.appraised_at.FromDatetime(result.appraised_at.astimezone(dt.UTC))
    add_finding = response.findings.add
    for value in appraisal.findings:
        add_finding(**_finding_fields(value))
    if claims:
        response.claims.SetInParent()  # present even without claims
        _fill_struct(response.claims, appraisal.claims)
        response.claims_json = claims_json(appraisal.claims)
    for component in result.components:
        _add_component(response, component, claims=claims)
    return response


def _add_component(response: pb.AppraiseResponse, component: Component, *, claims: bool) -> None:
    """One GPU of a composite: its ComponentAppraisal and its findings (named by `component`) in `response`."""
    appraisal = component.appraisal
    response.components.add(
        name=component.name,
        tee=appraisal.tee,
        status=STATUS_OF_TIER[appraisal.status],
        trust_vector=appraisal.trust_vector.to_json(),
        claims_json=claims_json(appraisal.claims) if claims else "",
        evidence_sha384=component.evidence_sha384,
    )
    for value in appraisal.findings:
        response.findings.add(**_finding_fields(value, component.name))


def claims_json(claims: Mapping[str, Any]) -> str:
    """The claims as one compact JSON object, the content of `claims_struct` (the same keys, bytes as hex, datetimes
    RFC 3339, integers beyond 2**53 as decimal strings) with integers written as integers. A NaN or infinite number,
    which JSON cannot carry, becomes "NaN", "Infinity" or "-Infinity" (as proto3 JSON writes doubles). Raises
    nothing for claims made of the types `claims_struct` accepts (anything else is written as its str)."""
    plain = _jsonable(claims)
    try:
        return json.dumps(plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:  # a non-finite number somewhere: the rare path spells it out
        return json.dumps(_finite(plain), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _finite(plain: Any) -> Any:
    """`plain` (a `_jsonable` result) with every NaN or infinite float replaced by its proto3 JSON string."""
    if isinstance(plain, float) and not math.isfinite(plain):
        return "NaN" if math.isnan(plain) else ("Infinity" if plain > 0 else "-Infinity")
    if isinstance(plain, dict):
        return {k: _finite(v) for k, v in plain.items()}
    if isinstance(plain, list):
        return [_finite(v) for v in plain]
    return plain


def claims_struct(claims: Mapping[str, Any]) -> Struct:
    """Claims as a Struct: keys become strings, bytes hex, datetimes RFC 3339, numbers doubles."""
    struct = Struct()
    _fill_struct(struct, claims)
    return struct


def _fill_struct(struct: Struct, mapping: Mapping[Any, Any]) -> None:
    """Write `mapping` into `struct` as `struct.update({str(k): _jsonable(v) ...})` does, in one pass: values of
    the exact built-in types are set directly, anything else (subclasses, enums, datetimes, sets, ...) goes
    through `_jsonable` first."""
    fields = struct.fields
    for key, value in mapping.items():
        _set_value(fields[key if type(key) is str else str(key)], value)


def _set_value(target: Any, value: Any) -> None:
    kind = type(value)
    if kind is str:
        target.string_value = value
    elif kind is bool:
        target.bool_value = value
    elif kind is float:
        target.number_value = value
    elif kind is int:
        if abs(value) <= _MAX_EXACT_INT:
            target.number_value = value
        else:
            target.string_value = str(value)
    elif kind is dict:
        nested = target.struct_value
        nested.Clear()  # present even when empty, as Struct.update leaves it
        _fill_struct(nested, value)
    elif kind is list or kind is tuple:
        items = target.list_value
        items.Clear()
        add = items.values.add
        for item in value:
            _set_value(add(), item)
    elif value is None:
        target.null_value = 0
    elif kind is bytes:
        target.string_value = value.hex()
    else:
        _set_plain(target, _jsonable(value))


def _set_plain(target: Any, plain: Any) -> None:
    """Set a `_jsonable` result, which may be an instance of a subclass (a str enum, an int enum), as protobuf's
    Struct setter does; the dicts and lists `_jsonable` makes are exact and go back to `_set_value`."""
    if plain is None:
        target.null_value = 0
    elif isinstance(plain, bool):
        target.bool_value = plain
    elif isinstance(plain, str):
        target.string_value = plain
    elif isinstance(plain, (int, float)):
        target.number_value = plain
    else:
        _set_value(target, plain)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _MAX_EXACT_INT else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if hasattr(value, "value") and isinstance(value.value, (str, int)):  # enums
        return _jsonable(value.value)
    return str(value)


def reference_value(ref: ReferenceValue, *, at: dt.datetime) -> pb.ReferenceValue:
    msg = pb.ReferenceValue(
        id=ref.id,
        kind=ref.kind,
        value=ref.value.hex(),
        label=ref.label,
        created_at=timestamp(ref.created_at),
        revoke_reason=ref.revoke_reason or "",
        state=ref.state(at),
        version=ref.version or "",
        created_by=ref.created_by,
        revoked_by=ref.revoked_by or "",
    )
    if ref.valid_from is not None:
        msg.valid_from.CopyFrom(timestamp(ref.valid_from))
    if ref.expires_at is not None:
        msg.expires_at.CopyFrom(timestamp(ref.expires_at))
    if ref.revoked_at is not None:
        msg.revoked_at.CopyFrom(timestamp(ref.revoked_at))
    return msg
