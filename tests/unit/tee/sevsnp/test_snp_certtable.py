"""The SNP extended-report certificate table (GHCB spec pub. 56421, SNP Extended Guest Request)."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import manifest_vectors
from verifier.errors import ParseError
from verifier.tee.sevsnp.certtable import (
    ARK_GUID,
    ASK_GUID,
    ENTRY_SIZE,
    MAX_ENTRIES,
    VCEK_GUID,
    VLEK_GUID,
    build_cert_table,
    parse_cert_table,
)

VCEK, ASK, ARK, VLEK, ASVK = b"vcek-der", b"ask-der!", b"ark-der-bytes", b"vlek-der", b"asvk-der"


def _entry(guid: uuid.UUID | bytes, offset: int, length: int) -> bytes:
    raw = guid.bytes if isinstance(guid, uuid.UUID) else guid
    return raw + struct.pack("<II", offset, length)


def _code(data: bytes) -> str:
    with pytest.raises(ParseError) as info:
        parse_cert_table(data)
    return info.value.code


def test_guids_are_the_published_ones() -> None:
    """GHCB spec / go-sev-guest abi.go / virtee/sev CertType; on the wire in RFC 4122 byte order."""
    assert str(VCEK_GUID) == "63da758d-e664-4564-adc5-f4b93be8accd"
    assert str(VLEK_GUID) == "a8074bc2-a25a-483e-aae6-39c045a0b8a1"
    assert str(ASK_GUID) == "4ab7b379-bbac-4fe4-a02f-05aef327c782"
    assert str(ARK_GUID) == "c0b406a4-a803-4952-9743-3fb6014cd0ae"
    assert build_cert_table({"vcek": VCEK})[:16].hex() == "63da758de6644564adc5f4b93be8accd"


def test_vcek_table_round_trip() -> None:
    entries = {"vcek": VCEK, "ask": ASK, "ark": ARK}
    table = build_cert_table(entries)
    assert table[3 * ENTRY_SIZE : 4 * ENTRY_SIZE] == bytes(ENTRY_SIZE)
    assert parse_cert_table(table) == entries


def test_vlek_table_names_the_ask_guid_asvk() -> None:
    entries = {"vlek": VLEK, "asvk": ASVK, "ark": ARK}
    table = build_cert_table(entries)
    assert ASK_GUID.bytes in table
    assert parse_cert_table(table) == entries
    with pytest.raises(ValueError, match="ASVK"):
        build_cert_table({"vlek": VLEK, "ask": ASK})
    with pytest.raises(ValueError, match="ASVK"):
        build_cert_table({"vcek": VCEK, "asvk": ASVK})


def test_parse_hand_built_table_with_padding_and_unknown_guid() -> None:
    """Offsets count from the table start; certificates need not be in entry order; page padding follows."""
    other = uuid.UUID("ecae0c0f-9502-43b1-afa2-0ae2e0d565b6")
    header = 4 * ENTRY_SIZE
    table = (
        _entry(ARK_GUID, header + len(VCEK), len(ARK))
        + _entry(VCEK_GUID, header, len(VCEK))
        + _entry(other, header + len(VCEK) + len(ARK), 3)
        + bytes(ENTRY_SIZE)
        + VCEK
        + ARK
        + b"xyz"
    )
    parsed = parse_cert_table(table + bytes(4096 - len(table)))
    assert parsed == {"ark": ARK, "vcek": VCEK, str(other): b"xyz"}
    assert build_cert_table(parsed) != table and parse_cert_table(build_cert_table(parsed)) == parsed


def test_empty_tables() -> None:
    assert parse_cert_table(b"") == {}
    assert parse_cert_table(bytes(ENTRY_SIZE)) == {}
    assert parse_cert_table(bytes(4096)) == {}
    assert build_cert_table({}) == bytes(ENTRY_SIZE)


def test_missing_terminator_is_truncated() -> None:
    table = build_cert_table({"vcek": VCEK})
    assert _code(table[:ENTRY_SIZE]) == "SNP_CERT_TABLE_TRUNCATED"
    assert _code(table[: ENTRY_SIZE + 5]) == "SNP_CERT_TABLE_TRUNCATED"
    assert _code(b"\x01") == "SNP_CERT_TABLE_TRUNCATED"


def test_certificate_past_the_end_is_truncated() -> None:
    table = build_cert_table({"vcek": VCEK, "ark": ARK})
    assert _code(table[:-1]) == "SNP_CERT_TABLE_TRUNCATED"
    huge = _entry(VCEK_GUID, 2 * ENTRY_SIZE, 0xFFFFFFFF) + bytes(ENTRY_SIZE) + VCEK
    assert _code(huge) == "SNP_CERT_TABLE_TRUNCATED"
    far = _entry(VCEK_GUID, 0xFFFFFFFF, 1) + bytes(ENTRY_SIZE) + VCEK
    assert _code(far) == "SNP_CERT_TABLE_TRUNCATED"


def test_certificate_overlapping_the_entries_is_invalid() -> None:
    for offset in (0, ENTRY_SIZE, 2 * ENTRY_SIZE - 1):
        table = _entry(VCEK_GUID, offset, 8) + bytes(ENTRY_SIZE) + VCEK
        assert _code(table) == "SNP_CERT_TABLE_INVALID"


def test_duplicate_guid_is_invalid() -> None:
    header = 3 * ENTRY_SIZE
    table = _entry(VCEK_GUID, header, 4) + _entry(VCEK_GUID, header + 4, 4) + bytes(ENTRY_SIZE) + VCEK
    assert _code(table) == "SNP_CERT_TABLE_INVALID"


def test_zero_length_and_half_zero_terminator_are_invalid() -> None:
    assert _code(_entry(VCEK_GUID, 2 * ENTRY_SIZE, 0) + bytes(ENTRY_SIZE)) == "SNP_CERT_TABLE_INVALID"
    assert _code(_entry(bytes(16), 24, 1) + bytes(ENTRY_SIZE)) == "SNP_CERT_TABLE_INVALID"


def test_entry_and_size_bounds() -> None:
    many = {str(uuid.UUID(int=i + 1)): b"c" for i in range(MAX_ENTRIES)}
    assert parse_cert_table(build_cert_table(many)) == many
    header = (MAX_ENTRIES + 2) * ENTRY_SIZE
    table = b"".join(_entry(uuid.UUID(int=i + 1), header, 1) for i in range(MAX_ENTRIES + 1))
    assert _code(table + bytes(ENTRY_SIZE) + b"c") == "SNP_CERT_TABLE_INVALID"
    assert _code(build_cert_table({"vcek": VCEK}) + bytes(64 * 1024)) == "SNP_CERT_TABLE_INVALID"
    with pytest.raises(ValueError):
        build_cert_table({**many, "vcek": VCEK})


def test_build_rejects_bad_names() -> None:
    for bad in (
        {"pck": b"x"},
        {"00000000-0000-0000-0000-000000000000": b"x"},
        {str(VCEK_GUID): b"x"},
        {"vcek": b""},
        {"ask": ASK, "asvk": ASVK},
    ):
        with pytest.raises(ValueError):
            build_cert_table(bad)


def test_real_certificates_round_trip(vectors_dir: Path) -> None:
    """A table of the real Milan VCEK, ASK and ARK yields the same DER, loadable by `cryptography`."""
    vector = next(v for v in manifest_vectors("snp") if v["id"] == "snp-milan-v2-vcek-gosevguest")
    folder = vectors_dir / vector["dir"]
    entries = {"vcek": (folder / "vcek.der").read_bytes()}
    for name in ("ask", "ark"):
        pem = (folder / f"{name}.pem").read_bytes()
        entries[name] = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    parsed = parse_cert_table(build_cert_table(entries))
    assert parsed == entries
    ark = x509.load_der_x509_certificate(parsed["ark"])
    assert ark.subject == ark.issuer
