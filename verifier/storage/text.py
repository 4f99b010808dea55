"""Text that every backend can store and read back: PostgreSQL `text` (and `jsonb`) cannot hold U+0000, and a
lone surrogate (U+D800..U+DFFF, which `json.loads` makes from "\\ud800") cannot be encoded as UTF-8 at all.

Evidence-derived text (a Nitro module_id, a finding's actual value, a workload description) may carry either, so
the repositories pass what they write through `storable` / `storable_json`: U+0000 becomes U+2400 SYMBOL FOR NULL
("␀", visible in every listing) and a lone surrogate becomes U+FFFD; everything else is kept as it was. The same
replacement on SQLite and PostgreSQL keeps the audit hash chain identical on both."""

from __future__ import annotations

import re
from typing import Any

NUL_REPLACEMENT = "\u2400"
SURROGATE_REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(value: str, limit: int | None = None) -> str:
    """`value` with U+0000 and lone surrogates replaced, cut to `limit` characters (the column's length)."""
    if "\x00" in value:
        value = value.replace("\x00", NUL_REPLACEMENT)
    if not value.isascii() and _SURROGATE.search(value):  # ASCII text (nearly all of it) has no surrogate
        value = _SURROGATE.sub(SURROGATE_REPLACEMENT, value)
    return value if limit is None else value[:limit]


def storable_optional(value: str | None, limit: int | None = None) -> str | None:
    return None if value is None else storable(value, limit)


def storable_json(value: Any) -> Any:
    """A JSON-shaped value (dicts, lists, scalars) with every string, keys included, made `storable`."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(k) if isinstance(k, str) else k: storable_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable_json(v) for v in value]
    return value
