"""The fail-closed findings of the per-TEE appraisal seams (appraisal/snp.py `appraise`, tdx.py and nitro.py
`_not_appraisable`) against mutants scripts/mutation.py left alive after issue 12.

Each seam refuses evidence it cannot read (a failed verification, a plug-in verifier's untyped result) with one
contraindicated finding. The other tests pin the code and the claim; these pin what the finding's `actual` says,
which is all an operator reading the result has to tell a verification that failed (its error code) from a wiring
error (what the appraiser was handed instead of a parsed report and its facts)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_snp_appraise_seam import MEASUREMENT, minted, ref
from verifier.appraisal import nitro, snp, tdx
from verifier.appraisal.model import CONTRAINDICATED, Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy
from verifier.errors import EvidenceError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence
from verifier.tee.sevsnp.tcb import Product

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
Appraiser = Callable[
    [VerifiedEvidence, Policy, Sequence[ReferenceValue], dt.datetime],
    tuple[dict[Claim, int], list[Finding], list[ReferenceValue]],
]


def _refusal(appraise: Appraiser, verified: VerifiedEvidence) -> Finding:
    """The single finding `appraise` answers for `verified`: nothing affirmed, nothing matched, contraindicated."""
    baseline, findings, matched = appraise(verified, Policy(), [], AT)
    assert (baseline, matched, len(findings)) == ({}, [], 1), findings
    assert findings[0].value == CONTRAINDICATED
    assert combine(baseline, findings).status is Tier.CONTRAINDICATED
    return findings[0]


# --- SEV-SNP: a report and its facts, but a failure or an incomplete verification ------------------------------


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def test_snp_a_failed_verification_names_its_error_code(pki: FakeAmdPki) -> None:
    """A result that carries the report and facts but also a failure (and no `incomplete`): the finding says which
    check failed, not an empty reason."""
    verified = dataclasses.replace(minted(pki), failure=EvidenceError("SNP_SIGNATURE_INVALID", "m"))
    finding = _refusal(snp.appraise, verified)
    assert (finding.code, finding.claim) == ("SNP_EVIDENCE_UNVERIFIED", Claim.INSTANCE_IDENTITY)
    assert finding.actual == "AttestationReport with SnpFacts (verification did not complete: SNP_SIGNATURE_INVALID)"


def test_snp_an_incomplete_verification_names_the_collateral_error(pki: FakeAmdPki) -> None:
    verified = dataclasses.replace(minted(pki), incomplete="COLLATERAL_OFFLINE")
    finding = _refusal(snp.appraise, verified)
    assert finding.actual == "AttestationReport with SnpFacts (verification did not complete: COLLATERAL_OFFLINE)"
    # both: `incomplete` is the reason shown (the verifier stopped for want of collateral)
    both = dataclasses.replace(verified, failure=EvidenceError("SNP_SIGNATURE_INVALID", "m"))
    assert _refusal(snp.appraise, both).actual.endswith("(verification did not complete: COLLATERAL_OFFLINE)")


def test_snp_the_same_report_verified_affirms(pki: FakeAmdPki) -> None:
    """The control: without the failure the same report is affirmed, so the refusals above are the failure's."""
    baseline, findings, matched = snp.appraise(minted(pki), Policy(), [ref("snp.measurement", MEASUREMENT.hex())], AT)
    assert findings == [] and len(matched) == 1
    assert combine(baseline, findings).status is Tier.AFFIRMING


# --- TDX and Nitro: `actual` is the failure's code, else what was handed over ---------------------------------


@pytest.mark.parametrize(
    ("verified", "actual"),
    [
        pytest.param(
            VerifiedEvidence("tdx", None, {}, EvidenceError("TDX_QUOTE_TRUNCATED", "m")),
            "TDX_QUOTE_TRUNCATED",
            id="parse-failed",
        ),
        pytest.param(
            VerifiedEvidence("tdx", b"quote", {}, EvidenceError("TDX_QUOTE_SIGNATURE_INVALID", "m"), facts={}),
            "TDX_QUOTE_SIGNATURE_INVALID",
            id="verification-failed",
        ),
        pytest.param(VerifiedEvidence("tdx", None, {}), "parsed NoneType, facts NoneType", id="nothing"),
        pytest.param(
            VerifiedEvidence("tdx", b"quote", {}, facts={"tcb": "UpToDate"}), "parsed bytes, facts dict", id="plug-in"
        ),
    ],
)
def test_tdx_not_appraisable_says_why(verified: VerifiedEvidence, actual: str) -> None:
    finding = _refusal(tdx.appraise, verified)
    assert (finding.code, finding.claim) == ("TDX_NOT_APPRAISABLE", Claim.HARDWARE)
    assert finding.actual == actual


@pytest.mark.parametrize(
    ("verified", "actual"),
    [
        pytest.param(
            VerifiedEvidence("nitro", None, {}, EvidenceError("NITRO_COSE_MALFORMED", "m")),
            "NITRO_COSE_MALFORMED",
            id="parse-failed",
        ),
        pytest.param(
            VerifiedEvidence("nitro", b"document", {}, EvidenceError("NITRO_SIGNATURE_INVALID", "m")),
            "NITRO_SIGNATURE_INVALID",
            id="verification-failed",
        ),
        pytest.param(VerifiedEvidence("nitro", None, {}), "parsed NoneType", id="nothing"),
        pytest.param(VerifiedEvidence("nitro", b"document", {"pcrs": {}}), "parsed bytes", id="plug-in"),
    ],
)
def test_nitro_not_appraisable_says_why(verified: VerifiedEvidence, actual: str) -> None:
    finding = _refusal(nitro.appraise, verified)
    assert (finding.code, finding.claim) == ("NITRO_NOT_APPRAISABLE", Claim.HARDWARE)
    assert finding.actual == actual
