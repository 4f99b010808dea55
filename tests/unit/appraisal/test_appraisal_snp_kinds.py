"""appraisal/snp.py with the typed SNP kinds: snp.min_guest_svn (GUEST_SVN >= minimum, every minimum required)
and snp.platform_info (PLATFORM_INFO & mask == value), on reports minted by the fake AMD PKI (hand-built fields
where the fake cannot mint them) and on the real vectors, each verified by the SnpVerifier, then appraised."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_snp_appraise_seam import Verified, measured, minted, ref, with_report
from verifier.appraisal.model import Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.snp import appraise
from verifier.clock import parse_rfc3339
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifyContext
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import TrustAnchors

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
SMT_CLEAR = "00000000000000010000000000000000"
SMT_SET = "00000000000000010000000000000001"
TSME_AND_ECC_SET = "00000000000000060000000000000006"


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def report(pki: FakeAmdPki, **overrides: Any) -> Verified:
    """A verified report with GUEST_SVN 2 and PLATFORM_INFO 0x25 (SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE) unless
    `overrides` say otherwise."""
    return minted(pki, **{"guest_svn": 2, "platform_info": 0x25, "measurement": b"\x11" * 48, **overrides})


@pytest.fixture(scope="module")
def base(pki: FakeAmdPki) -> Verified:
    return report(pki)


def run(verified: Verified, *extra: ReferenceValue) -> tuple[Tier, list[Finding], list[ReferenceValue]]:
    baseline, findings, matched = appraise(verified, Policy(), [measured(verified), *extra], AT)
    return combine(baseline, findings).status, findings, matched


def test_guest_svn_minimum(base: Verified) -> None:
    assert run(base, ref("snp.min_guest_svn", "00000002"))[0] is Tier.AFFIRMING
    status, findings, matched = run(base, ref("snp.min_guest_svn", "00000003"))
    assert status is Tier.CONTRAINDICATED
    assert [(f.code, f.claim, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES, "guest_svn >= 3", "2")
    ]
    assert [r.kind for r in matched] == ["snp.measurement"]


def test_every_minimum_holds(pki: FakeAmdPki) -> None:
    status, findings, _ = run(
        report(pki, guest_svn=4), ref("snp.min_guest_svn", "00000002"), ref("snp.min_guest_svn", "00000005")
    )
    assert status is Tier.CONTRAINDICATED and findings[0].expected == "guest_svn >= 5"


def test_platform_info_constraints(pki: FakeAmdPki, base: Verified) -> None:
    status, findings, _ = run(base, ref("snp.platform_info", SMT_CLEAR))
    assert status is Tier.CONTRAINDICATED
    assert [(f.code, f.claim, f.actual) for f in findings] == [
        (
            "REFERENCE_VALUE_MISMATCH",
            Claim.CONFIGURATION,
            "0x0000000000000025 (set: SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE)",
        )
    ]
    assert "SMT_EN=0" in findings[0].expected
    assert run(report(pki, platform_info=0x24), ref("snp.platform_info", SMT_CLEAR))[0] is Tier.AFFIRMING
    assert (
        run(
            report(pki, platform_info=0x26),
            ref("snp.platform_info", SMT_CLEAR),
            ref("snp.platform_info", TSME_AND_ECC_SET),
        )[0]
        is Tier.AFFIRMING
    )
    assert (
        run(
            report(pki, platform_info=0x24),
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
        {"guest_svn": 1 << 32},
        {"platform_info": None},
        {"platform_info": "0x25"},
        {"platform_info": True},
        {"platform_info": -1},
        {"platform_info": 1 << 64},
    ],
)
def test_malformed_fields_fail_closed(base: Verified, bad: dict[str, Any]) -> None:
    """A hand-built report (the parser never yields these) whose GUEST_SVN or PLATFORM_INFO is not an integer of
    its width: the value is missing, and the constraint that pins it fails closed."""
    broken = with_report(base, **bad)
    status, findings, _ = run(broken, ref("snp.min_guest_svn", "00000000"), ref("snp.platform_info", SMT_SET))
    assert status is Tier.CONTRAINDICATED and "CLAIM_MISSING" in [f.code for f in findings]


def test_no_constraint_values_no_check(pki: FakeAmdPki) -> None:
    assert run(report(pki, guest_svn=0))[0] is Tier.AFFIRMING


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
def test_real_vector_reports(vectors_dir: Path, vector_id: str, minimum: str, platform: str | None, ok: bool) -> None:
    """The vector verified offline with its own certificates (revocation off: the vectors carry no AMD CRL)."""
    vector = VECTORS[vector_id]
    folder = vectors_dir / vector["dir"]
    collateral = {name: (folder / name).read_bytes() for name in ("vcek.der", "ask.pem", "ark.pem")}
    ctx = VerifyContext(
        at=parse_rfc3339(vector["verify_at"]), anchors=TrustAnchors(), collateral=collateral, check_crl=False
    )
    verified = SnpVerifier().verify((folder / "evidence.bin").read_bytes(), ctx)
    assert verified.failure is None, verified.failure
    extra = [ref("snp.min_guest_svn", minimum)] + ([ref("snp.platform_info", platform)] if platform else [])
    _, findings, _ = run(verified, *extra)
    assert [f.code for f in findings if f.code.startswith("REFERENCE")] == ([] if ok else ["REFERENCE_VALUE_MISMATCH"])
    assert [f.code for f in findings if not f.code.startswith("REFERENCE")] == []
