"""TDX claims (claims.py) and TD_ATTRIBUTES / XFAM decoding (attributes.py) against the real vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from verifier.tee.tdx.attributes import decode_td_attributes, decode_xfam, is_debug, sept_ve_disable
from verifier.tee.tdx.claims import claims
from verifier.tee.tdx.pck import pck_chain, pck_info
from verifier.tee.tdx.quote import parse_quote

VECTORS = manifest_vectors("tdx")
IDS = [v["id"] for v in VECTORS]
# manifest fact name -> claim name where they differ; facts about the container layout are not claims
RENAMED = {
    "trailing_bytes_after_signature_data": "trailing_bytes",
    "pck_pce_id": "pce_id",
    "td_attributes_debug": "debug",
}
NOT_CLAIMS = {
    "body_size",
    "cert_data_type",
    "inner_cert_data_type",
    "signed_length",
    "signature_data_length",
    "pck_issuer",
}


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_claims_agree_with_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    quote = parse_quote((vectors_dir / vector["dir"] / "evidence.bin").read_bytes())
    out = claims(quote, pck_info(pck_chain(quote.pck_chain_pem)[0]))
    facts = {RENAMED.get(k, k): v for k, v in vector["facts"].items() if k not in NOT_CLAIMS}
    assert {k: out[k] for k in facts} == facts
    assert out["trailing_nonzero"] is quote.trailing_nonzero
    assert out["debug"] is out["td_attributes_decoded"]["debug"] is False  # type: ignore[index]
    assert out["sept_ve_disable"] is out["td_attributes_decoded"]["sept_ve_disable"]  # type: ignore[index]
    assert ("tee_tcb_svn_2" in out) == ("mr_servicetd" in out) == (quote.body_type == 3)
    assert ("body_type" in out) == (quote.version == 5)
    json.dumps(out)  # claims go into the EAR as JSON


def test_claims_without_pck(vectors_dir: Path) -> None:
    quote = parse_quote((vectors_dir / "tdx/tdx-v4-gcp-cos-nocollateral/evidence.bin").read_bytes())
    out = claims(quote, None)
    assert not {"fmspc", "pce_id", "pck_cpu_svn", "pck_pce_svn"} & set(out)
    assert out["tee_type"] == "0x81" and out["trailing_bytes"] == 3065 and out["trailing_nonzero"] is False


def test_td_attributes_of_the_vectors() -> None:
    gcp = decode_td_attributes(bytes.fromhex("0000001000000000"))  # SEPT_VE_DISABLE only
    assert gcp["sept_ve_disable"] is True and gcp["raw"] == 1 << 28 and gcp["unknown_bits"] == 0
    assert not any(v for k, v in gcp.items() if isinstance(v, bool) and k != "sept_ve_disable")
    spr = decode_td_attributes(bytes.fromhex("0000004000000000"))  # PKS only
    assert spr["pks"] is True and spr["sept_ve_disable"] is False and spr["sec"] == 1 << 22


@pytest.mark.parametrize(
    ("bit", "name"),
    [
        (0, "debug"),
        (4, "hgs_plus_prof"),
        (27, "lass"),
        (28, "sept_ve_disable"),
        (29, "migratable"),
        (30, "pks"),
        (31, "kl"),
        (62, "tpa"),
        (63, "perfmon"),
    ],
)
def test_td_attribute_bits(bit: int, name: str) -> None:
    raw = (1 << bit).to_bytes(8, "little")
    decoded = decode_td_attributes(raw)
    assert decoded[name] is True and decoded["raw"] == 1 << bit
    assert [k for k, v in decoded.items() if v is True] == [name]
    assert is_debug(raw) is (bit == 0) and sept_ve_disable(raw) is (bit == 28)


def test_td_attributes_groups_and_unknown_bits() -> None:
    value = 1 | 1 << 2 | 1 << 40 | 1 << 63
    decoded = decode_td_attributes(value.to_bytes(8, "little"))
    assert decoded["tud"] == 0b101 and decoded["other"] == (1 << 8 | 1 << 31)
    assert decoded["unknown_bits"] == 1 << 2 | 1 << 40
    with pytest.raises(ValueError):
        decode_td_attributes(bytes(7))
    with pytest.raises(ValueError):
        is_debug(bytes(9))


def test_xfam() -> None:
    decoded = decode_xfam(bytes.fromhex("e71a060000000000"))  # SPR vector: AVX-512, PKRU, CET, AMX
    on = {k for k, v in decoded.items() if v is True}
    assert on == {
        "x87",
        "sse",
        "avx",
        "avx512_opmask",
        "avx512_zmm_hi256",
        "avx512_hi16_zmm",
        "pkru",
        "cet_u",
        "cet_s",
        "amx_tilecfg",
        "amx_tiledata",
    }
    assert decoded["raw"] == 0x61AE7 and decoded["unknown_bits"] == 0
    assert decode_xfam((1 << 40).to_bytes(8, "little"))["unknown_bits"] == 1 << 40


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_service_td_of_the_vectors(vectors_dir: Path, vector: dict[str, Any]) -> None:
    """The real TD 1.5 quotes carry a zero MRSERVICETD (no service TD bound: no tdx.mr_servicetd value needed);
    the TD 1.0 quotes (v4) have none, and a workload that pins one cannot match them."""
    import datetime as dt

    from verifier.appraisal.policy import Policy
    from verifier.appraisal.tdx import appraise
    from verifier.reference_values.model import ReferenceValue
    from verifier.tee.base import VerifiedEvidence
    from verifier.tee.tdx.facts import TdxFacts

    quote = parse_quote((vectors_dir / vector["dir"] / "evidence.bin").read_bytes())
    out = claims(quote, None)
    at = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    mr_td = ReferenceValue("m", "tdx.mr_td", bytes.fromhex(str(out["mr_td"])), "w", at)
    pinned = ReferenceValue("s", "tdx.mr_servicetd", bytes(48), "w", at)
    verified = VerifiedEvidence("tdx", quote, out, facts=TdxFacts())  # no collateral: the TCB is not appraised here
    codes = {f.code for f in appraise(verified, Policy(), [mr_td], at)[1]}
    assert not codes & {"TDX_SERVICE_TD_NOT_APPROVED", "REFERENCE_VALUE_MISMATCH", "CLAIM_MISSING"}
    codes = {f.code for f in appraise(verified, Policy(), [mr_td, pinned], at)[1]}
    if quote.body_type == 3:
        assert out["mr_servicetd"] == "00" * 48
        assert not codes & {"TDX_SERVICE_TD_NOT_APPROVED", "REFERENCE_VALUE_MISMATCH", "CLAIM_MISSING"}
    else:
        assert "CLAIM_MISSING" in codes
