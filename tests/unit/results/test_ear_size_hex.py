"""ear_size.digest decides "even-length lowercase hex" without a regular expression: it must decide exactly as the
rule's expression does, for every string (whitespace, uppercase, odd lengths, non-ASCII digits included)."""

from __future__ import annotations

import hashlib
import re

from hypothesis import example, given
from hypothesis import strategies as st

from verifier.results.ear_size import digest

RULE = re.compile(r"(?:[0-9a-f]{2})+")  # rule 1 of verifier/results/ear_size.py
NEAR_HEX = st.text(alphabet="0123456789abcdefABCDEF \t\n\r\x0b\x0cg\u0660\uff10", max_size=40)


def by_the_rule(value: str) -> str:
    data = bytes.fromhex(value) if RULE.fullmatch(value) else value.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@given(st.one_of(NEAR_HEX, st.text(max_size=40)))
@example("")
@example("0a")
@example("0A")
@example("0a 0b")
@example("0a\n")
@example("abc")
@example("00" * 700)
def test_digest_decides_as_the_rule(value: str) -> None:
    assert digest(value) == by_the_rule(value)
