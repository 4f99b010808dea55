"""How a policy that fails validation is described: pydantic's errors become one ConfigError("POLICY_FILE_INVALID")
whose message names the field and what was wrong, in the words of the `Expect` annotation beside the field's type
("p.snp.minimum_build must be a JSON integer 0..255, not 3.0"), bounded in length. Used by the policy model
(`policy_model`, code building a policy) and the JSON codec (`policy_json`); pydantic's own exception never leaves
them."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..errors import ConfigError

INVALID = "POLICY_FILE_INVALID"
MAX_MESSAGE = 300  # characters of a message (a policy id or a list of unknown keys can be long)
MAX_SHOWN = 60  # characters of a value shown in a message
MAX_LABEL = 100  # characters of a policy id starting a message
MAX_DEPTH = 32  # nesting of a JSON value (a policy needs 4)
MAX_INT_BITS = 12_000  # about 3600 digits, below what the JSON parser reads (4300)
UNKNOWN_KEY = frozenset({"unexpected_keyword_argument", "extra_forbidden"})


@dataclass(frozen=True)
class Expect:
    """What a value must be, for the message of a value of the wrong type or out of bounds. `template` names
    {path} (where the value is: "p.snp.minimum_build"), {id} (the policy id), {text}, {shown} (the value as JSON,
    at most 60 characters, or its Python type name), {parent} and {key} (the path above the value and its key).
    `only`: the pydantic error types it describes (None: every type); an error it does not describe is described
    by an `Expect` further out (on the list around an item, on the field around its type)."""

    text: str = ""
    template: str = "{path} must be {text}, not {shown}"
    only: frozenset[str] | None = None


@dataclass(frozen=True)
class CodeOnly:
    """Marks a field only code may set: a JSON document naming it is refused as naming an unknown key."""


def rule(text: str, *, scope: str = "policy") -> PydanticCustomError:
    """A broken domain or document rule, to raise from a validator. Its message is the policy id (scope "policy")
    or the path of the value (scope "field") followed by `text`."""
    return PydanticCustomError("policy_rule", "{text}", {"text": text, "scope": scope})


def label(policy_id: str) -> str:
    """`policy_id` as the start of a message: at most MAX_LABEL characters, a lone surrogate escaped."""
    text = policy_id.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 3] + "..."


def config_error(
    exc: ValidationError, root: type, prefix: str, document: Any = None, *, expects: bool = True
) -> ConfigError:
    """ConfigError(POLICY_FILE_INVALID) for the first error of `exc`, raised validating `root` (a policy model
    class). `prefix` starts every path (the policy id, or the class name for code); `document` is the JSON value
    validated, if any, to show a whole list rather than its bad item; `expects`: describe a wrong type or bound in
    the JSON terms of the `Expect` annotations (else in pydantic's, for code). Never raises."""
    errors = exc.errors(include_url=False)
    if not errors:
        return ConfigError(INVALID, f"{prefix}: invalid"[:MAX_MESSAGE])
    first = errors[0]
    return ConfigError(INVALID, describe(first, root, prefix, document, expects=expects))


def describe(error: Mapping[str, Any], root: type, prefix: str, document: Any = None, *, expects: bool = True) -> str:
    """The message of one pydantic error (its "type", "loc", "input", "msg", "ctx"), at most MAX_MESSAGE
    characters (`config_error` says what the arguments are). Never raises."""
    loc = tuple(error.get("loc", ()))
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "policy_rule":
        start = prefix if ctx.get("scope") == "policy" else _path(prefix, loc)
        return f"{start}{ctx.get('text', '')}"[:MAX_MESSAGE]
    if kind in UNKNOWN_KEY and loc:
        return f"{_path(prefix, loc[:-1])}: unknown keys {[str(loc[-1])]}"[:MAX_MESSAGE]
    found = _expect(root, loc, kind) if expects else None
    if found is None:
        return f"{_path(prefix, loc)}: {error.get('msg', 'invalid')}"[:MAX_MESSAGE]
    expect, depth = found
    at = loc[:depth]
    value = error.get("input") if depth == len(loc) or document is None else _value_at(document, at, error.get("input"))
    message = expect.template.format(
        path=_path(prefix, at),
        id=prefix,
        text=expect.text,
        shown=shown(value),
        parent=_path(prefix, at[:-1]),
        key=str(at[-1]) if at else "",
    )
    return message[:MAX_MESSAGE]


def shown(value: Any) -> str:
    """`value` as JSON (at most MAX_SHOWN characters), or its Python type name when JSON cannot represent it."""
    return json.dumps(value)[:MAX_SHOWN] if jsonable(value) else type(value).__name__


def json_value(value: Any, depth: int = 0) -> bool:
    """Whether `value` is a JSON value pydantic's JSON parser reads back as written: null, booleans, integers of at
    most MAX_INT_BITS bits, finite floats, UTF-8 encodable strings (no lone surrogate), lists and objects with such
    keys, at most MAX_DEPTH deep (so no cycle). Never raises."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int):
        return value.bit_length() <= MAX_INT_BITS
    if isinstance(value, list | tuple):
        return all(json_value(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _text(k) and json_value(v, depth + 1) for k, v in value.items())
    return False


def _text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def jsonable(value: Any) -> bool:
    """Whether JSON can represent `value` (no NaN, no infinity, no cycle, no set or bytes). Never raises."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def json_key(name: str, info: FieldInfo) -> str:
    """The JSON key of the model field `name` (its validation alias, e.g. "id" for policy_id)."""
    return info.validation_alias if isinstance(info.validation_alias, str) else name


def fields_of(model: Any) -> dict[str, FieldInfo] | None:
    """The fields of a pydantic dataclass by JSON key, or None when `model` is not one."""
    fields = getattr(model, "__pydantic_fields__", None) if isinstance(model, type) else None
    if not isinstance(fields, dict):
        return None
    return {json_key(name, info): info for name, info in fields.items()}


def unwrap(tp: Any, found: list[Any] | None = None) -> Any:
    """`tp` without Annotated[...] and without `| None`, appending the Annotated metadata to `found`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *metadata = get_args(tp)
            if found is not None:
                found.extend(metadata)
        elif origin in (Union, UnionType):
            arms = [arm for arm in get_args(tp) if arm is not type(None)]
            if len(arms) != 1:
                return tp
            tp = arms[0]
        else:
            return tp


def _expect(root: type, loc: tuple[Any, ...], kind: str) -> tuple[Expect, int] | None:
    """The innermost `Expect` along `loc` that describes errors of type `kind`, and the depth it is at."""
    found: list[tuple[int, Expect]] = []

    def at(depth: int, tp: Any) -> Any:
        metadata: list[Any] = []
        core = unwrap(tp, metadata)
        found.extend((depth, m) for m in metadata if isinstance(m, Expect))
        return core

    tp: Any = root
    for depth, part in enumerate(loc):
        tp = at(depth, tp)
        fields = fields_of(tp)
        args = get_args(tp)
        if fields is not None:
            # a loc names the JSON key ("id") from JSON, the attribute ("policy_id") from code
            info = fields.get(str(part)) or getattr(tp, "__pydantic_fields__", {}).get(part)
            if info is None:
                break
            found.extend((depth + 1, m) for m in info.metadata if isinstance(m, Expect))
            tp = info.annotation
        elif get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
            tp = args[0]
        elif get_origin(tp) is tuple and isinstance(part, int) and 0 <= part < len(args):
            tp = args[part]
        elif get_origin(tp) in (Mapping, dict) and len(args) == 2:
            tp = args[1]
        else:
            break
    else:
        at(len(loc), tp)
    for depth, expect in sorted(found, key=lambda item: -item[0]):  # stable: declaration order within a depth
        if expect.only is None or kind in expect.only:
            return expect, depth
    return None


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    """The dotted path of `loc` after `prefix` ("p.snp.allowed_chip_ids"); list positions are left out (the message
    shows the whole list or the bad item)."""
    return ".".join([prefix, *(str(part) for part in loc if not isinstance(part, int))])


def _value_at(document: Any, loc: tuple[Any, ...], default: Any) -> Any:
    value = document
    for part in loc:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
            value = value[part]
        else:
            return default
    return value
