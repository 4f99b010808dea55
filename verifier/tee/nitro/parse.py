"""Entry point for parsing raw Nitro evidence bytes: size bound, COSE_Sign1 envelope, then the payload."""

from __future__ import annotations

from dataclasses import dataclass

from verifier.errors import ParseError
from verifier.tee.nitro.cose import CoseSign1, parse_cose_sign1
from verifier.tee.nitro.document import AttestationDocument, parse_document

MAX_EVIDENCE_BYTES = 32 * 1024


@dataclass(frozen=True)
class NitroEvidence:
    raw: bytes
    cose: CoseSign1
    document: AttestationDocument


def parse(data: bytes) -> NitroEvidence:
    """Parse evidence; raises ParseError only. The size is bounded before any decoding."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ParseError("NITRO_COSE_MALFORMED", "evidence must be bytes", actual=type(data).__name__)
    raw = bytes(data)
    if len(raw) > MAX_EVIDENCE_BYTES:
        raise ParseError(
            "NITRO_EVIDENCE_TOO_LARGE", "evidence too large", expected=f"<= {MAX_EVIDENCE_BYTES}", actual=str(len(raw))
        )
    cose = parse_cose_sign1(raw)
    return NitroEvidence(raw=raw, cose=cose, document=parse_document(cose.payload))
