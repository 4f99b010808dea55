"""Missing vendor collateral is said the same way by SEV-SNP and TDX: `verify` never raises for it, the result is
`incomplete` with the collateral error's code and `retry_after`. An SNP report whose VCEK (or cert chain) cannot be
had also carries a failure of that code (its signature could not be checked), so it is never affirmed."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.abi import AttestationReport
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.tdx.evidence import TdxVerifier

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")


class RateLimited:
    """A vendor that answers 429 with Retry-After (after the retry budget): every fetch is unavailable."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.asked: list[str] = []

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.asked.append(key.kind)
        raise CollateralUnavailableError("COLLATERAL_RATE_LIMITED", f"{key.kind}: 429", retry_after=self.retry_after)


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


@pytest.fixture(scope="module")
def intel() -> FakeIntelPki:
    return FakeIntelPki()


def _snp(amd: FakeAmdPki, source: RateLimited | None = None, **collateral: bytes) -> VerifiedEvidence:
    ctx = VerifyContext(
        at=amd.now, anchors=amd.anchors(), collateral=collateral, **({"source": source} if source else {})
    )
    return SnpVerifier().verify(amd.report(), ctx)


def _tdx(intel: FakeIntelPki, source: RateLimited | None = None) -> VerifiedEvidence:
    ctx = VerifyContext(at=intel.now, anchors=intel.anchors(), **({"source": source} if source else {}))
    return TdxVerifier().verify(intel.quote(), ctx)


@pytest.mark.parametrize("retry_after", [None, 120.0], ids=["offline", "rate-limited"])
def test_snp_and_tdx_say_missing_collateral_the_same_way(
    amd: FakeAmdPki, intel: FakeIntelPki, retry_after: float | None
) -> None:
    """Offline (no source) and a vendor asking to come back later: neither verifier raises; both answer
    `incomplete` with the source's code and `retry_after`, and keep the parsed evidence and its claims."""
    source = RateLimited(retry_after) if retry_after is not None else None
    code = "COLLATERAL_RATE_LIMITED" if retry_after is not None else "COLLATERAL_OFFLINE"
    snp, tdx = _snp(amd, source), _tdx(intel, source)
    for verified in (snp, tdx):
        assert (verified.incomplete, verified.retry_after) == (code, retry_after), verified
        assert verified.parsed is not None and verified.claims
    assert isinstance(snp.parsed, AttestationReport)
    assert snp.claims["measurement"] == snp.parsed.measurement.hex()
    assert snp.claims["product"] == "Genoa"  # from CPUID (a v3 report)
    # The SNP report's signature could not be checked: a failure of the same code, so it is never affirmed.
    assert snp.failure is not None and snp.failure.code == code
    assert (snp.facts, snp.revocation, snp.collateral) == (None, None, ())
    if source is not None:
        assert source.asked[0] == "amd.vcek"


def test_a_missing_cert_chain_is_incomplete_too(amd: FakeAmdPki) -> None:
    """The VCEK came with the request, its ASK is nowhere: the chain cannot be built (the source's code)."""
    verified = _snp(amd, RateLimited(30.0), **{"vcek.der": amd.vcek.public_bytes(Encoding.DER)})
    assert (verified.incomplete, verified.retry_after) == ("COLLATERAL_RATE_LIMITED", 30.0)
    assert verified.failure is not None and verified.failure.code == "COLLATERAL_RATE_LIMITED"


def test_a_v2_report_of_unknown_product_without_a_vcek_is_incomplete(amd: FakeAmdPki) -> None:
    """Version 2 has no CPUID and no VCEK was sent: the product (hence the KDS URL) is unknown, so the VCEK cannot
    be fetched. The answer is the collateral error COLLATERAL_VCEK_MISSING (no retry time), not an evidence
    failure of another code and not an exception."""
    ctx = VerifyContext(at=amd.now, anchors=amd.anchors(), collateral={}, check_crl=True)
    verified = SnpVerifier().verify(amd.report(version=2), ctx)
    assert (verified.incomplete, verified.retry_after) == ("COLLATERAL_VCEK_MISSING", None)
    assert verified.failure is not None and verified.failure.code == "COLLATERAL_VCEK_MISSING"
    assert "send vcek.pem" in verified.failure.message
    assert verified.claims["product"] is None
