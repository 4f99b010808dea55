"""The Nitro attestation document payload (aws-nitro-enclaves-nsm-api docs/attestation_process.md, section 3.1 CDDL).

Pure parsing: no crypto, no I/O. Bounds follow the AWS CDDL, with the deviations commented below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from verifier.errors import ParseError
from verifier.tee.nitro.cose import decode_cbor

REQUIRED_FIELDS = ("module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle")
OPTIONAL_FIELDS = ("public_key", "user_data", "nonce")
SUPPORTED_DIGEST = "SHA384"
PCR_LENGTH = 48  # CDDL: pcrs values are bytes .size (32/48/64) and must match `digest`; SHA384 -> 48
MAX_PCR_INDEX = 31  # CDDL: index_key = 0..31
MAX_MODULE_ID_CHARS = 256
MAX_CERT_BYTES = 1024  # CDDL: cert = bytes .size (1..1024)
MAX_CABUNDLE = 8
# CDDL: public_key = bytes .size (1..1024), user_data and nonce = bytes .size (0..1024). AWS prose (and the
# original issue) say 512 for user_data/nonce, but real hardware emits 1024: vectors nitro-prod-2024-blocky and
# nitro-debug-2024-blocky carry 1024-byte nonce and user_data and verify. nitro-debug-2021-hf-nitrite (real
# hardware too) carries a zero-length public_key, so public_key also accepts 0 bytes here.
MAX_OPTIONAL_BYTES = 1024
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: RFC 3339 years have four digits


@dataclass(frozen=True)
class AttestationDocument:
    """Decoded payload; `pcrs` is sorted by index; absent and null optional fields are both None."""

    module_id: str
    digest: str
    timestamp_ms: int
    pcrs: tuple[tuple[int, bytes], ...]
    certificate: bytes
    cabundle: tuple[bytes, ...]
    public_key: bytes | None
    user_data: bytes | None
    nonce: bytes | None
    # The PCRs as lowercase hex by index ("0".."31"), read-only: the claims and the appraiser both read them.
    pcr_hex: MappingProxyType[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pcr_hex", MappingProxyType({str(i): value.hex() for i, value in self.pcrs}))

    def pcr(self, index: int) -> bytes | None:
        """The value of PCR `index`, or None when the document does not report it."""
        for i, value in self.pcrs:
            if i == index:
                return value
        return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bytes(name: str, value: object, low: int, high: int, code: str = "NITRO_FIELD_TOO_LARGE") -> bytes:
    if not isinstance(value, bytes):
        raise ParseError("NITRO_FIELD_TYPE", f"{name} must be a byte string", actual=type(value).__name__)
    if len(value) > high:
        raise ParseError(code, f"{name} too large", expected=f"<= {high}", actual=str(len(value)))
    if len(value) < low:
        raise ParseError("NITRO_FIELD_TYPE", f"{name} too short", expected=f">= {low}", actual=str(len(value)))
    return value


def _optional(name: str, value: object) -> bytes | None:
    return None if value is None else _bytes(name, value, 0, MAX_OPTIONAL_BYTES)


def _pcrs(value: object) -> tuple[tuple[int, bytes], ...]:
    if not isinstance(value, dict):
        raise ParseError("NITRO_FIELD_TYPE", "pcrs must be a map", actual=type(value).__name__)
    if not 1 <= len(value) <= MAX_PCR_INDEX + 1:
        raise ParseError("NITRO_FIELD_TOO_LARGE", "pcrs must have 1..32 entries", actual=str(len(value)))
    out: list[tuple[int, bytes]] = []
    for index, pcr in value.items():
        if not _is_int(index) or not 0 <= index <= MAX_PCR_INDEX:
            raise ParseError("NITRO_PCR_INDEX", "PCR index must be an integer 0..31", actual=repr(index)[:64])
        if not isinstance(pcr, bytes):
            raise ParseError("NITRO_FIELD_TYPE", f"PCR{index} must be a byte string", actual=type(pcr).__name__)
        if len(pcr) != PCR_LENGTH:
            raise ParseError(
                "NITRO_PCR_LENGTH", f"PCR{index} length must match SHA384", expected="48", actual=str(len(pcr))
            )
        out.append((index, pcr))
    return tuple(sorted(out))


def _cabundle(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise ParseError("NITRO_FIELD_TYPE", "cabundle must be an array", actual=type(value).__name__)
    if not 1 <= len(value) <= MAX_CABUNDLE:
        raise ParseError("NITRO_CABUNDLE_INVALID", "cabundle must hold 1..8 certificates", actual=str(len(value)))
    for i, cert in enumerate(value):
        if not isinstance(cert, bytes) or not 1 <= len(cert) <= MAX_CERT_BYTES:
            size = str(len(cert)) if isinstance(cert, bytes) else type(cert).__name__
            raise ParseError("NITRO_CABUNDLE_INVALID", f"cabundle[{i}] must be 1..1024 bytes", actual=size)
    return tuple(value)


def parse_document(payload: bytes) -> AttestationDocument:
    """Decode and bound-check the payload map (text keys; definite or indefinite length)."""
    doc = decode_cbor(payload, what="payload")
    if not isinstance(doc, dict) or not all(isinstance(k, str) for k in doc):
        raise ParseError("NITRO_PAYLOAD_MALFORMED", "payload must be a map with text keys", actual=type(doc).__name__)
    unknown = sorted(k for k in doc if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS)
    if unknown:
        raise ParseError("NITRO_FIELD_UNKNOWN", "unknown payload field", actual=",".join(unknown)[:256])
    missing = [k for k in REQUIRED_FIELDS if k not in doc]
    if missing:
        raise ParseError("NITRO_FIELD_MISSING", "required payload field missing", actual=",".join(missing))
    module_id = doc["module_id"]
    if not isinstance(module_id, str) or not module_id:
        raise ParseError("NITRO_FIELD_TYPE", "module_id must be non-empty text", actual=type(module_id).__name__)
    if len(module_id) > MAX_MODULE_ID_CHARS:
        raise ParseError("NITRO_FIELD_TOO_LARGE", "module_id too long", expected="<= 256", actual=str(len(module_id)))
    digest = doc["digest"]
    if not isinstance(digest, str):
        raise ParseError("NITRO_FIELD_TYPE", "digest must be text", actual=type(digest).__name__)
    if digest != SUPPORTED_DIGEST:
        raise ParseError(
            "NITRO_DIGEST_UNSUPPORTED", "unsupported digest", expected=SUPPORTED_DIGEST, actual=digest[:64]
        )
    timestamp = doc["timestamp"]
    if not _is_int(timestamp) or not 0 < timestamp <= MAX_TIMESTAMP_MS:
        raise ParseError(
            "NITRO_FIELD_TYPE", "timestamp must be positive milliseconds up to year 9999", actual=repr(timestamp)[:64]
        )
    return AttestationDocument(
        module_id=module_id,
        digest=digest,
        timestamp_ms=timestamp,
        pcrs=_pcrs(doc["pcrs"]),
        certificate=_bytes("certificate", doc["certificate"], 1, MAX_CERT_BYTES),
        cabundle=_cabundle(doc["cabundle"]),
        public_key=_optional("public_key", doc.get("public_key")),
        user_data=_optional("user_data", doc.get("user_data")),
        nonce=_optional("nonce", doc.get("nonce")),
    )
