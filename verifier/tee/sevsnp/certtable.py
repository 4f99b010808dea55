"""The certificate table of an SNP extended guest request (GHCB specification pub. 56421, "SNP Extended Guest
Request", certificate table): 24-byte entries {GUID[16], OFFSET u32, LENGTH u32} ended by an all-zero entry;
offsets count from the start of the table and the certificates (DER) follow the entries.

GUID byte order: the 16 bytes are the RFC 4122 (big-endian) form of the GUID string, as written and read by AMD's
sev-guest tools (libuuid), google/go-sev-guest (abi.go `CertTableHeaderEntry`) and virtee/sev (`Uuid::from_slice`).
The ASK GUID also carries the ASVK when the table holds a VLEK (go-sev-guest `AskGUID`); the parser then names it
"asvk". Parsing is bounded: at most 64 entries, 64 KiB, every certificate inside the buffer and after the entries."""

from __future__ import annotations

import struct
import uuid

from verifier.errors import ParseError

ENTRY_SIZE = 24
MAX_ENTRIES = 64
MAX_TABLE_SIZE = 64 * 1024

VCEK_GUID = uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd")
VLEK_GUID = uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1")
ASK_GUID = uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782")  # ASK, or ASVK in a VLEK table
ARK_GUID = uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae")
CRL_GUID = uuid.UUID("92f81bc3-5811-4d3d-97ff-d19f88dc67ea")  # virtee/sev CertType::CRL
_NAMES = {VCEK_GUID: "vcek", VLEK_GUID: "vlek", ASK_GUID: "ask", ARK_GUID: "ark", CRL_GUID: "crl"}
_GUIDS = {**{name: guid for guid, name in _NAMES.items()}, "asvk": ASK_GUID}


def _invalid(message: str, expected: str = "", actual: str = "") -> ParseError:
    return ParseError("SNP_CERT_TABLE_INVALID", message, expected=expected, actual=actual)


def _asvk_table(names: set[str]) -> bool:
    """A table whose ASK-GUID entry is the ASVK: it holds a VLEK and no VCEK."""
    return "vlek" in names and "vcek" not in names


def parse_cert_table(data: bytes) -> dict[str, bytes]:
    """Certificates by name ("vcek", "vlek", "ask" or "asvk", "ark", "crl"; other GUIDs under their GUID string).
    An empty buffer is an empty table. Raises ParseError SNP_CERT_TABLE_INVALID / SNP_CERT_TABLE_TRUNCATED."""
    if len(data) > MAX_TABLE_SIZE:
        raise _invalid("certificate table larger than 64 KiB", str(MAX_TABLE_SIZE), str(len(data)))
    if not data:
        return {}
    entries: list[tuple[uuid.UUID, int, int]] = []
    position = 0
    while True:
        if position + ENTRY_SIZE > len(data):
            raise ParseError(
                "SNP_CERT_TABLE_TRUNCATED",
                "certificate table ends before its all-zero entry",
                expected=f">= {position + ENTRY_SIZE} bytes",
                actual=str(len(data)),
            )
        raw_guid = bytes(data[position : position + 16])
        offset, length = struct.unpack_from("<II", data, position + 16)
        position += ENTRY_SIZE
        if not any(raw_guid):
            if offset or length:
                raise _invalid(
                    f"entry at 0x{position - ENTRY_SIZE:x} has a zero GUID but is not all zero",
                    "all zero",
                    f"offset {offset} length {length}",
                )
            break
        if len(entries) == MAX_ENTRIES:
            raise _invalid("certificate table has too many entries", f"<= {MAX_ENTRIES}", f"> {MAX_ENTRIES}")
        entries.append((uuid.UUID(bytes=raw_guid), offset, length))
    certs: dict[uuid.UUID, bytes] = {}
    for guid, offset, length in entries:
        if guid in certs:
            raise _invalid(f"duplicate GUID {guid} in the certificate table", "unique GUIDs", str(guid))
        if length == 0:
            raise _invalid(f"certificate {guid} is empty", "length > 0", "0")
        if offset < position:
            raise _invalid(f"certificate {guid} overlaps the table entries", f"offset >= {position}", str(offset))
        if offset + length > len(data):
            raise ParseError(
                "SNP_CERT_TABLE_TRUNCATED",
                f"certificate {guid} runs past the end of the table",
                expected=f">= {offset + length} bytes",
                actual=str(len(data)),
            )
        certs[guid] = bytes(data[offset : offset + length])
    named = {_NAMES.get(guid, str(guid)): der for guid, der in certs.items()}
    if "ask" in named and _asvk_table(set(named)):
        named["asvk"] = named.pop("ask")
    return named


def build_cert_table(entries: dict[str, bytes]) -> bytes:
    """The table for `entries` (names as returned by parse_cert_table, or GUID strings), certificates packed
    after the entries in the given order; parse_cert_table(build_cert_table(x)) == x for every accepted x."""
    guids: list[uuid.UUID] = []
    for name in entries:
        guid = _GUIDS.get(name) or _guid(name)
        if guid in guids:
            raise ValueError(f"{name}: its GUID {guid} appears twice")
        guids.append(guid)
    if ("asvk" in entries or "ask" in entries) and ("asvk" in entries) != _asvk_table(set(entries)):
        raise ValueError("the ASK GUID holds the ASVK exactly when the table has a VLEK and no VCEK")
    if len(guids) > MAX_ENTRIES:
        raise ValueError(f"at most {MAX_ENTRIES} entries")
    offset = ENTRY_SIZE * (len(guids) + 1)
    header, body = bytearray(), bytearray()
    for guid, der in zip(guids, entries.values(), strict=True):
        if not der:
            raise ValueError(f"certificate {guid} is empty")
        header += guid.bytes + struct.pack("<II", offset + len(body), len(der))
        body += der
    table = bytes(header + bytes(ENTRY_SIZE) + body)
    if len(table) > MAX_TABLE_SIZE:
        raise ValueError("certificate table larger than 64 KiB")
    return table


def _guid(name: str) -> uuid.UUID:
    try:
        guid = uuid.UUID(name)
    except ValueError:
        raise ValueError(f"unknown certificate name {name!r} (not a GUID either)") from None
    if guid.int == 0 or str(guid) != name or name in _GUIDS:
        raise ValueError(f"{name!r}: use the canonical lowercase form of a non-zero, non-reserved GUID")
    if guid in _NAMES:
        raise ValueError(f"{name!r}: use the name {_NAMES[guid]!r}")
    return guid
