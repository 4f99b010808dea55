"""AppraiseResponse.claims_json: the claims as JSON text, the same content as the `claims` Struct (issue 14 item 5)."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from typing import Any

import pytest
from google.protobuf import struct_pb2

from verifier.appraisal.model import Appraisal, Claim, Finding, Tier, TrustVector
from verifier.service import AppraisalResult
from verifier.transport.grpc import convert

AT = dt.datetime(2024, 9, 7, 14, 37, 39, 545000, tzinfo=dt.UTC)


class Level(enum.IntEnum):
    HIGH = 3


CLAIMS: list[dict[Any, Any]] = [
    {},
    {"a": "x", "b": True, "c": False, "d": 1.5, "e": 7, "f": None, "g": -(2**53), "h": 2**53 + 1, "i": -(2**60)},
    {"bytes": b"\x00\xff", "ba": bytearray(b"\x01"), "at": AT, "list": [AT, b"\x03", (1, "x")], "set": {"b", "a"}},
    {"nested": {"x": {"y": [1, {"z": None}, [], {}]}, 2: "int key"}, "text": 'é \u2028 "quoted" \\'},
    {"tier": Tier.WARNING, "claim": Claim.HARDWARE, "level": Level.HIGH, "other": ValueError("as text")},
    {"nan": float("nan"), "inf": float("inf"), "ninf": [-float("inf")], "zero": -0.0},
]


def _same(struct_value: struct_pb2.Value, parsed: Any) -> bool:
    """`parsed` (from claims_json) is what the Struct value says: numbers equal as doubles, a non-finite number as
    its proto3 JSON string."""
    kind = struct_value.WhichOneof("kind")
    if kind == "number_value":
        number = struct_value.number_value
        if not math.isfinite(number):
            return parsed == ("NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity"))
        return type(parsed) in (int, float) and float(parsed) == number
    if kind == "string_value":
        return parsed == struct_value.string_value
    if kind == "bool_value":
        return parsed is struct_value.bool_value
    if kind == "null_value":
        return parsed is None
    if kind == "list_value":
        values = struct_value.list_value.values
        return isinstance(parsed, list) and len(parsed) == len(values) and all(map(_same, values, parsed))
    fields = struct_value.struct_value.fields
    return isinstance(parsed, dict) and set(parsed) == set(fields) and all(_same(fields[k], parsed[k]) for k in fields)


@pytest.mark.parametrize("claims", CLAIMS)
def test_claims_json_is_the_struct_as_json(claims: dict[Any, Any]) -> None:
    text = convert.claims_json(claims)
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is no JSON"))
    assert isinstance(parsed, dict)
    assert _same(struct_pb2.Value(struct_value=convert.claims_struct(claims)), parsed), text
    assert text == json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)  # compact, non-ASCII as itself


def test_integers_stay_integers_and_big_ones_strings() -> None:
    parsed = json.loads(convert.claims_json({"ms": 1725719859545, "big": 2**64, "pcrs": {"0": b"\xaa"}}))
    assert parsed == {"ms": 1725719859545, "big": str(2**64), "pcrs": {"0": "aa"}}
    assert type(parsed["ms"]) is int


def test_the_response_carries_both() -> None:
    claims = {"pcrs": {"0": b"\x01" * 48}, "timestamp": 1725719859545, "debug_mode": False, "at": AT}
    appraisal = Appraisal(
        tee="nitro",
        status=Tier.WARNING,
        trust_vector=TrustVector({Claim.EXECUTABLES: 33}),
        claims=claims,
        findings=(Finding("CODE", Claim.EXECUTABLES, 33, "m"),),
        policy_id="default",
    )
    response = convert.appraise_response(AppraisalResult(appraisal, "tok", "jti", "id-1", AT))
    assert response.claims_json == convert.claims_json(claims)
    assert _same(struct_pb2.Value(struct_value=response.claims), json.loads(response.claims_json))
    empty = Appraisal(
        tee="nitro", status=Tier.NONE, trust_vector=TrustVector({}), claims={}, findings=(), policy_id="default"
    )
    assert convert.appraise_response(AppraisalResult(empty, "tok", "jti", "id-2", AT)).claims_json == "{}"
