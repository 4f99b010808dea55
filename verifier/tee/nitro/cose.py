"""COSE_Sign1 envelope of an AWS Nitro attestation document (RFC 9052 sections 4.2 and 4.4).

Pure parsing: no crypto, no I/O. Every decoder failure becomes a `ParseError` with a stable code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cbor2

from verifier.errors import ParseError

from .cbor_keys import check_unique_keys

COSE_SIGN1_TAG = 18  # RFC 9052 section 2, table 1
ALG_ES384 = -35  # RFC 9053 section 2.1
HEADER_ALG = 1  # RFC 9052 section 3.1
SIGNATURE_LENGTH = 96  # ES384 raw r||s, 48 + 48 bytes (RFC 9053 section 2.1)


@dataclass(frozen=True)
class CoseSign1:
    """A decoded COSE_Sign1 keeping the ORIGINAL protected and payload byte strings (they are signed as-is)."""

    protected: bytes
    protected_header: dict[int, object]
    unprotected: dict[object, object]
    payload: bytes
    signature: bytes
    tagged: bool


def decode_cbor(data: bytes, *, what: str) -> object:
    """Decode exactly one CBOR item; trailing bytes, truncation and any decoder error raise ParseError."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except cbor2.CBORDecodeEOF as exc:
        raise ParseError("NITRO_CBOR_TRUNCATED", f"{what}: premature end of CBOR data", actual=str(exc)) from None
    except RecursionError:
        raise ParseError("NITRO_CBOR_INVALID", f"{what}: CBOR nesting too deep") from None
    # cbor2 can raise many types on hostile input (semantic tags build datetimes, regexes, MIME messages...);
    # a parser must surface only ParseError, so every decoder exception is converted here.
    except Exception as exc:  # noqa: BLE001
        raise ParseError("NITRO_CBOR_INVALID", f"{what}: invalid CBOR", actual=type(exc).__name__) from None
    if stream.tell() != len(data):
        raise ParseError(
            "NITRO_TRAILING_BYTES",
            f"{what}: bytes after the top-level CBOR item",
            expected=str(len(data)),
            actual=str(stream.tell()),
        )
    check_unique_keys(data, what=what)
    return value


def _read_tag(data: bytes) -> tuple[int | None, int]:
    """Return (tag number, header length) when `data` starts with a CBOR tag (major type 6), else (None, 0)."""
    if not data or data[0] >> 5 != 6:
        return None, 0
    info = data[0] & 0x1F
    if info < 24:
        return info, 1
    if info > 27:
        raise ParseError("NITRO_CBOR_INVALID", "invalid tag header", actual=f"{data[0]:02x}")
    size = 1 << (info - 24)
    if len(data) < 1 + size:
        raise ParseError("NITRO_CBOR_TRUNCATED", "premature end of CBOR data in a tag header")
    return int.from_bytes(data[1 : 1 + size], "big"), 1 + size


def parse_cose_sign1(data: bytes) -> CoseSign1:
    """Parse an untagged COSE_Sign1 array, or one wrapped in CBOR tag 18 (RFC 9052 section 4.2)."""
    tag, offset = _read_tag(data)
    if tag is not None and tag != COSE_SIGN1_TAG:
        raise ParseError("NITRO_COSE_TAG", "unexpected CBOR tag", expected=str(COSE_SIGN1_TAG), actual=str(tag))
    item = decode_cbor(data[offset:], what="COSE_Sign1")
    if not isinstance(item, list) or len(item) != 4:
        raise ParseError("NITRO_COSE_MALFORMED", "COSE_Sign1 must be an array of 4", actual=type(item).__name__)
    protected, unprotected, payload, signature = item
    if not (isinstance(protected, bytes) and isinstance(payload, bytes) and isinstance(signature, bytes)):
        raise ParseError("NITRO_COSE_MALFORMED", "protected, payload and signature must be byte strings")
    if not isinstance(unprotected, dict):
        raise ParseError("NITRO_COSE_MALFORMED", "unprotected header must be a map", actual=type(unprotected).__name__)
    header = decode_cbor(protected, what="protected header") if protected else {}
    if not isinstance(header, dict) or not all(isinstance(k, int) and not isinstance(k, bool) for k in header):
        raise ParseError("NITRO_COSE_MALFORMED", "protected header must be a map with integer labels")
    alg = header.get(HEADER_ALG)
    if alg != ALG_ES384 or isinstance(alg, bool):
        raise ParseError(
            "NITRO_ALG_UNSUPPORTED", "protected alg must be ES384", expected=str(ALG_ES384), actual=repr(alg)
        )
    if HEADER_ALG in unprotected:  # RFC 9052 section 3: alg belongs in the protected bucket only
        raise ParseError("NITRO_ALG_UNSUPPORTED", "alg must not appear in the unprotected header")
    if len(signature) != SIGNATURE_LENGTH:
        raise ParseError(
            "NITRO_SIGNATURE_LENGTH",
            "ES384 signature must be raw r||s",
            expected=str(SIGNATURE_LENGTH),
            actual=str(len(signature)),
        )
    return CoseSign1(protected, dict(header), dict(unprotected), payload, signature, tag is not None)


def sig_structure(cose: CoseSign1) -> bytes:
    """ToBeSigned of RFC 9052 section 4.4: ["Signature1", protected, external_aad = h'', payload]."""
    return bytes(cbor2.dumps(["Signature1", cose.protected, b"", cose.payload]))
