"""Signed Nitro CBOR has one reading: duplicate keys by decoded value, preferred serialization, only the CDDL types.

Every document here is signed by the fake AWS leaf, so a parser that let it through would go on to verify it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from tests.conftest import manifest_vectors
from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.parse import parse
from verifier.tee.nitro.strict_cbor import decode_strict

NONCE_KEY = cbor2.dumps("nonce")  # 65 6e6f6e6365
NITRO = manifest_vectors("nitro")


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


def _code(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value


def _payload_with(pki: FakeAwsPki, *pairs: bytes, count: bytes | None = None) -> bytes:
    """The default 9-entry payload map (nonce omitted) plus raw encoded key/value pairs, as a definite map."""
    body = cbor2.dumps(pki.payload(nonce=b"first"))
    assert body[0] == 0xA9
    return (count or bytes([0xA9 + len(pairs) // 2])) + body[1:] + b"".join(pairs)


def _pcrs_payload(pki: FakeAwsPki, pcrs: bytes) -> bytes:
    """The default payload with the pcrs value replaced by raw encoded bytes."""
    doc = pki.payload()
    doc["pcrs"] = {}
    body = cbor2.dumps(doc)
    marker = cbor2.dumps("pcrs") + b"\xa0"
    assert body.count(marker) == 1
    return body.replace(marker, cbor2.dumps("pcrs") + pcrs)


# ---- one key written two ways is still one key (RFC 8949 section 5.6) -----------------------------------------


@pytest.mark.parametrize(
    "second_key",
    [
        b"\x78\x05nonce",  # text, length in a 1-byte argument (non-shortest)
        b"\x79\x00\x05nonce",  # text, length in a 2-byte argument
        b"\x7f\x62no\x63nce\xff",  # indefinite-length text in two chunks
        b"\x7f\x65nonce\xff",  # indefinite-length text in one chunk
    ],
    ids=["len1", "len2", "chunked", "one-chunk"],
)
def test_payload_key_repeated_in_another_encoding(pki: FakeAwsPki, second_key: bytes) -> None:
    evidence = pki.mint(payload=_payload_with(pki, second_key, cbor2.dumps(b"second")))
    err = _code(evidence)
    assert (err.code, err.actual) == ("NITRO_CBOR_DUPLICATE_KEY", "'nonce'")


@pytest.mark.parametrize("second_index", [b"\x18\x00", b"\x19\x00\x00", b"\x1a\x00\x00\x00\x00"])
def test_pcr_index_repeated_in_another_encoding(pki: FakeAwsPki, second_index: bytes) -> None:
    pcrs = b"\xa2" + b"\x00" + cbor2.dumps(bytes(48)) + second_index + cbor2.dumps(b"\x01" * 48)
    err = _code(pki.mint(payload=_pcrs_payload(pki, pcrs)))
    assert (err.code, err.actual) == ("NITRO_CBOR_DUPLICATE_KEY", "0")


def test_protected_alg_repeated_in_another_encoding(pki: FakeAwsPki) -> None:
    """{1: -7, 1: -35} with the first 1 written as 18 01: cbor2 kept the last (ES384) and the check saw two keys."""
    protected = b"\xa2" + b"\x18\x01\x26" + b"\x01\x38\x22"
    err = _code(pki.mint(protected_raw=protected))
    assert (err.code, err.actual) == ("NITRO_CBOR_DUPLICATE_KEY", "1")


def test_keys_of_different_types_are_different_keys_but_only_int_and_text_are_allowed(pki: FakeAwsPki) -> None:
    """RFC 8949 5.6.1: 1, "1" and 1.0 are distinct keys. Python merges 1, 1.0 and true, so those are refused."""
    for key in (b"\xf9\x3c\x00", b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", b"\xf5", b"\xc2\x41\x01", b"\x41\x01"):
        pcrs = b"\xa2" + b"\x01" + cbor2.dumps(bytes(48)) + key + cbor2.dumps(b"\x01" * 48)
        err = _code(pki.mint(payload=_pcrs_payload(pki, pcrs)))
        assert err.code == "NITRO_CBOR_KEY_TYPE", key.hex()


def test_text_and_integer_keys_do_not_collide(pki: FakeAwsPki) -> None:
    pcrs = b"\xa2" + b"\x01" + cbor2.dumps(bytes(48)) + cbor2.dumps("1") + cbor2.dumps(b"\x01" * 48)
    assert _code(pki.mint(payload=_pcrs_payload(pki, pcrs))).code == "NITRO_PCR_INDEX"  # "1" is not an index


# ---- preferred serialization of the signed bytes (RFC 8949 section 4.1) ---------------------------------------


@pytest.mark.parametrize(
    ("pair", "count"),
    [
        (b"\x78\x05nonce" + cbor2.dumps(b"n"), None),  # key length not in its shortest form
        (b"\x7f\x65nonce\xff" + cbor2.dumps(b"n"), None),  # indefinite-length key
        (NONCE_KEY + b"\x59\x00\x01n", None),  # value length not in its shortest form
        (NONCE_KEY + b"\x5f\x41n\xff", None),  # indefinite-length byte string value
        (NONCE_KEY + cbor2.dumps(b"n"), b"\xb8\x09"),  # map count 9 in a 1-byte argument
    ],
    ids=["key-length", "key-chunked", "value-length", "value-chunked", "map-count"],
)
def test_non_preferred_payload_encoding_is_rejected(pki: FakeAwsPki, pair: bytes, count: bytes | None) -> None:
    body = cbor2.dumps(pki.payload(nonce=b"x"))
    assert body.endswith(NONCE_KEY + cbor2.dumps(b"x"))
    head = count or b"\xa9"
    payload = head + body[1 : -len(NONCE_KEY + cbor2.dumps(b"x"))] + pair
    err = _code(pki.mint(payload=payload))
    assert err.code == "NITRO_CBOR_NOT_PREFERRED", err.message


def test_non_preferred_integer_in_the_protected_header(pki: FakeAwsPki) -> None:
    assert _code(pki.mint(protected_raw=b"\xa1\x01\x39\x00\x22")).code == "NITRO_CBOR_NOT_PREFERRED"  # -35 in 2 bytes
    assert _code(pki.mint(protected_raw=b"\xa1\x18\x01\x38\x22")).code == "NITRO_CBOR_NOT_PREFERRED"  # label 1 in 2
    assert _code(pki.mint(protected_raw=b"\xb8\x01\x01\x38\x22")).code == "NITRO_CBOR_NOT_PREFERRED"  # count in 2


def test_indefinite_length_payload_map_is_still_accepted(pki: FakeAwsPki) -> None:
    """Documented exception: some producers write the payload map (and arrays) with indefinite length."""
    definite = cbor2.dumps(pki.payload())
    doc = parse(pki.mint(payload=b"\xbf" + definite[1:] + b"\xff")).document
    assert doc == parse(pki.mint()).document
    assert parse(pki.mint(protected_raw=b"\xbf\x01\x38\x22\xff")).cose.protected_header == {1: -35}


def test_unsigned_envelope_may_use_longer_heads(pki: FakeAwsPki) -> None:
    """The envelope is not signed; a longer length head there changes nothing anyone reads."""
    evidence = parse(pki.mint())
    item = b"\x84" + b"\x58" + bytes([len(evidence.cose.protected)]) + evidence.cose.protected + b"\xa0"
    item += b"\x5a" + len(evidence.cose.payload).to_bytes(4, "big") + evidence.cose.payload
    item += b"\x58\x60" + evidence.cose.signature
    assert parse(item).document == evidence.document


# ---- only the types of the AWS CDDL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"\xc2\x46" + (1725719859000).to_bytes(6, "big"),  # tag 2 bignum: cbor2 returned a plain int
        b"\xfb" + bytes(8),  # float 0.0
        b"\xf7",  # undefined
        b"\xf0",  # simple value 16
    ],
    ids=["bignum", "float", "undefined", "simple"],
)
def test_types_outside_the_cddl_are_rejected(pki: FakeAwsPki, value: bytes) -> None:
    body = cbor2.dumps(pki.payload())
    stamp = cbor2.dumps("timestamp") + cbor2.dumps(pki.payload()["timestamp"])
    assert body.count(stamp) == 1
    err = _code(pki.mint(payload=body.replace(stamp, cbor2.dumps("timestamp") + value)))
    assert err.code == "NITRO_CBOR_UNSUPPORTED"


def test_malformed_simple_and_break(pki: FakeAwsPki) -> None:
    body = cbor2.dumps(pki.payload(nonce=None))
    assert body.endswith(NONCE_KEY + b"\xf6")
    assert _code(pki.mint(payload=body[:-1] + b"\xf8\x16")).code == "NITRO_CBOR_INVALID"  # null in two bytes
    assert _code(pki.mint(payload=body[:-1] + b"\xff")).code == "NITRO_CBOR_INVALID"  # break as a value


def test_nonce_null_and_booleans_decode() -> None:
    assert decode_strict(b"\x83\xf4\xf5\xf6", what="t", preferred=True) == [False, True, None]
    assert decode_strict(b"\x9f\x01\x20\xff", what="t", preferred=True) == [1, -1]
    assert decode_strict(b"\x3b" + b"\xff" * 8, what="t", preferred=True) == -(1 << 64)
    with pytest.raises(ParseError) as info:
        decode_strict(b"\x62\xc3\x28", what="t", preferred=True)  # invalid UTF-8
    assert info.value.code == "NITRO_CBOR_INVALID"
    with pytest.raises(ParseError) as info:
        decode_strict(b"\x7f\x41a\xff", what="t", preferred=False)  # byte chunk inside a text string
    assert info.value.code == "NITRO_CBOR_INVALID"


# ---- real documents --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", NITRO, ids=[v["id"] for v in NITRO])
def test_real_documents_are_preferred_and_read_as_cbor2_reads_them(vectors_dir: Path, vector: dict[str, Any]) -> None:
    """AWS hardware writes preferred serialization; the strict reading equals cbor2's reading of the same bytes."""
    cose = parse(Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()).cose
    for signed in (cose.protected, cose.payload):
        assert decode_strict(signed, what="t", preferred=True) == cbor2.loads(signed)
