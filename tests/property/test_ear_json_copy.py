"""`ear_size.compact` and `ear_size.detached` copy an appraisal's claims for its EAR in one walk: each must give
exactly what the JSON round trip they replace gave (`json.loads(json.dumps(value, allow_nan=False))`, then size
rule 1 for `compact`), and fail exactly where `json.dumps` fails. Drawn values mix what claims hold (dicts, lists,
text long and short, hex, integers, floats, booleans, None) with what JSON turns into something else (tuples, int,
float, bool and None keys, str and int subclasses) and what it refuses (bytes, sets, NaN, objects)."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.profiles import examples
from verifier.results import ear_size
from verifier.results.ear_size import LONG, compact, detached


class Label(str):
    pass


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 7


def _rule_one(value: Any) -> Any:
    """Rule 1 on a JSON round-tripped value, as `compact` was written before it copied (the reference)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, str) and len(item) > LONG and not key.endswith("_sha256"):
                out[f"{key}_sha256"] = ear_size.digest(item)
            else:
                out[key] = _rule_one(item)
        return out
    if isinstance(value, list):
        return [f"sha256:{ear_size.digest(v)}" if isinstance(v, str) and len(v) > LONG else _rule_one(v) for v in value]
    return value


TEXT = st.one_of(
    st.text(max_size=8),
    st.text(alphabet="0123456789abcdef", min_size=LONG - 2, max_size=LONG + 4),
    st.text(min_size=LONG, max_size=LONG + 3),
    st.builds(Label, st.text(max_size=LONG + 3)),
)
SCALARS = st.one_of(
    TEXT,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.sampled_from(list(Level)),
)
ODD = st.one_of(st.binary(max_size=4), st.just(math.nan), st.just(math.inf), st.frozensets(st.integers(), max_size=2))
KEYS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["pcrs", "nonce", "nonce_sha256", "user_data"]),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)


def _values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(KEYS, inner, max_size=4),
        ),
        max_leaves=12,
    )


def _typed(value: Any) -> Any:
    """`value` with every dict, list and scalar tagged by its exact type (an IntEnum is not an int here)."""
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_typed(v) for v in value])
    return (type(value).__name__, value)


def _round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@settings(max_examples=examples(400))
@given(_values(SCALARS))
def test_copies_equal_the_json_round_trip(value: Any) -> None:
    expected = _round_trip(value)
    assert detached(value) == expected
    assert compact(value) == _rule_one(expected)
    # the same key order and exact types too (plain str, int, float, list and dict, as JSON gives them)
    assert _typed(detached(value)) == _typed(expected)
    assert _typed(compact(value)) == _typed(_rule_one(expected))


@settings(max_examples=examples(300))
@given(_values(st.one_of(SCALARS, ODD)))
def test_copies_fail_where_json_fails(value: Any) -> None:
    try:
        expected = _round_trip(value)
    except (TypeError, ValueError) as error:
        with pytest.raises(type(error)):
            detached(value)
        with pytest.raises(type(error)):
            compact(value)
    else:
        assert detached(value) == expected


def test_a_copy_shares_nothing_with_the_claims() -> None:
    claims: dict[str, Any] = {"pcrs": {"0": "00" * 48}, "list": [[1], {"a": 2}]}
    for copy in (detached(claims), compact(claims)):
        copy["pcrs"]["0"] = "changed"
        copy["list"][0].append(9)
        copy["list"][1]["b"] = 3
    assert claims == {"pcrs": {"0": "00" * 48}, "list": [[1], {"a": 2}]}


def test_a_cycle_is_refused() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError):
        json.dumps(cycle)
    with pytest.raises(RecursionError):
        detached(cycle)
