"""Property tests: parse() returns NitroEvidence or raises ParseError, whatever the bytes."""

from __future__ import annotations

from pathlib import Path

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _vectors_dir, manifest_vectors
from tests.fakes.aws_pki import FakeAwsPki
from tests.property.profiles import examples
from verifier.errors import ParseError
from verifier.tee.nitro.parse import NitroEvidence, parse

PKI = FakeAwsPki()


def _seeds() -> list[bytes]:
    """The fake document plus every real Nitro vector (when the shared vectors are available)."""
    seeds = [PKI.mint(nonce=b"n", user_data=b"u", public_key=b"k")]
    root = _vectors_dir()
    for vector in manifest_vectors("nitro"):
        if root is not None:
            seeds.append(Path(root, vector["dir"], "evidence.bin").read_bytes())
    return seeds


SEEDS = _seeds()
FAST = settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    try:
        result = parse(data)
    except ParseError as exc:
        assert exc.code.startswith("NITRO_")
        return
    assert isinstance(result, NitroEvidence)


@FAST
@given(st.binary(max_size=512))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif data:
            del data[pos : pos + draw(st.integers(1, 16))]
    return bytes(data)


@FAST
@given(_mutated())
def test_mutated_documents(data: bytes) -> None:
    _check(data)


_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.binary(max_size=64)
    | st.text(max_size=16)
    | st.sampled_from(["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "nonce", "SHA384"])
)
_cbor = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12) | st.integers(-40, 40), children, max_size=6)
        | st.builds(cbor2.CBORTag, st.integers(0, 300), children)
    ),
    max_leaves=40,
)


@FAST
@given(_cbor)
def test_random_cbor_structures(value: object) -> None:
    _check(cbor2.dumps(value))


@FAST
@given(_cbor, _cbor, st.binary(max_size=100))
def test_random_cose_envelopes(header: object, payload: object, signature: bytes) -> None:
    _check(cbor2.dumps([cbor2.dumps(header), {}, cbor2.dumps(payload), signature]))
    _check(cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps({1: -35}), {}, cbor2.dumps(payload), bytes(96)])))


@FAST
@given(st.sampled_from(sorted(PKI.payload())) | st.text(max_size=12), _cbor)
def test_random_field_values(field: str, value: object) -> None:
    """A well-formed fake document with one payload field replaced (or added) by a random CBOR value."""
    payload = PKI.payload()
    payload[field] = value
    _check(PKI.mint(payload=cbor2.dumps(payload)))
