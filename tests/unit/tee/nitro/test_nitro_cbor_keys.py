"""Duplicate CBOR map keys are rejected (RFC 8949 section 5.6), also inside nested maps and indefinite maps."""

from __future__ import annotations

import cbor2
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.parse import parse
from verifier.tee.nitro.strict_cbor import decode_strict


def _with_duplicate_field(pki: FakeAwsPki, key: str, value: object) -> bytes:
    body = cbor2.dumps(pki.payload(nonce=b"first"))
    assert body[0] == 0xA9  # a definite map of 9 entries
    return bytes([0xAA]) + body[1:] + cbor2.dumps(key) + cbor2.dumps(value)


def _decode(data: bytes, preferred: bool = True) -> object:
    return decode_strict(data, what="test", preferred=preferred)


def test_duplicate_payload_field_is_rejected_even_when_signed() -> None:
    pki = FakeAwsPki()
    evidence = pki.mint(payload=_with_duplicate_field(pki, "nonce", b"second"))
    with pytest.raises(ParseError) as info:
        parse(evidence)
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"
    assert (info.value.expected, info.value.actual) == ("each key once", "'nonce'")


def test_duplicate_pcr_index_in_nested_map() -> None:
    pcrs = cbor2.dumps({0: b"\x00" * 48, 1: b"\x01" * 48})
    duplicated = bytes([0xA3]) + pcrs[1:] + cbor2.dumps(0) + cbor2.dumps(b"\x02" * 48)
    with pytest.raises(ParseError) as info:
        _decode(cbor2.dumps({"pcrs": 0})[:-1] + duplicated)
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"


def test_indefinite_maps_and_strings_are_walked() -> None:
    ok = b"\xbf" + cbor2.dumps("a") + b"\x5f\x41x\x41y\xff" + cbor2.dumps("b") + b"\x9f\x01\x02\xff" + b"\xff"
    assert _decode(ok, preferred=False) == {"a": b"xy", "b": [1, 2]}
    dup = b"\xbf" + cbor2.dumps("a") + b"\x01" + cbor2.dumps("a") + b"\x02" + b"\xff"
    with pytest.raises(ParseError) as info:
        _decode(dup)
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"


def test_duplicate_is_reported_before_a_non_preferred_encoding() -> None:
    with pytest.raises(ParseError) as info:
        _decode(b"\xa2\x61a\x01\x78\x01a\x02")  # "a" and "a" with a 1-byte length head
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"
    with pytest.raises(ParseError) as info:
        _decode(b"\xa2\x61a\x01\x78\x01b\x02")
    assert (info.value.code, info.value.actual) == ("NITRO_CBOR_NOT_PREFERRED", "offset 4")


def test_real_shapes_pass() -> None:
    value = {"x": [1, 2, {3: b"4"}], "y": [b"", {}, b"", b""], "z": None, -7: "t"}
    assert _decode(cbor2.dumps(value)) == value


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xa1\x01", "NITRO_CBOR_TRUNCATED"),
        (b"\x9f\x01", "NITRO_CBOR_TRUNCATED"),
        (b"\xbf\x01\x02", "NITRO_CBOR_TRUNCATED"),
        (b"\x5f\x41", "NITRO_CBOR_TRUNCATED"),
        (b"\xb9\xff\xff", "NITRO_CBOR_TRUNCATED"),
        (b"\x1c", "NITRO_CBOR_INVALID"),
        (b"\x1f", "NITRO_CBOR_INVALID"),
        (b"\xdf", "NITRO_CBOR_INVALID"),
        (b"\x5f\x9f\xff\xff", "NITRO_CBOR_INVALID"),
        (b"\x5f\x5f\xff\xff", "NITRO_CBOR_INVALID"),
        (b"\x81" * 17 + b"\x00", "NITRO_CBOR_INVALID"),
        (b"\x00\x00", "NITRO_TRAILING_BYTES"),
        (b"\xa1\xa0\x00", "NITRO_CBOR_KEY_TYPE"),
        (b"\xa1\x80\x00", "NITRO_CBOR_KEY_TYPE"),
        (b"\xa1\xf6\x00", "NITRO_CBOR_KEY_TYPE"),
        (b"\xd8\x18\x41\x00", "NITRO_CBOR_UNSUPPORTED"),
    ],
)
def test_not_well_formed_or_outside_the_subset(data: bytes, code: str) -> None:
    with pytest.raises(ParseError) as info:
        _decode(data, preferred=False)
    assert info.value.code == code


def test_nesting_at_the_limit_decodes() -> None:
    assert _decode(b"\x81" * 16 + b"\x00") == [[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]


def test_map_announcing_more_pairs_than_it_has() -> None:
    """Found by the property test: the key-type peek ran past the end of a short definite map."""
    with pytest.raises(ParseError) as info:
        _decode(b"\xa2\x62\x30\x30\xf6")
    assert info.value.code == "NITRO_CBOR_TRUNCATED"
