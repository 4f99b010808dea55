"""Issue 16, Nitro parsers: every bound pinned on both sides (largest accepted, smallest refused, with its code).

Bounds are the AWS ones (aws-nitro-enclaves-nsm-api docs/attestation_process.md 2.2 CDDL and 3.2.2: PCR map of
1..32 entries, index 0..31, cabundle entries of 1..1024 bytes, timestamp > 0) plus this project's own caps
(cabundle of at most 8, module_id of at most 256 characters, timestamps up to year 9999). Documents are minted by
the fake AWS PKI; the CBOR decoder and the tag reader are also driven with hand-built bytes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.claims import claims
from verifier.tee.nitro.cose import _read_tag, parse_cose_sign1
from verifier.tee.nitro.document import (
    MAX_CABUNDLE,
    MAX_CERT_BYTES,
    MAX_MODULE_ID_CHARS,
    MAX_PCR_INDEX,
    MAX_TIMESTAMP_MS,
)
from verifier.tee.nitro.parse import NitroEvidence, parse
from verifier.tee.nitro.strict_cbor import decode_strict


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.fixture(scope="module")
def untagged(pki: FakeAwsPki) -> bytes:
    return pki.mint()


def _error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value


def _decode_error(data: bytes, *, preferred: bool = True) -> ParseError:
    with pytest.raises(ParseError) as info:
        decode_strict(data, what="t", preferred=preferred)
    return info.value


def _pcrs(*indexes: int) -> dict[int, bytes]:
    return {i: bytes([i]) * 48 for i in indexes}


# ---- the tag in front of the COSE_Sign1 array (cose._read_tag) ---------------------------------------------------


def test_the_longest_tag_head_is_read(pki: FakeAwsPki, untagged: bytes) -> None:
    """Additional information 27 (an 8-byte tag number) is a valid head: tag 18 written that way is COSE_Sign1."""
    evidence = parse(b"\xdb" + (18).to_bytes(8, "big") + untagged)
    assert evidence.cose.tagged and evidence.document == parse(untagged).document
    assert _error(b"\xdb" + (17).to_bytes(8, "big") + untagged).code == "NITRO_COSE_TAG"


@pytest.mark.parametrize("first", [0xDC, 0xDD, 0xDE, 0xDF], ids=["info28", "info29", "info30", "info31-indefinite"])
def test_reserved_tag_heads_are_invalid(untagged: bytes, first: int) -> None:
    """Additional information 28..31 is not a tag head (RFC 8949 section 3): invalid, never read as a long tag."""
    err = _error(bytes([first]) + untagged)
    assert err.code == "NITRO_CBOR_INVALID" and err.actual == f"{first:02x}"
    assert _error(bytes([first])).code == "NITRO_CBOR_INVALID"


@pytest.mark.parametrize(
    ("head", "width"),
    [(b"\xd8", 1), (b"\xd9", 2), (b"\xda", 4), (b"\xdb", 8)],
    ids=["1-byte", "2-byte", "4-byte", "8-byte"],
)
def test_tag_head_that_ends_the_data(head: bytes, width: int) -> None:
    """A tag head exactly as long as the data is read (its number decides); one byte shorter is truncated."""
    assert _read_tag(head + (17).to_bytes(width, "big")) == (17, 1 + width)
    assert _read_tag(head + (18).to_bytes(width, "big")) == (18, 1 + width)
    assert _error(head + (17).to_bytes(width, "big")).code == "NITRO_COSE_TAG"  # COSE_Mac0, refused by number
    assert _error(head + (18).to_bytes(width, "big")).code == "NITRO_CBOR_TRUNCATED"  # no array after it
    short = _error(head + bytes(width - 1))
    assert short.code == "NITRO_CBOR_TRUNCATED" and "tag header" in short.message


# ---- the protected header must be a map with integer labels -------------------------------------------------------


@pytest.mark.parametrize(
    "protected",
    [{1: -35, "x": 0}, {1: -35, "1": -35}, {"1": -35}],
    ids=["extra-text-label", "alg-also-as-text", "only-text"],
)
def test_protected_header_with_a_text_label_is_malformed(pki: FakeAwsPki, protected: dict[Any, Any]) -> None:
    """Signed and otherwise fine (alg ES384, no crit): a text label alone makes the header malformed."""
    assert _error(pki.mint(protected=protected)).code == "NITRO_COSE_MALFORMED"


def test_protected_header_with_integer_labels_only_parses(pki: FakeAwsPki) -> None:
    assert parse(pki.mint(protected={1: -35, 99: "x"})).cose.protected_header == {1: -35, 99: "x"}


# ---- payload bounds (document.py) -----------------------------------------------------------------------------


def _doc(pki: FakeAwsPki, **overrides: Any) -> NitroEvidence:
    return parse(pki.mint(**overrides))


def test_pcr_map_of_32_entries_is_the_largest(pki: FakeAwsPki) -> None:
    assert MAX_PCR_INDEX + 1 == 32
    doc = _doc(pki, pcrs=_pcrs(*range(32))).document
    assert [i for i, _ in doc.pcrs] == list(range(32)) and doc.pcr(31) == bytes([31]) * 48
    assert _doc(pki, pcrs=_pcrs(7)).document.pcrs == ((7, bytes([7]) * 48),)  # and 1 the smallest
    err = _error(pki.mint(pcrs=_pcrs(*range(33))))
    assert (err.code, err.actual) == ("NITRO_FIELD_TOO_LARGE", "33")
    assert _error(pki.mint(pcrs={})).code == "NITRO_FIELD_TOO_LARGE"


@pytest.mark.parametrize(("index", "ok"), [(0, True), (31, True), (32, False), (-1, False)])
def test_pcr_index_bounds(pki: FakeAwsPki, index: int, ok: bool) -> None:
    """CDDL index = 0..31 (3.2.2: pcrIdx in [0, 32))."""
    if ok:
        assert _doc(pki, pcrs=_pcrs(0, index)).document.pcr(index) == bytes([index]) * 48
    else:
        err = _error(pki.mint(pcrs={0: bytes(48), index: bytes(48)}))
        assert (err.code, err.actual) == ("NITRO_PCR_INDEX", str(index))


def test_cabundle_of_8_is_the_largest(pki: FakeAwsPki) -> None:
    assert MAX_CABUNDLE == 8
    bundle = [bytes([0x30, i]) for i in range(8)]
    assert _doc(pki, cabundle=bundle).document.cabundle == tuple(bundle)
    assert _doc(pki, cabundle=bundle[:1]).document.cabundle == (bundle[0],)
    err = _error(pki.mint(cabundle=[*bundle, b"\x30\x08"]))
    assert (err.code, err.actual) == ("NITRO_CABUNDLE_INVALID", "9")


@pytest.mark.parametrize(
    ("size", "ok"),
    [(1, True), (MAX_CERT_BYTES, True), (0, False), (MAX_CERT_BYTES + 1, False)],
    ids=["1", "1024", "0", "1025"],
)
def test_cabundle_entry_size_bounds(pki: FakeAwsPki, size: int, ok: bool) -> None:
    """CDDL cert = bytes .size (1..1024), for every entry (here the last of two)."""
    assert MAX_CERT_BYTES == 1024
    bundle = [b"\x30\x00", b"\x30" * size]
    if ok:
        assert _doc(pki, cabundle=bundle).document.cabundle[1] == b"\x30" * size
    else:
        err = _error(pki.mint(cabundle=bundle))
        assert (err.code, err.actual) == ("NITRO_CABUNDLE_INVALID", str(size))
        assert "cabundle[1]" in err.message


@pytest.mark.parametrize(
    ("module_id", "ok"),
    [
        ("m" * MAX_MODULE_ID_CHARS, True),
        ("\u00e9" * MAX_MODULE_ID_CHARS, True),  # 512 UTF-8 bytes: the bound counts characters
        ("m" * (MAX_MODULE_ID_CHARS + 1), False),
    ],
    ids=["256-ascii", "256-two-byte-chars", "257"],
)
def test_module_id_length_bound(pki: FakeAwsPki, module_id: str, ok: bool) -> None:
    assert MAX_MODULE_ID_CHARS == 256
    if ok:
        assert _doc(pki, module_id=module_id).document.module_id == module_id
    else:
        err = _error(pki.mint(module_id=module_id))
        assert (err.code, err.actual) == ("NITRO_FIELD_TOO_LARGE", "257")


@pytest.mark.parametrize(
    ("timestamp", "ok"),
    [(1, True), (MAX_TIMESTAMP_MS, True), (0, False), (MAX_TIMESTAMP_MS + 1, False)],
    ids=["1", "max", "0", "max+1"],
)
def test_timestamp_bounds(pki: FakeAwsPki, timestamp: int, ok: bool) -> None:
    """3.2.2: timestamp > 0; this project: at most 9999-12-31T23:59:59.999Z (four-digit RFC 3339 years)."""
    if ok:
        assert _doc(pki, timestamp=timestamp).document.timestamp_ms == timestamp
    else:
        err = _error(pki.mint(timestamp=timestamp))
        assert (err.code, err.actual) == ("NITRO_FIELD_TYPE", str(timestamp))


def test_the_largest_timestamp_still_renders_as_rfc3339(pki: FakeAwsPki) -> None:
    doc = _doc(pki, timestamp=MAX_TIMESTAMP_MS).document
    assert claims(doc)["timestamp_utc"].startswith("9999-12-31T23:59:59")


# ---- strict CBOR: shortest arguments (RFC 8949 section 4.1) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("shortest", "one_below", "value"),
    [
        (b"\x18\x18", b"\x18\x17", 24),
        (b"\x19\x01\x00", b"\x19\x00\xff", 256),
        (b"\x1a\x00\x01\x00\x00", b"\x1a\x00\x00\xff\xff", 1 << 16),
        (b"\x1b\x00\x00\x00\x01\x00\x00\x00\x00", b"\x1b\x00\x00\x00\x00\xff\xff\xff\xff", 1 << 32),
    ],
    ids=["1-byte", "2-byte", "4-byte", "8-byte"],
)
def test_smallest_argument_of_each_width_is_preferred(shortest: bytes, one_below: bytes, value: int) -> None:
    assert decode_strict(shortest, what="t", preferred=True) == value
    assert _decode_error(one_below).code == "NITRO_CBOR_NOT_PREFERRED"
    assert decode_strict(one_below, what="t", preferred=False) == value - 1


@pytest.mark.parametrize("size", [24, 256], ids=["1-byte-length", "2-byte-length"])
def test_signed_payload_with_a_length_at_a_width_boundary(pki: FakeAwsPki, size: int) -> None:
    """cbor2 writes a 24-byte nonce as 58 18 and a 256-byte one as 59 0100: both shortest, both accepted."""
    assert _doc(pki, nonce=b"\x01" * size).document.nonce == b"\x01" * size


# ---- strict CBOR: a definite container cannot announce more items than bytes left --------------------------------


@pytest.mark.parametrize(
    ("data", "announced"),
    [
        (b"\x82\xff", "2"),  # array of 2 in 1 byte: reading on would meet a stray break (INVALID)
        (b"\x83\x1c\x00", "3"),  # ... or reserved additional information
        (b"\xa1\xf7", "1"),  # map of 1 pair in 1 byte: reading on would meet a bad key type (KEY_TYPE)
        (b"\xa2\x01\x02\x01", "2"),  # map of 2 pairs in 3 bytes: reading on would meet a duplicate key
    ],
    ids=["array-break", "array-reserved", "map-key-type", "map-duplicate"],
)
def test_container_announcing_more_items_than_bytes_is_truncated(data: bytes, announced: str) -> None:
    err = _decode_error(data, preferred=False)
    assert (err.code, err.actual) == ("NITRO_CBOR_TRUNCATED", f"{announced} items announced")


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"\x82\x01\x02", [1, 2]), (b"\xa1\x01\x02", {1: 2}), (b"\xa2\x01\x02\x03\x04", {1: 2, 3: 4})],
    ids=["array-exact", "map-exact", "map2-exact"],
)
def test_container_exactly_filling_the_data_decodes(data: bytes, value: object) -> None:
    assert decode_strict(data, what="t", preferred=True) == value


# ---- strict CBOR: simple values and floats ------------------------------------------------------------------------


def test_two_byte_simple_value_boundary() -> None:
    """RFC 8949 section 3.3: f8 with a value below 32 is not well-formed; 32 and up are simple values we refuse."""
    assert _decode_error(b"\xf8\x1f").code == "NITRO_CBOR_INVALID"
    err = _decode_error(b"\xf8\x20")
    assert err.code == "NITRO_CBOR_UNSUPPORTED" and "simple value 32" in err.message


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xf9\x3c\x00", "float"),
        (b"\xfa\x3f\x80\x00\x00", "float"),
        (b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00", "float"),
        (b"\xf7", "simple value 23"),  # undefined
        (b"\xf0", "simple value 16"),
        (b"\xf8\xff", "simple value 255"),
    ],
    ids=["half", "single", "double", "undefined", "simple16", "simple255"],
)
def test_unsupported_simple_values_say_what_they_are(data: bytes, kind: str) -> None:
    """The finding's message names the refused item: floats as floats, the rest by simple value."""
    err = _decode_error(data)
    assert err.code == "NITRO_CBOR_UNSUPPORTED"
    assert err.message == f"t: {kind} is not part of the document"


def test_false_true_null_decode() -> None:
    assert decode_strict(b"\x83\xf4\xf5\xf6", what="t", preferred=True) == [False, True, None]


def test_parse_cose_sign1_keeps_the_tag_flag(untagged: bytes) -> None:
    assert parse_cose_sign1(b"\xd2" + untagged).tagged and not parse_cose_sign1(untagged).tagged
