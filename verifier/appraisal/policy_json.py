"""The JSON form of an appraisal policy (a `--policy-file` entry, a `verifier policy set` body, a manifest's inline
policy; schema in README "Policies", `policy_json_schema()`), read and written by the pydantic models of
`policy_model`: no field is named here.

`policy_from_json` validates in pydantic's strict JSON mode: a JSON string is not an integer, a boolean is not an
integer, bytes are hex strings of their exact length, unknown keys are refused, and the document rules of
`policy_model` apply (tighten-only). Before pydantic sees it, the document is checked against the model's fields:
unknown keys (and the code-only `allow_debug`) are refused level by level, a null for an object- or list-valued
key that cannot be null means its default (as the hand-written codec read it), and a value JSON cannot represent
(a Python set, NaN) is refused with its type name. `policy_to_json` is the canonical JSON form (the inverse of
`policy_from_json` for the policies it produced); `policy_sha256` is the SHA-256 of that JSON with sorted keys and
no whitespace, carried in result tokens and stored beside every database policy, so it must never change for a
given policy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from types import UnionType
from typing import Any, Union, get_origin

from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from ..errors import ConfigError
from ..identity_memo import IdentityMemo
from .policy_errors import INVALID, MAX_MESSAGE, CodeOnly, config_error, describe, fields_of, json_value, label, unwrap
from .policy_model import Policy

_ADAPTER: TypeAdapter[Policy] = TypeAdapter(Policy)


def policy_from_json(entry: Any) -> Policy:
    """One policy from its JSON form. Raises ConfigError("POLICY_FILE_INVALID") for unknown keys (a typo must not
    silently weaken a policy), for values of the wrong JSON type (booleans must be JSON true/false, so the string
    "false" is not false; integers JSON integers in range; hex values strings of the right length) and for a broken
    domain or tighten-only rule (`policy_model`); the message names the key's path. Never raises anything else."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
        raise ConfigError(INVALID, "every policy needs a non-empty string 'id'")
    where = label(entry["id"])
    document = _document(entry, Policy, where, ())
    try:
        return _ADAPTER.validate_json(json.dumps(document, allow_nan=False), by_alias=True, by_name=False)
    except ValidationError as exc:
        raise config_error(exc, Policy, where, document) from None


def policy_to_json(policy: Policy) -> dict[str, Any]:
    """The JSON form of a policy, the schema `policy_from_json` reads (bytes as lowercase hex; `allow_debug` only
    when true). Never raises for a policy the model validated."""
    body: dict[str, Any] = _ADAPTER.dump_python(policy, mode="json", by_alias=True)
    return body


_HASHES: IdentityMemo[str] = IdentityMemo()


def _digest(policy: Policy) -> str:
    return hashlib.sha256(canonical_json(policy_to_json(policy)).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON text: sorted keys, no whitespace, ASCII only (the input of `policy_sha256`). Raises
    ValueError for NaN or infinity and TypeError for a value JSON cannot represent."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def policy_sha256(policy: Policy) -> str:
    """SHA-256 (hex) of the canonical JSON of `policy_to_json(policy)`; memoised per policy object (policies are
    frozen), since every appraisal names its policy's hash."""
    return _HASHES.get(policy, None, lambda: _digest(policy))


def policy_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a policy document, generated from the models: every key with its type,
    bounds and vocabulary, unknown keys refused at every level, "id" required, code-only keys left out (the
    cross-field rules, e.g. only UpToDate and SWHardeningNeeded affirming, are `policy_model`'s). Never raises."""
    schema = _ADAPTER.json_schema(by_alias=True)
    properties = schema.get("properties", {})
    for key in set(fields_of(Policy) or {}) - set(_json_fields(Policy)):
        properties.pop(key, None)
    schema["required"] = ["id"]
    return schema


def _document(data: Mapping[Any, Any], model: type, where: str, at: tuple[str, ...]) -> dict[str, Any]:
    """`data`, a JSON object for `model` at path `at` of the policy `where` (its id), checked before pydantic
    validates it: unknown and code-only keys refused (all of this level's at once, before anything below), a null
    that means the default dropped, the sections below checked the same way, a value that is not JSON refused."""
    fields = _json_fields(model)
    unknown = sorted(label(str(k)) for k in data if not isinstance(k, str) or k not in fields)
    if unknown:
        raise ConfigError(INVALID, f"{'.'.join([where, *at])}: unknown keys {unknown}"[:MAX_MESSAGE])
    out: dict[str, Any] = {}
    for key, value in data.items():
        info = fields[key]
        section = unwrap(info.annotation)
        if value is None and _null_is_default(info):
            continue
        if fields_of(section) is not None and isinstance(value, dict):
            out[key] = _document(value, section, where, (*at, key))
        elif not json_value(value):
            error = {"type": "not_json", "loc": (*at, key), "input": value, "msg": "not JSON"}
            raise ConfigError(INVALID, describe(error, Policy, where))
        else:
            out[key] = value
    return out


def _json_fields(model: type) -> dict[str, FieldInfo]:
    """The fields of `model` a JSON document may set, by JSON key (not the code-only ones)."""
    fields = fields_of(model) or {}
    return {key: info for key, info in fields.items() if not any(isinstance(m, CodeOnly) for m in info.metadata)}


def _null_is_default(info: FieldInfo) -> bool:
    """A field holding an object or a list that cannot be None: a null there reads as the field's default."""
    annotation = info.annotation
    if get_origin(annotation) in (Union, UnionType):
        return False  # `X | None`: null is None
    return get_origin(annotation) in (Mapping, dict, tuple) or fields_of(annotation) is not None
