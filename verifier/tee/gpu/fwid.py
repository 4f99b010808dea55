"""The FWID of the GPU's attestation key certificate (the FMC LF leaf), which must equal the report's opaque FWID.

Two extensions, by architecture:

- Hopper: 2.23.133.5.4.1 holds SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, SEQUENCE { OID sha384, OCTET STRING (48) } };
  the FWID is that OCTET STRING (nv-local-gpu-verifier cc_admin_utils.py `extract_fwid` takes its last 48 bytes,
  trustee `get_fwid_from_cert` the same).
- Blackwell: 2.23.133.5.4.1.1 holds a TCG DICE TcbInfo (TCG DICE Attestation Architecture, "DiceTcbInfo": vendor
  [0], model [1], version [2], svn [3], layer [4], index [5], fwids [6] SEQUENCE OF FWID {hashAlg, digest}, ...);
  the FWID is fwids[0].digest (attestation-sdk nv_x509.cpp `get_fwid_2_23_133_5_4_1_1`). The extension's last 48
  bytes are another FWID entry, not this one.

Read with a strict DER reader (definite, minimal lengths; nothing after the outer SEQUENCE). Raises EvidenceError
GPU_FWID_EXTENSION_INVALID for an extension that does not decode, or a leaf carrying both."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ...errors import EvidenceError

HOPPER_OID = x509.ObjectIdentifier("2.23.133.5.4.1")
BLACKWELL_OID = x509.ObjectIdentifier("2.23.133.5.4.1.1")
SHA384_OID = bytes.fromhex("608648016503040202")  # the contents of OBJECT IDENTIFIER 2.16.840.1.101.3.4.2.2
FWID_LENGTH = 48
SEQUENCE, INTEGER, OCTET_STRING, OID = 0x30, 0x02, 0x04, 0x06
TCB_FWIDS = 0xA6  # [6] IMPLICIT SEQUENCE OF FWID (constructed, context-specific 6)
MAX_LENGTH_BYTES = 2  # an extension is far below 64 KiB


@dataclass(frozen=True)
class LeafFwid:
    """The FWID of a leaf certificate and the extension it came from."""

    oid: str
    fwid: bytes


def _invalid(message: str, actual: str = "") -> EvidenceError:
    return EvidenceError("GPU_FWID_EXTENSION_INVALID", message, expected="a DER FWID extension", actual=actual)


def _tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, value, offset after it) of the DER element at `offset`; raises GPU_FWID_EXTENSION_INVALID."""
    if len(data) - offset < 2:
        raise _invalid("truncated element", f"offset {offset}")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise _invalid("multi-byte tags are not used here", f"tag {tag:#04x}")
    start = offset + 2
    length = first
    if first & 0x80:
        count = first & 0x7F
        if not 1 <= count <= MAX_LENGTH_BYTES or len(data) - start < count:
            raise _invalid("bad length", f"offset {offset}")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
        if length < 0x80 or length >> (8 * (count - 1)) == 0:  # DER: the shortest length form
            raise _invalid("non-minimal length", f"offset {offset}")
    if length > len(data) - start:
        raise _invalid("element runs past the extension", f"offset {offset}")
    return tag, data[start : start + length], start + length


def _children(data: bytes) -> list[tuple[int, bytes]]:
    """The elements that exactly fill `data`."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        tag, value, offset = _tlv(data, offset)
        out.append((tag, value))
    return out


def _sequence(data: bytes) -> list[tuple[int, bytes]]:
    """The children of the one SEQUENCE that `data` is (nothing after it)."""
    tag, value, end = _tlv(data, 0)
    if tag != SEQUENCE or end != len(data):
        raise _invalid("not one SEQUENCE", f"tag {tag:#04x}, {len(data) - end} bytes after it")
    return _children(value)


def _fwid_entry(tag: int, value: bytes) -> bytes:
    """FWID ::= SEQUENCE { hashAlg OID sha384, digest OCTET STRING (48) } -> the digest."""
    if tag != SEQUENCE:
        raise _invalid("an FWID is a SEQUENCE", f"tag {tag:#04x}")
    parts = _children(value)
    if len(parts) != 2 or parts[0][0] != OID or parts[1][0] != OCTET_STRING:
        raise _invalid("an FWID is {hashAlg, digest}")
    if parts[0][1] != SHA384_OID or len(parts[1][1]) != FWID_LENGTH:
        raise _invalid("the FWID must be a SHA-384 digest", parts[0][1].hex())
    return parts[1][1]


def hopper_fwid(value: bytes) -> bytes:
    """The FWID of a 2.23.133.5.4.1 extension value (module docstring). Raises GPU_FWID_EXTENSION_INVALID."""
    parts = _sequence(value)
    if len(parts) != 3 or parts[0] != (INTEGER, b"\x01") or parts[1][0] != SEQUENCE:
        raise _invalid("not SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, FWID }")
    return _fwid_entry(*parts[2])


def blackwell_fwid(value: bytes) -> bytes:
    """fwids[0].digest of a 2.23.133.5.4.1.1 DICE TcbInfo (module docstring). Raises GPU_FWID_EXTENSION_INVALID."""
    fields = _sequence(value)
    tags = [tag for tag, _ in fields]
    if len(set(tags)) != len(tags) or any(tag & 0xC0 != 0x80 for tag in tags):
        raise _invalid("TcbInfo fields are distinct context-specific tags", " ".join(f"{t:#04x}" for t in tags))
    fwids = [entry for tag, entry in fields if tag == TCB_FWIDS]
    if not fwids:
        raise _invalid("TcbInfo carries no fwids [6]")
    entries = _children(fwids[0])
    if not entries:
        raise _invalid("TcbInfo fwids is empty")
    for entry in entries:
        _fwid_entry(*entry)
    return _fwid_entry(*entries[0])


def leaf_fwid(leaf: x509.Certificate) -> LeafFwid | None:
    """The leaf's FWID from whichever of the two extensions it carries; None when it carries neither. Raises
    EvidenceError GPU_FWID_EXTENSION_INVALID (an extension that does not decode, or both present)."""
    found: list[LeafFwid] = []
    for ext in leaf.extensions:
        if ext.oid in (HOPPER_OID, BLACKWELL_OID):
            if not isinstance(ext.value, x509.UnrecognizedExtension):
                raise _invalid("FWID extension decoded as another type", type(ext.value).__name__)
            read = hopper_fwid if ext.oid == HOPPER_OID else blackwell_fwid
            found.append(LeafFwid(ext.oid.dotted_string, read(ext.value.value)))
    if len(found) > 1:
        raise _invalid("the leaf carries both FWID extensions", ", ".join(f.oid for f in found))
    return found[0] if found else None
