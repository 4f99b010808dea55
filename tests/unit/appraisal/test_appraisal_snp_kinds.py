"""appraisal/snp.py with the typed SNP kinds: snp.min_guest_svn (GUEST_SVN >= minimum, every minimum required)
and snp.platform_info (PLATFORM_INFO & mask == value), on claim dicts and on the real vectors' claims."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from verifier.appraisal.model import Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.snp import appraise_snp
from verifier.reference_values.kinds import normalize_value
from verifier.reference_values.model import ReferenceValue
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.claims import claims as snp_claims_of

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
MEASUREMENT = "11" * 48
SMT_CLEAR = "00000000000000010000000000000000"
SMT_SET = "00000000000000010000000000000001"
TSME_AND_ECC_SET = "00000000000000060000000000000006"


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "policy": "0x0000000000030000",
        "policy_decoded": {"debug": False, "migrate_ma": False},
        "vmpl": 0,
        "measurement": MEASUREMENT,
        "chip_id": "ab" * 64,
        "current_build_minor_major": [3, 55, 1],
        "guest_svn": 2,
        "platform_info": "0x0000000000000025",
    }
    return base | overrides


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(
        id=f"{kind}={value}",
        kind=kind,
        value=normalize_value(kind, value),
        label="w",
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )


def run(c: dict[str, Any], *extra: ReferenceValue) -> tuple[Tier, list[Finding], list[ReferenceValue]]:
    baseline, findings, matched = appraise_snp(
        c, {"revocation": "checked"}, Policy(), [ref("snp.measurement", c["measurement"]), *extra], at=AT
    )
    return combine(baseline, findings).status, findings, matched


def test_guest_svn_minimum() -> None:
    assert run(claims(), ref("snp.min_guest_svn", "00000002"))[0] is Tier.AFFIRMING
    status, findings, matched = run(claims(), ref("snp.min_guest_svn", "00000003"))
    assert status is Tier.CONTRAINDICATED
    assert [(f.code, f.claim, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES, "guest_svn >= 3", "2")
    ]
    assert [r.kind for r in matched] == ["snp.measurement"]


def test_every_minimum_holds() -> None:
    status, findings, _ = run(
        claims(guest_svn=4), ref("snp.min_guest_svn", "00000002"), ref("snp.min_guest_svn", "00000005")
    )
    assert status is Tier.CONTRAINDICATED and findings[0].expected == "guest_svn >= 5"


def test_platform_info_constraints() -> None:
    status, findings, _ = run(claims(), ref("snp.platform_info", SMT_CLEAR))
    assert status is Tier.CONTRAINDICATED
    assert [(f.code, f.claim, f.actual) for f in findings] == [
        (
            "REFERENCE_VALUE_MISMATCH",
            Claim.CONFIGURATION,
            "0x0000000000000025 (set: SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE)",
        )
    ]
    assert "SMT_EN=0" in findings[0].expected
    assert run(claims(platform_info="0x0000000000000024"), ref("snp.platform_info", SMT_CLEAR))[0] is Tier.AFFIRMING
    assert (
        run(
            claims(platform_info="0x0000000000000026"),
            ref("snp.platform_info", SMT_CLEAR),
            ref("snp.platform_info", TSME_AND_ECC_SET),
        )[0]
        is Tier.AFFIRMING
    )
    assert (
        run(
            claims(platform_info="0x0000000000000024"),
            ref("snp.platform_info", SMT_CLEAR),
            ref("snp.platform_info", TSME_AND_ECC_SET),
        )[0]
        is Tier.CONTRAINDICATED
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"guest_svn": None},
        {"guest_svn": "2"},
        {"guest_svn": True},
        {"guest_svn": -1},
        {"platform_info": None},
        {"platform_info": "0x25"},
        {"platform_info": 37},
    ],
)
def test_malformed_claims_fail_closed(bad: dict[str, Any]) -> None:
    status, findings, _ = run(claims(**bad), ref("snp.min_guest_svn", "00000000"), ref("snp.platform_info", SMT_SET))
    assert status is Tier.CONTRAINDICATED and "CLAIM_MISSING" in [f.code for f in findings]


def test_no_constraint_values_no_check() -> None:
    assert run(claims(guest_svn=0))[0] is Tier.AFFIRMING


VECTORS = {v["id"]: v for v in manifest_vectors("snp")}


@pytest.mark.parametrize(
    ("vector_id", "minimum", "platform", "ok"),
    [
        ("snp-milan-v2-vcek-azure-constellation", "00000002", "00000000000000010000000000000001", True),
        ("snp-milan-v2-vcek-azure-constellation", "00000003", None, False),  # GUEST_SVN 2
        ("snp-genoa-v5-vcek-oak", "00000000", "00000000000000050000000000000004", False),  # SMT_EN set
        ("snp-genoa-v5-vcek-oak", "00000000", "00000000000000040000000000000004", True),  # ECC_EN set
    ],
)
def test_real_vector_claims(vectors_dir: Path, vector_id: str, minimum: str, platform: str | None, ok: bool) -> None:
    vector = VECTORS[vector_id]
    c = snp_claims_of(parse_report((vectors_dir / vector["dir"] / "evidence.bin").read_bytes()), None)
    extra = [ref("snp.min_guest_svn", minimum)] + ([ref("snp.platform_info", platform)] if platform else [])
    _, findings, _ = run(dict(c), *extra)
    assert ([f.code for f in findings if f.code.startswith("REFERENCE")] == []) is ok
