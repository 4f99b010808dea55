"""COSE_Sign1 envelope of an AWS Nitro attestation document (RFC 9052 sections 3, 4.2 and 4.4).

Pure parsing: no crypto, no I/O. Every failure is a `ParseError` with a stable code. CBOR is read by
`strict_cbor.decode_strict`: the envelope leniently (it is not signed), the protected header and the payload with
preferred serialization required.

Headers (RFC 9052 section 3). This verifier understands one header parameter, alg (label 1), which must be ES384
(NITRO_ALG_UNSUPPORTED). crit (label 2), when present, must be a non-empty array of distinct integer or text
labels, each present in the protected header (NITRO_COSE_CRIT_MALFORMED); a crit naming any label other than alg
is rejected, as section 3.1 requires of a label the recipient does not understand (NITRO_COSE_CRIT_UNSUPPORTED).
Other protected labels not named in crit are ignored (section 3) and never read. The unprotected header must be
the empty map AWS emits (NITRO_COSE_UNPROTECTED_NOT_EMPTY): it is not signed, nothing here reads it, and anything
in it would be attacker-chosen bytes carried into the recorded evidence (alg there stays NITRO_ALG_UNSUPPORTED).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cbor2

from verifier.errors import ParseError

from .strict_cbor import decode_strict

COSE_SIGN1_TAG = 18  # RFC 9052 section 2, table 1
ALG_ES384 = -35  # RFC 9053 section 2.1
HEADER_ALG = 1  # RFC 9052 section 3.1
HEADER_CRIT = 2  # RFC 9052 section 3.1
UNDERSTOOD_LABELS = (HEADER_ALG,)  # the header parameters this verifier processes
SIGNATURE_LENGTH = 96  # ES384 raw r||s, 48 + 48 bytes (RFC 9053 section 2.1)


@dataclass(frozen=True)
class CoseSign1:
    """A decoded COSE_Sign1 keeping the ORIGINAL protected and payload byte strings (they are signed as-is)."""

    protected: bytes
    protected_header: Mapping[int, object]  # read-only views: a parse is shared by every appraisal of its bytes
    unprotected: Mapping[object, object]
    payload: bytes
    signature: bytes
    tagged: bool


def decode_cbor(data: bytes, *, what: str, preferred: bool = True) -> object:
    """Decode exactly one CBOR item (strict_cbor rules; `preferred` for signed bytes); raises ParseError."""
    return decode_strict(data, what=what, preferred=preferred)


def _check_crit(header: dict[int, object]) -> None:
    """RFC 9052 section 3.1 crit; raises NITRO_COSE_CRIT_MALFORMED or NITRO_COSE_CRIT_UNSUPPORTED."""
    if HEADER_CRIT not in header:
        return
    crit = header[HEADER_CRIT]
    if (
        not isinstance(crit, list)
        or not crit
        or not all(isinstance(label, int | str) and not isinstance(label, bool) for label in crit)
        or len(set(crit)) != len(crit)
    ):
        raise ParseError(
            "NITRO_COSE_CRIT_MALFORMED",
            "crit must be a non-empty array of distinct labels",
            expected="[label, ...]",
            actual=repr(crit)[:128],
        )
    unknown = [label for label in crit if label not in UNDERSTOOD_LABELS]
    if unknown:
        raise ParseError(
            "NITRO_COSE_CRIT_UNSUPPORTED",
            "crit names a header parameter this verifier does not understand (RFC 9052 section 3.1: reject)",
            expected=repr(list(UNDERSTOOD_LABELS)),
            actual=repr(unknown)[:128],
        )
    absent = [label for label in crit if label not in header]
    if absent:
        raise ParseError(
            "NITRO_COSE_CRIT_MALFORMED",
            "crit names a label absent from the protected header",
            expected=repr(sorted(header)),
            actual=repr(absent)[:128],
        )


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
    if tag is not None and data[offset : offset + 1] and data[offset] >> 5 == 6:
        raise ParseError("NITRO_COSE_MALFORMED", "COSE_Sign1 must be an array of 4", actual="a second tag")
    item = decode_cbor(data[offset:], what="COSE_Sign1", preferred=False)
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
    _check_crit(header)
    alg = header.get(HEADER_ALG)
    if alg != ALG_ES384 or isinstance(alg, bool):
        raise ParseError(
            "NITRO_ALG_UNSUPPORTED", "protected alg must be ES384", expected=str(ALG_ES384), actual=repr(alg)
        )
    if HEADER_ALG in unprotected:  # RFC 9052 section 3: alg belongs in the protected bucket only
        raise ParseError("NITRO_ALG_UNSUPPORTED", "alg must not appear in the unprotected header")
    if unprotected:
        raise ParseError(
            "NITRO_COSE_UNPROTECTED_NOT_EMPTY",
            "the unprotected header must be empty",
            expected="{}",
            actual=",".join(repr(k) for k in unprotected)[:128],
        )
    if len(signature) != SIGNATURE_LENGTH:
        raise ParseError(
            "NITRO_SIGNATURE_LENGTH",
            "ES384 signature must be raw r||s",
            expected=str(SIGNATURE_LENGTH),
            actual=str(len(signature)),
        )
    headers = MappingProxyType(dict(header)), MappingProxyType(dict(unprotected))
    return CoseSign1(protected, *headers, payload, signature, tag is not None)


def sig_structure(cose: CoseSign1) -> bytes:
    """ToBeSigned of RFC 9052 section 4.4: ["Signature1", protected, external_aad = h'', payload]."""
    return bytes(cbor2.dumps(["Signature1", cose.protected, b"", cose.payload]))
