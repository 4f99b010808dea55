"""Property tests of the strict policy models (issue 12 item 3): hostile policy documents (wrong JSON types, huge
integers, nested junk, unknown keys at every level, values JSON cannot represent) are refused with
ConfigError(POLICY_FILE_INVALID) and a bounded message, never another exception; valid documents are read and
round-trip through `policy_to_json` with the same `policy_sha256`. The wrong-type cases come from the policy's own
JSON Schema, so a field added to the model is fuzzed without being listed here."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property.profiles import examples
from verifier.appraisal.policy import (
    TCB_COMPONENTS,
    TCB_FIELDS,
    TDX_STATUSES,
    Policy,
    SnpRules,
    TdxRules,
    canonical_json,
    policy_from_json,
    policy_json_schema,
    policy_sha256,
    policy_to_json,
    weakenings,
)
from verifier.errors import ConfigError

FAST = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT_MAX = 2**31 - 1
MAX_MESSAGE = 300

# --- valid documents ----------------------------------------------------------------------------------------------


def _hex(size: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=size, max_size=size).map(lambda b: b.hex()) | st.binary(min_size=size, max_size=size).map(
        lambda b: b.hex().upper()
    )


SVN = st.integers(0, 255)
OPTIONAL_HOURS = st.none() | st.integers(1, INT_MAX)
OPTIONAL_UINT31 = st.none() | st.integers(0, INT_MAX)
WARNING_STATUSES = st.sampled_from([s for s in TDX_STATUSES if s != "Revoked"])
SNP = st.fixed_dictionaries(
    {},
    optional={
        "minimum_tcb": st.dictionaries(st.sampled_from(TCB_COMPONENTS), SVN, max_size=5),
        "tcb_fields": st.lists(st.sampled_from(TCB_FIELDS), max_size=4),
        "allow_migrate_ma": st.booleans(),
        "allowed_vmpls": st.none() | st.lists(st.integers(0, 3), max_size=4),
        "minimum_firmware": st.none() | st.lists(SVN, min_size=2, max_size=2),
        "minimum_build": st.none() | SVN,
        "allowed_chip_ids": st.none() | st.lists(_hex(64), max_size=2),
        "crl_fail_open": st.booleans(),
        "max_collateral_age_hours": OPTIONAL_HOURS,
    },
)
TDX = st.fixed_dictionaries(
    {},
    optional={
        "accepted_statuses": st.none()
        | st.dictionaries(WARNING_STATUSES, st.just("warning"), min_size=1, max_size=4)
        | st.dictionaries(
            st.sampled_from(["UpToDate", "SWHardeningNeeded"]), st.sampled_from(["affirming", "warning"]), min_size=1
        ),
        "advisory_allow": st.none() | st.lists(st.text(max_size=16), max_size=3),
        "advisory_deny": st.none() | st.lists(st.text(max_size=16), max_size=3),
        "grace_days": OPTIONAL_UINT31,
        "require_sept_ve_disable": st.just(True),
        "allowed_mr_seams": st.none() | st.lists(_hex(48), max_size=2),
        "minimum_tcb_evaluation_data_number": OPTIONAL_UINT31,
        "max_collateral_age_hours": OPTIONAL_HOURS,
    },
)
DOCUMENTS = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=20)},
    optional={
        "require_nonce": st.booleans(),
        "report_data_binding": st.sampled_from(["sha512", "raw"]),
        "required_kinds": st.none()
        | st.dictionaries(
            st.sampled_from(["nitro", "snp", "tdx", "other"]), st.lists(st.text(max_size=20), max_size=3), max_size=4
        ),
        "snp": st.none() | SNP,
        "tdx": st.none() | TDX,
    },
)

# --- hostile values -----------------------------------------------------------------------------------------------

HUGE = st.sampled_from([2**31, 2**63, 2**64, 2**256, -(2**63), 10**1000, -(10**1000)])
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | HUGE
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(["", "true", "false", "0", "22", "ab" * 64, "cd" * 48, "UpToDate", "reported", "sha512", "raw"])
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
NOT_JSON = st.sampled_from(
    [
        {1, 2},
        frozenset({"a"}),
        b"\x00" * 64,
        bytearray(b"ab"),
        math.nan,
        math.inf,
        -math.inf,
        object(),
        {(1, 2): 3},
        {"\ud800": 1},
        "\udfff",
        10**5000,
        [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
    ]
)
SECTIONS = [(), ("snp",), ("tdx",), ("required_kinds",), ("snp", "minimum_tcb"), ("tdx", "accepted_statuses")]


def _refused_or_read(entry: Any) -> Policy | None:
    """policy_from_json(entry): a Policy, or None when it raised ConfigError(POLICY_FILE_INVALID) with a bounded
    message. Any other exception fails the test."""
    try:
        policy = policy_from_json(entry)
    except ConfigError as error:
        assert error.code == "POLICY_FILE_INVALID"
        assert 0 < len(error.message) <= MAX_MESSAGE
        return None
    assert isinstance(policy, Policy)
    return policy


def _section(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    target: Any = document
    for key in path:
        target = target.get(key) if isinstance(target, dict) else None
    return target if isinstance(target, dict) else None


@st.composite
def _hostile(draw: st.DrawFn) -> Any:
    """A valid document with up to three values replaced or added (at the top, in a section or in one of its
    mappings) by junk JSON, a value JSON cannot represent or a key the model does not have."""
    document = draw(DOCUMENTS)
    for _ in range(draw(st.integers(1, 3))):
        target = _section(document, draw(st.sampled_from(SECTIONS)))
        if target is None:
            continue
        key = draw(st.sampled_from([*target, "bogus", "allow_debug", "policy_id", "id", ""]))
        if target is document and key == "id":
            continue
        target[key] = draw(JSON | NOT_JSON)
    return document


# --- properties ---------------------------------------------------------------------------------------------------


@FAST
@given(DOCUMENTS)
def test_valid_documents_are_read_and_round_trip(document: dict[str, Any]) -> None:
    policy = policy_from_json(copy.deepcopy(document))
    body = policy_to_json(policy)
    again = policy_from_json(body)
    assert again == policy
    assert policy_sha256(again) == policy_sha256(policy)
    assert policy_to_json(again) == body
    assert policy_from_json(json.loads(canonical_json(body))) == policy
    assert weakenings(policy, policy) == []
    assert policy.required("snp")[0] == "snp.measurement"  # a document only adds required kinds


@FAST
@given(_hostile())
def test_hostile_documents_are_refused_with_a_config_error_only(entry: Any) -> None:
    policy = _refused_or_read(entry)
    if policy is not None:  # junk that happened to be valid (e.g. a null where null means the default)
        assert policy_from_json(policy_to_json(policy)) == policy


@FAST
@given(JSON | NOT_JSON)
def test_anything_that_is_not_a_policy_object_is_refused(entry: Any) -> None:
    assert _refused_or_read(entry) is None or isinstance(entry, dict)


@FAST
@given(
    DOCUMENTS,
    st.sampled_from([(), ("snp",), ("tdx",)]),
    st.text(min_size=1, max_size=12),
    JSON | NOT_JSON,
)
def test_an_unknown_key_at_any_level_is_refused(
    document: dict[str, Any], path: tuple[str, ...], key: str, value: Any
) -> None:
    body = policy_to_json(Policy())
    known = set(body[path[0]] if path else body) | {"id"}
    if key in known:
        key = f"{key}_"
    target = document
    if path:
        section = document.get(path[0])
        target = document[path[0]] = dict(section) if isinstance(section, dict) else {}
    target[key] = value
    try:
        policy_from_json(document)
    except ConfigError as error:
        assert error.code == "POLICY_FILE_INVALID"
        assert "unknown keys" in error.message, error.message
    else:
        raise AssertionError(f"{key!r} at {path} was accepted")


def _accepted_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property's schema accepts ("integer", "array", "null", ...)."""
    arms = schema.get("anyOf", [schema])
    return {arm.get("type", "object") for arm in arms}


def _schema_fields() -> list[tuple[tuple[str, ...], str, set[str]]]:
    """(section, key, JSON types accepted) for every key of a policy document, from its JSON Schema."""
    schema = policy_json_schema()
    out: list[tuple[tuple[str, ...], str, set[str]]] = [
        ((), key, _accepted_types(prop)) for key, prop in schema["properties"].items() if key != "id"
    ]
    for section, model in (("snp", SnpRules), ("tdx", TdxRules)):
        properties = schema["$defs"][model.__name__]["properties"]
        out.extend(((section,), key, _accepted_types(prop)) for key, prop in properties.items())
    return out


FIELDS = _schema_fields()
BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "boolean": st.booleans(),
    "integer": st.integers() | HUGE,
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "string": st.text(max_size=8),
    "array": st.lists(LEAVES, max_size=3),
    "object": st.dictionaries(st.text(max_size=6), LEAVES, max_size=3),
}


@st.composite
def _wrong_type(draw: st.DrawFn) -> tuple[tuple[str, ...], str, Any]:
    section, key, accepted = draw(st.sampled_from(FIELDS))
    wrong = sorted(set(BY_TYPE) - accepted)  # for an integer: floats (3.0 too), booleans, strings...
    if "null" not in accepted and not accepted & {"array", "object"}:
        wrong.append("null")  # null is the default only for an object or a list
    kind = draw(st.sampled_from(wrong))
    return section, key, None if kind == "null" else draw(BY_TYPE[kind])


@FAST
@given(DOCUMENTS, _wrong_type())
def test_a_value_of_the_wrong_json_type_is_refused_and_named(
    document: dict[str, Any], wrong: tuple[tuple[str, ...], str, Any]
) -> None:
    """A string is not an integer, a boolean not an integer, a float not an integer, a list not an object...:
    whatever the key, the error names it."""
    section, key, value = wrong
    target = document
    if section:
        target = document[section[0]] = dict(document.get(section[0]) or {})
    target[key] = value
    try:
        policy_from_json(document)
    except ConfigError as error:
        assert error.code == "POLICY_FILE_INVALID"
        assert key in error.message, error.message
    else:
        raise AssertionError(f"{'.'.join([*section, key])} = {value!r} was accepted")


@FAST
@given(
    st.sampled_from([SnpRules, TdxRules, Policy]), st.dictionaries(st.text(max_size=12), JSON | NOT_JSON, max_size=3)
)
def test_code_building_a_policy_from_junk_gets_a_config_error_only(model: type, kwargs: dict[str, Any]) -> None:
    """Code building a policy (or `dataclasses.replace`) with junk gets ConfigError, never pydantic's exception."""
    try:
        model(**kwargs)
    except ConfigError as error:
        assert error.code == "POLICY_FILE_INVALID" and len(error.message) <= MAX_MESSAGE
