"""SEV-SNP ATTESTATION_REPORT parsing against the real vectors (facts in ../shared/vectors/MANIFEST.json) and the
must-be-zero / version / enumeration rules of the ABI spec (pub. 56860) and go-sev-guest abi/abi.go."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors, vector_ids
from verifier.errors import EvidenceError, ParseError
from verifier.tee.sevsnp.abi import REPORT_SIZE, SIGNED_SIZE, AttestationReport, parse_report, serialize_report
from verifier.tee.sevsnp.tcb import Product, decode_tcb, encode_tcb, product_from_cpuid, product_from_name

SNP = manifest_vectors("snp")
PARSABLE = [v for v in SNP if "version" in v["facts"]]
TRUNCATED = [v for v in SNP if v["id"].endswith("-truncated")]
TCBS = ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb")


def _bytes(vectors_dir: Path, vector_id: str) -> bytes:
    vector = next(v for v in SNP if v["id"] == vector_id)
    return Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()


def report_facts(report: AttestationReport, product: Product) -> dict[str, Any]:
    """The report in the manifest's `facts` vocabulary."""
    facts: dict[str, Any] = {
        "version": report.version,
        "guest_svn": report.guest_svn,
        "policy": f"0x{report.policy:016x}",
        "vmpl": report.vmpl,
        "signature_algo": report.signature_algo,
        "author_key_en": int(report.author_key_en),
        "mask_chip_key": int(report.mask_chip_key),
        "signing_key": report.signing_key,
        "platform_info": f"0x{report.platform_info:016x}",
        "signing_key_name": report.signing_key_name,
        "current_build_minor_major": [report.current_build, report.current_minor, report.current_major],
        "committed_build_minor_major": [report.committed_build, report.committed_minor, report.committed_major],
        "signature_r_le_hex": report.signature_r.hex(),
        "signature_s_le_hex": report.signature_s.hex(),
    }
    for name in (
        "family_id",
        "image_id",
        "report_data",
        "measurement",
        "host_data",
        "id_key_digest",
        "author_key_digest",
        "report_id",
        "report_id_ma",
        "chip_id",
    ):
        facts[name] = getattr(report, name).hex()
    for name in TCBS:
        facts[name] = decode_tcb(getattr(report, name), product).to_json()
    if report.cpuid_fam_id is not None:
        facts.update(cpuid_fam_id=report.cpuid_fam_id, cpuid_mod_id=report.cpuid_mod_id, cpuid_step=report.cpuid_step)
    if report.launch_mit_vector is not None:
        facts["launch_mit_vector"] = f"0x{report.launch_mit_vector:016x}"
        facts["current_mit_vector"] = f"0x{report.current_mit_vector:016x}"
    return facts


def manifest_facts(vector: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in vector["facts"].items() if not k.endswith("note")}


def vector_product(vector: dict[str, Any]) -> Product:
    product = product_from_name(vector["what"]["processor_family"])
    assert product is not None
    return product


@pytest.mark.parametrize("vector", PARSABLE, ids=[v["id"] for v in PARSABLE])
def test_vector_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    data = (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()
    report = parse_report(data)
    assert report_facts(report, vector_product(vector)) == manifest_facts(vector)
    assert serialize_report(report) == data
    assert report.signed_bytes() == data[:SIGNED_SIZE]
    r, s = report.signature_rs()
    assert r == int.from_bytes(bytes.fromhex(vector["facts"]["signature_r_le_hex"]), "little")
    assert s == int.from_bytes(bytes.fromhex(vector["facts"]["signature_s_le_hex"]), "little")
    assert 0 < r < 2**384 and 0 < s < 2**384


def test_vector_ids_cover_every_snp_vector() -> None:
    assert sorted(v["id"] for v in PARSABLE + TRUNCATED) == sorted(vector_ids("snp"))


@pytest.mark.parametrize("vector", TRUNCATED, ids=[v["id"] for v in TRUNCATED])
def test_truncated_vector(vectors_dir: Path, vector: dict[str, Any]) -> None:
    data = (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()
    with pytest.raises(ParseError) as info:
        parse_report(data)
    assert info.value.code == "SNP_REPORT_TRUNCATED"
    assert info.value.actual == str(len(data)) and info.value.expected == str(REPORT_SIZE)


def test_length_other_than_0x4a0(vectors_dir: Path) -> None:
    data = _bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest")
    with pytest.raises(ParseError) as info:
        parse_report(data + b"\0")
    assert info.value.code == "SNP_REPORT_LENGTH"
    for cut in (0, 1, REPORT_SIZE - 1):
        with pytest.raises(ParseError, match="SNP_REPORT_TRUNCATED"):
            parse_report(data[:cut])


# Must-be-zero ranges [start, end) per version (ABI spec ATTESTATION_REPORT; go-sev-guest ReportToProto).
COMMON_RESERVED = [(0x4C, 0x50), (0x1EB, 0x1EC), (0x1EF, 0x1F0), (0x330, 0x4A0)]
RESERVED = {
    "snp-milan-v2-vcek-gosevguest": [*COMMON_RESERVED, (0x188, 0x1A0), (0x1F8, 0x2A0)],
    "snp-milan-v3-vcek-oak-rk": [*COMMON_RESERVED, (0x18B, 0x1A0), (0x1F8, 0x2A0)],
    "snp-genoa-v5-vcek-oak": [*COMMON_RESERVED, (0x18B, 0x1A0), (0x208, 0x2A0)],
}
RESERVED_CASES = [
    (vid, start, end, offset)
    for vid, ranges in RESERVED.items()
    for start, end in ranges
    for offset in sorted({start, (start + end) // 2, end - 1})
]


@pytest.mark.parametrize(
    ("vector_id", "start", "end", "offset"),
    RESERVED_CASES,
    ids=[f"{c[0].split('-')[2]}-0x{c[3]:03X}" for c in RESERVED_CASES],
)
def test_reserved_byte_rejected(vectors_dir: Path, vector_id: str, start: int, end: int, offset: int) -> None:
    data = bytearray(_bytes(vectors_dir, vector_id))
    assert data[offset] == 0
    data[offset] = 0x01
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_RESERVED_NONZERO"
    assert f"0x{offset:03X}" in info.value.message
    assert f"0x{start:03X}" in info.value.message


def test_v2_cpuid_bytes_rejected(vectors_dir: Path) -> None:
    base = _bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest")
    for offset, value in ((0x188, 0x19), (0x189, 0x01), (0x18A, 0x01)):
        data = bytearray(base)
        data[offset] = value
        with pytest.raises(ParseError, match=f"0x{offset:03X}") as info:
            parse_report(bytes(data))
        assert info.value.code == "SNP_RESERVED_NONZERO"


def test_v2_has_no_cpuid_and_v3_has(vectors_dir: Path) -> None:
    v2 = parse_report(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    assert (v2.cpuid_fam_id, v2.cpuid_mod_id, v2.cpuid_step) == (None, None, None)
    assert (v2.launch_mit_vector, v2.current_mit_vector) == (None, None)
    v3 = parse_report(_bytes(vectors_dir, "snp-milan-v3-vcek-oak-rk"))
    assert (v3.cpuid_fam_id, v3.cpuid_mod_id, v3.cpuid_step) == (0x19, 0x01, 0x01)
    assert v3.launch_mit_vector is None


def test_mit_vectors_only_read_from_v5(vectors_dir: Path) -> None:
    """The Genoa v5 report has MIT vectors of 1: relabelled v3 or v4, those bytes are reserved."""
    data = bytearray(_bytes(vectors_dir, "snp-genoa-v5-vcek-oak"))
    assert data[0x1F8] == 1
    for version in (3, 4):
        struct.pack_into("<I", data, 0, version)
        with pytest.raises(ParseError, match="0x1F8") as info:
            parse_report(bytes(data))
        assert info.value.code == "SNP_RESERVED_NONZERO"
    data[0x1F8:0x208] = bytes(16)
    v4 = parse_report(bytes(data))
    assert v4.version == 4 and v4.launch_mit_vector is None and serialize_report(v4) == bytes(data)


@pytest.mark.parametrize("version", [0, 1, 6, 7, 0x100, 0xFFFFFFFF])
def test_unknown_version_rejected(vectors_dir: Path, version: int) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v3-vcek-oak-rk"))
    struct.pack_into("<I", data, 0, version)
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_REPORT_VERSION_UNSUPPORTED"
    assert info.value.actual == str(version)


@pytest.mark.parametrize("algo", [0, 2, 0xFFFFFFFF])
def test_signature_algo_rejected(vectors_dir: Path, algo: int) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x34, algo)
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_SIGNATURE_ALGO_UNSUPPORTED"


@pytest.mark.parametrize("key", [2, 3, 4, 5, 6])
def test_reserved_signing_key_rejected(vectors_dir: Path, key: int) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x48, key << 2)
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_SIGNING_KEY_UNKNOWN"
    assert info.value.actual == str(key)


def test_signing_key_none_and_flags_parse(vectors_dir: Path) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x48, 7 << 2 | 0b11)
    report = parse_report(bytes(data))
    assert (report.signing_key_name, report.author_key_en, report.mask_chip_key) == ("none", True, True)
    assert serialize_report(report) == bytes(data)


@pytest.mark.parametrize("bit", [5, 8, 31])
def test_signer_info_reserved_bits_rejected(vectors_dir: Path, bit: int) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x48, 1 << bit)
    with pytest.raises(ParseError, match="0x048") as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_RESERVED_NONZERO"


@pytest.mark.parametrize(
    "policy",
    [0x0, 0x10000, 0x1_0000_0000_0000 | 0x30000, (1 << 40) | 0x30000, (1 << 26) | 0x30000, (1 << 63) | 0x30000],
)
def test_invalid_policy_rejected(vectors_dir: Path, policy: int) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-genoa-v5-vcek-oak"))
    struct.pack_into("<Q", data, 0x08, policy)
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_POLICY_INVALID"


def test_vmpl_above_3_rejected(vectors_dir: Path) -> None:
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x30, 4)
    with pytest.raises(ParseError, match="SNP_VMPL_INVALID"):
        parse_report(bytes(data))


@pytest.mark.parametrize(
    "vector", [v for v in PARSABLE if v["facts"].get("cpuid_fam_id") is not None], ids=lambda v: v["id"]
)
def test_product_from_cpuid_matches_vector(vector: dict[str, Any]) -> None:
    facts = vector["facts"]
    assert product_from_cpuid(facts["cpuid_fam_id"], facts["cpuid_mod_id"]) is vector_product(vector)


@pytest.mark.parametrize(
    ("family", "model", "product"),
    [
        (0x19, 0x01, Product.MILAN),
        (0x19, 0x00, Product.MILAN),
        (0x19, 0x11, Product.GENOA),
        (0x19, 0xA0, Product.GENOA),
        (0x1A, 0x02, Product.TURIN),
        (0x1A, 0x11, Product.TURIN),
        (0x19, 0x21, None),
        (0x17, 0x31, None),
        (0x1B, 0x00, None),
        (None, 0x01, None),
        (0x19, None, None),
    ],
)
def test_product_from_cpuid(family: int | None, model: int | None, product: Product | None) -> None:
    assert product_from_cpuid(family, model) is product


def test_product_from_name() -> None:
    assert product_from_name("Milan-B0") is Product.MILAN
    assert product_from_name("Genoa") is Product.GENOA
    assert product_from_name("Turin") is Product.TURIN
    assert product_from_name("Milan") is Product.MILAN
    assert product_from_name("Rome") is None


def test_turin_tcb_layout(vectors_dir: Path) -> None:
    """Turin: [FMC, BOOTLOADER, TEE, SNP, 0, 0, 0, MICROCODE] (README; trustee format_tcb_prefix)."""
    report = parse_report(_bytes(vectors_dir, "snp-turin-v5-vcek-oak"))
    assert report.reported_tcb.hex() == "0001000200000047"
    tcb = decode_tcb(report.reported_tcb, Product.TURIN)
    assert (tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode) == (0, 1, 0, 2, 0x47)
    assert list(tcb.components()) == ["fmc", "bootloader", "tee", "snp", "microcode"]
    assert encode_tcb(Product.TURIN, fmc=0, bootloader=1, tee=0, snp=2, microcode=0x47) == report.reported_tcb
    with pytest.raises(ParseError, match="SNP_RESERVED_NONZERO"):  # the Milan layout would read SNP from byte 6
        decode_tcb(report.reported_tcb, Product.MILAN)


def test_milan_tcb_layout(vectors_dir: Path) -> None:
    report = parse_report(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    tcb = decode_tcb(report.reported_tcb, Product.MILAN)
    assert (tcb.fmc, tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode) == (None, 2, 0, 5, 68)
    assert encode_tcb(Product.MILAN, bootloader=2, tee=0, snp=5, microcode=68) == report.reported_tcb
    with pytest.raises(EvidenceError, match="SNP_TCB_INVALID"):
        decode_tcb(report.reported_tcb[:7], Product.MILAN)


# TCB_VERSION reserved bytes: Milan/Genoa 2..5, Turin 4..6 (bytes 4, 5 reserved in every layout). Before, a non-zero
# one parsed and later escaped decode_tcb as an uncaught error (gRPC INTERNAL) when the VCEK came from KDS.
TCB_OFFSETS = {"current_tcb": 0x38, "reported_tcb": 0x180, "committed_tcb": 0x1E0, "launch_tcb": 0x1F0}
TCB_RESERVED = {
    "snp-milan-v3-vcek-oak-rk": (2, 3, 4, 5),
    "snp-genoa-v5-vcek-oak": (2, 3, 4, 5),
    "snp-turin-v5-vcek-oak": (4, 5, 6),
    "snp-milan-v2-vcek-gosevguest": (4, 5),
}  # v2: product unknown
TCB_CASES = [(vid, name, index) for vid, indexes in TCB_RESERVED.items() for name in TCBS for index in indexes]


@pytest.mark.parametrize(
    ("vector_id", "name", "index"),
    TCB_CASES,
    ids=[f"{c[0].split('-')[1]}-{c[0].split('-')[2]}-{c[1]}-{c[2]}" for c in TCB_CASES],
)
def test_tcb_reserved_byte_rejected_at_parse(vectors_dir: Path, vector_id: str, name: str, index: int) -> None:
    data = bytearray(_bytes(vectors_dir, vector_id))
    offset = TCB_OFFSETS[name] + index
    assert data[offset] == 0
    data[offset] = 0x5A
    with pytest.raises(ParseError) as info:
        parse_report(bytes(data))
    assert info.value.code == "SNP_RESERVED_NONZERO"
    assert f"0x{offset:03X}" in info.value.message and name.upper() in info.value.message
    assert info.value.expected and "5a" in info.value.actual


def test_tcb_component_bytes_of_the_other_layout_still_parse(vectors_dir: Path) -> None:
    """A Turin SNP byte (3) is reserved on Milan: a v2 report (product unknown) with a Turin-shaped REPORTED_TCB
    parses; decoding it as Milan (the product its VCEK names, later) fails with the offset."""
    data = bytearray(_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    data[0x180:0x188] = encode_tcb(Product.TURIN, fmc=1, bootloader=2, tee=0, snp=5, microcode=68)
    report = parse_report(bytes(data))
    assert decode_tcb(report.reported_tcb, Product.TURIN).snp == 5
    with pytest.raises(ParseError, match="0x183") as info:
        decode_tcb(report.reported_tcb, Product.MILAN, field="REPORTED_TCB")
    assert info.value.code == "SNP_RESERVED_NONZERO"
