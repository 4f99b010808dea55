"""Parsing of real Nitro attestation documents and of fake ones that break one rule each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cbor2
import pytest

from tests.conftest import manifest_vectors
from tests.fakes.aws_pki import OMIT, FakeAwsPki
from verifier.errors import ParseError
from verifier.tee.nitro.claims import claims
from verifier.tee.nitro.cose import parse_cose_sign1, sig_structure
from verifier.tee.nitro.parse import MAX_EVIDENCE_BYTES, parse

NITRO = manifest_vectors("nitro")


def _raw(vectors_dir: Path, vector: dict[str, Any]) -> bytes:
    return Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()


def _code(data: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse(data)
    return info.value.code


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.mark.parametrize("vector", NITRO, ids=[v["id"] for v in NITRO])
def test_real_vector_matches_manifest_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    facts = vector["facts"]
    evidence = parse(_raw(vectors_dir, vector))
    doc = evidence.document
    assert (doc.module_id, doc.digest, doc.timestamp_ms) == (facts["module_id"], facts["digest"], facts["timestamp_ms"])
    for index, value in facts["pcrs"].items():
        assert doc.pcr(int(index)) == bytes.fromhex(value)
    assert [i for i, _ in doc.pcrs] == list(range(16))
    for field in ("nonce", "user_data", "public_key"):
        expected = facts[field]
        assert getattr(doc, field) == (None if expected is None else bytes.fromhex(expected))
    assert evidence.cose.signature.hex() == facts["signature_hex"]
    assert evidence.cose.protected_header == {1: -35} and evidence.cose.unprotected == {}
    assert not evidence.cose.tagged
    c = claims(doc)
    assert c["timestamp_utc"] == facts["timestamp_utc"].replace("000Z", "Z")
    assert c["debug_mode"] is vector["what"]["debug_mode"]
    assert c["pcrs"] == {str(i): v.hex() for i, v in doc.pcrs}
    assert c["nonce"] == facts["nonce"] and c["public_key"] == facts["public_key"]


@pytest.mark.parametrize("vector", NITRO, ids=[v["id"] for v in NITRO])
def test_real_vector_envelope_variants(vectors_dir: Path, vector: dict[str, Any]) -> None:
    raw = _raw(vectors_dir, vector)
    assert parse(b"\xd2" + raw).cose.tagged
    assert _code(raw[:-1]) == "NITRO_CBOR_TRUNCATED"
    assert _code(raw[: len(raw) // 2]) == "NITRO_CBOR_TRUNCATED"
    assert _code(raw + b"\x00") == "NITRO_TRAILING_BYTES"
    assert _code(b"\xd8\x62" + raw) == "NITRO_COSE_TAG"  # tag 98 is COSE_Sign (multi-signer)
    assert _code(b"\xd1" + raw) == "NITRO_COSE_TAG"  # tag 17 is COSE_Mac0
    cose = parse_cose_sign1(raw)
    assert sig_structure(cose)[:12] == bytes.fromhex("846a5369676e617475726531")  # ["Signature1", ...


def test_real_documents_use_1024_byte_optional_fields(vectors_dir: Path) -> None:
    """CDDL bounds (0..1024), not the 512 of the AWS prose: real hardware emits 1024 bytes."""
    doc = parse((vectors_dir / "nitro" / "nitro-prod-2024-blocky" / "evidence.bin").read_bytes()).document
    assert doc.nonce is not None and doc.user_data is not None
    assert len(doc.nonce) == len(doc.user_data) == 1024


def test_fake_document_parses(pki: FakeAwsPki) -> None:
    doc = parse(pki.mint(nonce=b"n", user_data=b"", public_key=OMIT)).document
    assert (doc.nonce, doc.user_data, doc.public_key) == (b"n", b"", None)
    assert claims(doc)["debug_mode"] is False
    zero = parse(pki.mint(pcrs={i: bytes(48) for i in range(16)})).document
    assert claims(zero)["debug_mode"] is True


def test_indefinite_length_payload_is_accepted(pki: FakeAwsPki) -> None:
    definite = cbor2.dumps(pki.payload())
    assert definite[0] == 0xA9
    payload = b"\xbf" + definite[1:] + b"\xff"
    assert parse(pki.mint(payload=payload)).document == parse(pki.mint()).document


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"alg": -7}, "NITRO_ALG_UNSUPPORTED"),
        ({"protected": {}}, "NITRO_ALG_UNSUPPORTED"),
        ({"unprotected": {1: -35}}, "NITRO_ALG_UNSUPPORTED"),
        ({"tag": 17}, "NITRO_COSE_TAG"),
        ({"signature": b"\x01" * 95}, "NITRO_SIGNATURE_LENGTH"),
        ({"signature": b"\x01" * 104}, "NITRO_SIGNATURE_LENGTH"),
        ({"payload": cbor2.dumps([1, 2])}, "NITRO_PAYLOAD_MALFORMED"),
        ({"payload": cbor2.dumps({1: 2})}, "NITRO_PAYLOAD_MALFORMED"),
        ({"payload": b"\xa1"}, "NITRO_CBOR_TRUNCATED"),
        ({"payload": b"\xa0\x00"}, "NITRO_TRAILING_BYTES"),
        ({"payload": b"\xff"}, "NITRO_CBOR_INVALID"),
        ({"digest": "SHA256"}, "NITRO_DIGEST_UNSUPPORTED"),
        ({"digest": 384}, "NITRO_FIELD_TYPE"),
        ({"pcrs": {0: b"\x00" * 32}}, "NITRO_PCR_LENGTH"),
        ({"pcrs": {40: b"\x00" * 48}}, "NITRO_PCR_INDEX"),
        ({"pcrs": {-1: b"\x00" * 48}}, "NITRO_PCR_INDEX"),
        ({"pcrs": {"0": b"\x00" * 48}}, "NITRO_PCR_INDEX"),
        ({"pcrs": {}}, "NITRO_FIELD_TOO_LARGE"),
        ({"pcrs": {0: "00" * 48}}, "NITRO_FIELD_TYPE"),
        ({"user_data": b"\x00" * 1025}, "NITRO_FIELD_TOO_LARGE"),
        ({"nonce": b"\x00" * 1025}, "NITRO_FIELD_TOO_LARGE"),
        ({"public_key": b"\x00" * 1025}, "NITRO_FIELD_TOO_LARGE"),
        ({"public_key": "key"}, "NITRO_FIELD_TYPE"),
        ({"cabundle": []}, "NITRO_CABUNDLE_INVALID"),
        ({"cabundle": [b"\x30"] * 9}, "NITRO_CABUNDLE_INVALID"),
        ({"cabundle": [b""]}, "NITRO_CABUNDLE_INVALID"),
        ({"cabundle": [b"\x30" * 1025]}, "NITRO_CABUNDLE_INVALID"),
        ({"cabundle": b"\x30"}, "NITRO_FIELD_TYPE"),
        ({"certificate": b""}, "NITRO_FIELD_TYPE"),
        ({"certificate": b"\x30" * 1025}, "NITRO_FIELD_TOO_LARGE"),
        ({"module_id": ""}, "NITRO_FIELD_TYPE"),
        ({"module_id": "m" * 257}, "NITRO_FIELD_TOO_LARGE"),
        ({"timestamp": 0}, "NITRO_FIELD_TYPE"),
        ({"timestamp": True}, "NITRO_FIELD_TYPE"),
        ({"timestamp": (1 << 64) - 1}, "NITRO_FIELD_TYPE"),
        ({"timestamp": 1 << 64}, "NITRO_CBOR_UNSUPPORTED"),  # cbor2 writes a tag 2 bignum
        ({"extra": {"debug": True}}, "NITRO_FIELD_UNKNOWN"),
    ],
)
def test_fake_document_rule_violations(pki: FakeAwsPki, overrides: dict[str, Any], code: str) -> None:
    assert _code(pki.mint(**overrides)) == code


def test_missing_required_field(pki: FakeAwsPki) -> None:
    payload = pki.payload()
    del payload["cabundle"]
    assert _code(pki.mint(payload=cbor2.dumps(payload))) == "NITRO_FIELD_MISSING"


def test_envelope_shapes() -> None:
    assert _code(b"") == "NITRO_CBOR_TRUNCATED"
    assert _code(b"\x00" * (MAX_EVIDENCE_BYTES + 1)) == "NITRO_EVIDENCE_TOO_LARGE"
    assert _code(cbor2.dumps([b"", {}, b""])) == "NITRO_COSE_MALFORMED"
    assert _code(cbor2.dumps(["a", {}, b"", b""])) == "NITRO_COSE_MALFORMED"
    assert _code(cbor2.dumps([b"", [], b"", b""])) == "NITRO_COSE_MALFORMED"
    assert _code(cbor2.dumps({1: 2})) == "NITRO_COSE_MALFORMED"
    assert _code(b"\xd2\xd2" + cbor2.dumps([b"", {}, b"", b""])) == "NITRO_COSE_MALFORMED"
    assert _code(b"\xd8") == "NITRO_CBOR_TRUNCATED"
    with pytest.raises(ParseError) as info:
        parse(b"\x00" * (MAX_EVIDENCE_BYTES + 1))
    err = info.value
    assert err.expected == f"<= {MAX_EVIDENCE_BYTES}" and err.actual == str(MAX_EVIDENCE_BYTES + 1)


@pytest.mark.parametrize(
    "data",
    [
        b"\x5b" + b"\x7f" + b"\xff" * 7,  # byte string claiming 2**63 bytes
        b"\x9b" + b"\x0f" * 8,  # array claiming ~2**60 items
        b"\x81" * 20_000 + b"\x00",  # nesting deeper than the decoder allows
        b"\xd8\x23\x63(a(",  # tag 35: regex that does not compile
        b"\xc1\x1b" + b"\xff" * 8,  # tag 1: epoch far out of range
        cbor2.dumps([b"\xd8\x23\x63(a(", {}, b"", b""]),  # hostile protected header
    ],
)
def test_hostile_cbor_raises_parse_error(data: bytes) -> None:
    assert _code(data).startswith("NITRO_")
