"""SEV-SNP claims, GUEST_POLICY and PLATFORM_INFO decoding (ABI spec pub. 56860) against the real vectors."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.unit.tee.sevsnp.test_snp_abi import PARSABLE, manifest_facts, vector_product
from verifier.errors import ParseError
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.claims import claims, debug
from verifier.tee.sevsnp.policy import GuestPolicy, decode_platform_info, decode_policy


def _report_bytes(vectors_dir: Path, vector_id: str) -> bytes:
    vector = next(v for v in manifest_vectors("snp") if v["id"] == vector_id)
    return Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()


@pytest.mark.parametrize("vector", PARSABLE, ids=[v["id"] for v in PARSABLE])
def test_claims_agree_with_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    report = parse_report((vectors_dir / vector["dir"] / "evidence.bin").read_bytes())
    product = vector_product(vector)
    out = claims(report, product)
    facts = {k: v for k, v in manifest_facts(vector).items() if not k.startswith("signature_")}
    assert {k: out[k] for k in facts} == facts
    assert out["product"] == product.value
    assert out["debug"] is debug(report) is out["policy_decoded"]["debug"]  # type: ignore[index]
    assert out["platform_info_decoded"]["raw"] == out["platform_info"]  # type: ignore[index]
    assert ("cpuid_fam_id" in out) == (report.version >= 3)
    assert ("launch_mit_vector" in out) == (report.version >= 5)
    json.dumps(out)  # claims go into the EAR as JSON


def test_claims_without_product_keep_raw_tcb(vectors_dir: Path) -> None:
    report = parse_report(_report_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    out = claims(report, None)
    assert out["product"] is None
    for name in ("current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"):
        assert out[name] == {"raw": "0200000000000544"}


def test_claims_tcb_not_matching_the_product_stay_raw(vectors_dir: Path) -> None:
    from verifier.tee.sevsnp.tcb import Product

    report = parse_report(_report_bytes(vectors_dir, "snp-turin-v5-vcek-oak"))
    assert claims(report, Product.MILAN)["reported_tcb"] == {"raw": "0001000200000047"}


def test_debug_policy_of_the_gosevguest_sample(vectors_dir: Path) -> None:
    """go-sev-guest's sample report has policy 0xb0000: SMT, reserved bit 17 and DEBUG (bit 19)."""
    report = parse_report(_report_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    assert debug(report) is True
    assert debug(parse_report(_report_bytes(vectors_dir, "snp-genoa-v5-vcek-oak"))) is False


def test_decode_policy_fields() -> None:
    assert decode_policy(0x3001F) == GuestPolicy(
        abi_minor=0x1F,
        abi_major=0,
        smt=True,
        migrate_ma=False,
        debug=False,
        single_socket=False,
        cxl_allow=False,
        mem_aes_256_xts=False,
        rapl_dis=False,
        ciphertext_hiding=False,
        page_swap_disable=False,
    )
    names = [
        "smt",
        None,
        "migrate_ma",
        "debug",
        "single_socket",
        "cxl_allow",
        "mem_aes_256_xts",
        "rapl_dis",
        "ciphertext_hiding",
        "page_swap_disable",
    ]
    for offset, name in enumerate(names):
        if name is None:
            continue
        decoded = decode_policy(1 << 17 | 1 << (16 + offset)).to_json()
        assert [k for k, v in decoded.items() if v is True] == [name]
    full = decode_policy(0x3FF_0000 | 0x0302)
    assert (full.abi_major, full.abi_minor) == (3, 2)
    assert all(v for k, v in full.to_json().items() if k not in ("abi_major", "abi_minor"))


@pytest.mark.parametrize("value", [0, 0x10000, (1 << 26) | 0x20000, (1 << 40) | 0x20000, 1 << 64, -1])
def test_decode_policy_rejects(value: int) -> None:
    with pytest.raises(ParseError, match="SNP_POLICY_INVALID"):
        decode_policy(value)


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (0x01, {"smt_en"}),
        (0x25, {"smt_en", "ecc_en", "alias_check_complete"}),
        (0x27, {"smt_en", "tsme_en", "ecc_en", "alias_check_complete"}),
        (0x67, {"smt_en", "tsme_en", "ecc_en", "alias_check_complete", "iommu_write_safe"}),  # the Turin vector
        (0x98, {"rapl_dis", "ciphertext_hiding_en", "tio_en"}),
    ],
)
def test_decode_platform_info(value: int, on: set[str]) -> None:
    info = decode_platform_info(value)
    data = info.to_json()
    assert {k for k, v in data.items() if v is True} == on
    assert data["raw"] == f"0x{value:016x}" and info.unknown_bits == 0


def test_platform_info_unknown_bits_kept() -> None:
    info = decode_platform_info(1 << 8 | 1)
    assert info.smt_en and info.unknown_bits == 1 << 8 and info.raw == 0x101
    with pytest.raises(ParseError):
        decode_platform_info(1 << 64)


def test_platform_info_claims_of_vectors(vectors_dir: Path) -> None:
    report = parse_report(_report_bytes(vectors_dir, "snp-turin-v5-vcek-oak"))
    decoded = claims(report, None)["platform_info_decoded"]
    assert decoded["iommu_write_safe"] is True and decoded["tio_en"] is False  # type: ignore[index]


def test_claims_of_a_signing_key_none_report(vectors_dir: Path) -> None:
    data = bytearray(_report_bytes(vectors_dir, "snp-milan-v2-vcek-gosevguest"))
    struct.pack_into("<I", data, 0x48, 7 << 2)
    out = claims(parse_report(bytes(data)), None)
    assert (out["signing_key"], out["signing_key_name"]) == (7, "none")
