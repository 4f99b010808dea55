"""Property tests: the strict Nitro CBOR decoder reads what cbor2 writes, and never reads anything else differently."""

from __future__ import annotations

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.errors import ParseError
from verifier.tee.nitro.strict_cbor import decode_strict

FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_subset = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-300, 300), children, max_size=5)
    ),
    max_leaves=30,
)


@FAST
@given(_subset)
def test_round_trips_what_cbor2_writes(value: object) -> None:
    """cbor2 writes preferred serialization with definite lengths, so the strictest mode reads it back."""
    assert decode_strict(cbor2.dumps(value), what="t", preferred=True) == value


@FAST
@given(_subset, st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3))
def test_accepted_mutations_read_as_cbor2_reads_them(value: object, edits: list[tuple[int, int]]) -> None:
    """Differential: whatever the strict decoder accepts, cbor2 decodes to the same value."""
    data = bytearray(cbor2.dumps(value))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    for preferred in (True, False):
        try:
            ours = decode_strict(bytes(data), what="t", preferred=preferred)
        except ParseError as exc:
            assert exc.code.startswith("NITRO_")
            continue
        assert cbor2.loads(bytes(data)) == ours
