"""What a refused policy document's message says (appraisal/policy_errors.py, as policy_json uses it) against mutants
scripts/mutation.py left alive after issue 12's pydantic models.

An admin who sends a bad policy (`verifier policy set`, a `--policy-file` entry, a manifest's inline policy) gets
ConfigError("POLICY_FILE_INVALID") and nothing else: the message is all they have to find the mistake (the CLI
prints it, a gRPC client gets it as the request error, logs carry it), so it must be bounded and JSON-safe. Pinned
here, each at its bound: the policy id starts the message whole up to MAX_LABEL characters; an item of a list is
shown with its whole list; a value JSON cannot represent (NaN, infinity, a cycle) is shown by its Python type name,
never as `NaN` and never as a crash; a lone-surrogate id is refused as not UTF-8 with the id escaped; what still
counts as JSON (MAX_DEPTH nesting, MAX_INT_BITS integers) is described at the key inside it, one step past at the
field."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from verifier.appraisal.policy import policy_from_json
from verifier.appraisal.policy_errors import MAX_DEPTH, MAX_INT_BITS, MAX_LABEL, MAX_MESSAGE
from verifier.errors import ConfigError


def _message(entry: Any) -> str:
    """The message of the ConfigError(POLICY_FILE_INVALID) refusing `entry` (any other outcome fails), checked
    bounded and JSON-safe (encodable as UTF-8, so a log line, a gRPC detail or a database row can carry it)."""
    with pytest.raises(ConfigError) as error:
        policy_from_json(entry)
    assert error.value.code == "POLICY_FILE_INVALID"
    message = error.value.message
    assert 0 < len(message) <= MAX_MESSAGE
    message.encode("utf-8")
    assert json.loads(json.dumps(message)) == message
    return message


def _nested(levels: int, leaf: Any = "a") -> Any:
    """`leaf` inside `levels` lists."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# --- the policy id that starts every message ----------------------------------------------------------------------


def test_an_id_of_max_label_characters_starts_the_message_whole() -> None:
    whole = "p" * MAX_LABEL
    assert _message({"id": whole, "bogus": 1}) == f"{whole}: unknown keys ['bogus']"
    assert _message({"id": whole, "snp": {"allowed_vmpls": [9]}}).startswith(f"{whole}.snp.allowed_vmpls must be")
    longer = "p" * (MAX_LABEL + 1)
    assert _message({"id": longer, "bogus": 1}) == f"{'p' * (MAX_LABEL - 3)}...: unknown keys ['bogus']"


@pytest.mark.parametrize("policy_id", ["\udc80", "a\ud800b"], ids=["lone-low", "lone-high-inside"])
def test_an_id_with_a_lone_surrogate_is_refused_as_not_utf8(policy_id: str) -> None:
    """An id with no UTF-8 form (PostgreSQL, tokens and logs cannot carry it) is refused by its own key, in the
    words of its annotation, with the id escaped in the message; whatever else is wrong comes after."""
    escaped = policy_id.encode("utf-8", "backslashreplace").decode()
    message = _message({"id": policy_id, "snp": {"allowed_vmpls": [9]}})
    assert message == f'{escaped}.id must be a non-empty UTF-8 string, not "{escaped}"'


# --- a bad item is shown with its whole list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"id": "p", "snp": {"allowed_vmpls": [0, 7]}},
            "p.snp.allowed_vmpls must be a list of JSON integers 0..3, not [0, 7]",
            id="vmpl-out-of-range",
        ),
        pytest.param(
            {"id": "p", "snp": {"allowed_vmpls": (0, "3")}},
            'p.snp.allowed_vmpls must be a list of JSON integers 0..3, not [0, "3"]',
            id="vmpl-a-string-in-a-tuple",
        ),
        pytest.param(
            {"id": "p", "snp": {"minimum_firmware": [1, 300]}},
            "p.snp.minimum_firmware must be a list of JSON integers 0..255, not [1, 300]",
            id="firmware-minor",
        ),
        pytest.param(
            {"id": "p", "required_kinds": {"snp": ["snp.host_data", 5]}},
            'p.required_kinds.snp must be a list of strings, not ["snp.host_data", 5]',
            id="kind-not-a-string",
        ),
        pytest.param(
            {"id": "p", "tdx": {"advisory_deny": ["INTEL-SA-00837", None]}},
            'p.tdx.advisory_deny must be a list of strings, not ["INTEL-SA-00837", null]',
            id="advisory-null",
        ),
    ],
)
def test_a_bad_item_is_shown_with_its_whole_list(entry: dict[str, Any], message: str) -> None:
    """The key's path and the list as written: "not 7" alone would not tell which of the VMPLs was meant."""
    assert _message(entry) == message


# --- values JSON cannot represent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "shown"),
    [
        pytest.param((), "require_nonce", math.nan, "float", id="nan"),
        pytest.param(("snp",), "minimum_build", math.inf, "float", id="infinity"),
        pytest.param(("tdx",), "grace_days", -math.inf, "float", id="minus-infinity"),
        pytest.param(("snp",), "allowed_vmpls", [1, math.inf], "list", id="infinity-in-a-list"),
        pytest.param((), "required_kinds", {"snp": [math.nan]}, "dict", id="nan-in-a-mapping"),
    ],
)
def test_nan_and_infinity_are_shown_by_their_type_name(
    section: tuple[str, ...], key: str, value: Any, shown: str
) -> None:
    """JSON has no NaN or infinity: the message names the Python type, never `NaN` or `Infinity` (which a strict
    JSON reader of the message's context, or an admin, would take for a value)."""
    entry: dict[str, Any] = {"id": "p"}
    target = entry
    for part in section:
        target = target.setdefault(part, {})
    target[key] = value
    message = _message(entry)
    assert message.startswith(".".join(["p", *section, key]) + " must be "), message
    assert message.endswith(f", not {shown}"), message
    assert "NaN" not in message and "Infinity" not in message


def test_a_cyclic_value_is_refused_not_a_crash() -> None:
    """A Python caller's self-containing list or dict is no JSON value: POLICY_FILE_INVALID naming its type, not the
    ValueError json.dumps would raise on it."""
    loop: list[Any] = []
    loop.append(loop)
    assert (
        _message({"id": "p", "require_nonce": loop})
        == "p.require_nonce must be a JSON boolean (true or false), not list"
    )
    ring: dict[str, Any] = {}
    ring["snp"] = ring
    assert _message({"id": "p", "required_kinds": ring}) == "p.required_kinds must be a JSON object, not dict"
    assert (
        _message({"id": "p", "tdx": {"advisory_deny": [loop]}})
        == "p.tdx.advisory_deny must be a list of strings, not list"
    )


# --- the bounds of what counts as JSON: at the bound the key inside is named, past it the field -------------------


def test_nesting_up_to_max_depth_is_json_and_named_at_its_key() -> None:
    """required_kinds (depth 0) -> "snp" (1) -> lists ... -> the leaf at depth MAX_DEPTH: still JSON, so the message
    is about required_kinds.snp; one level more and the whole value is not JSON (refused at required_kinds)."""
    at_bound = _message({"id": "p", "required_kinds": {"snp": _nested(MAX_DEPTH - 1)}})
    assert at_bound.startswith("p.required_kinds.snp must be a list of strings, not [[[["), at_bound
    past = _message({"id": "p", "required_kinds": {"snp": _nested(MAX_DEPTH)}})
    assert past.startswith('p.required_kinds must be a JSON object, not {"snp": [[[['), past
    statuses = _message({"id": "p", "tdx": {"accepted_statuses": {"UpToDate": _nested(MAX_DEPTH - 1)}}})
    assert statuses.startswith("p.tdx.accepted_statuses: UpToDate -> [[[["), statuses


def test_integers_up_to_max_int_bits_are_json_and_named_at_their_key() -> None:
    widest = 2 ** (MAX_INT_BITS - 1)  # MAX_INT_BITS bits: what the JSON parser still reads back as written
    assert widest.bit_length() == MAX_INT_BITS
    digits = str(widest)
    at_bound = _message({"id": "p", "required_kinds": {"snp": [widest]}})
    assert at_bound.startswith(f"p.required_kinds.snp must be a list of strings, not [{digits[:20]}"), at_bound
    statuses = _message({"id": "p", "tdx": {"accepted_statuses": {"UpToDate": widest}}})
    assert statuses.startswith(f"p.tdx.accepted_statuses: UpToDate -> {digits[:20]}"), statuses
    past = _message({"id": "p", "required_kinds": {"snp": [widest * 2]}})
    assert past.startswith('p.required_kinds must be a JSON object, not {"snp": ['), past
