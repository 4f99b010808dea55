"""Duplicate CBOR map keys are rejected (RFC 8949 section 5.6), also inside nested maps and indefinite maps."""

from __future__ import annotations

import cbor2
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.cbor_keys import check_unique_keys
from verifier.tee.nitro.parse import parse


def _with_duplicate_field(pki: FakeAwsPki, key: str, value: object) -> bytes:
    body = cbor2.dumps(pki.payload(nonce=b"first"))
    assert body[0] == 0xA9  # a definite map of 9 entries
    return bytes([0xAA]) + body[1:] + cbor2.dumps(key) + cbor2.dumps(value)


def test_duplicate_payload_field_is_rejected_even_when_signed() -> None:
    pki = FakeAwsPki()
    evidence = pki.mint(payload=_with_duplicate_field(pki, "nonce", b"second"))
    with pytest.raises(ParseError) as info:
        parse(evidence)
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"
    assert info.value.actual == cbor2.dumps("nonce").hex()


def test_duplicate_pcr_index_in_nested_map() -> None:
    pcrs = cbor2.dumps({0: b"\x00" * 48, 1: b"\x01" * 48})
    duplicated = bytes([0xA3]) + pcrs[1:] + cbor2.dumps(0) + cbor2.dumps(b"\x02" * 48)
    with pytest.raises(ParseError) as info:
        check_unique_keys(cbor2.dumps({"pcrs": 0})[:-1] + duplicated, what="test")
    assert info.value.code == "NITRO_CBOR_DUPLICATE_KEY"


def test_indefinite_maps_and_strings_are_walked() -> None:
    ok = b"\xbf" + cbor2.dumps("a") + b"\x5f\x41x\x41y\xff" + cbor2.dumps("b") + b"\x9f\x01\x02\xff" + b"\xff"
    check_unique_keys(ok, what="test")
    dup = b"\xbf" + cbor2.dumps("a") + b"\x01" + cbor2.dumps("a") + b"\x02" + b"\xff"
    with pytest.raises(ParseError):
        check_unique_keys(dup, what="test")


def test_real_shapes_pass() -> None:
    check_unique_keys(cbor2.dumps({"x": [1, 2, {3: b"4"}], "y": cbor2.CBORTag(18, [b"", {}, b"", b""])}), what="t")
