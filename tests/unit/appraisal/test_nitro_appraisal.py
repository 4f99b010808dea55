"""Nitro appraisal of the typed, parsed attestation document (`VerifiedEvidence.parsed`, tee/nitro/parse.py):
debug mode and PCR reference values read from the document, never the claim dict, and failing closed without it.
Documents are minted by the fake AWS PKI and verified by the Nitro scheme."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from tests.fakes.aws_pki import FakeAwsPki
from verifier.appraisal.model import Claim, Tier, combine
from verifier.appraisal.nitro import appraise
from verifier.appraisal.policy import Policy
from verifier.appraisal.registry import get_verifier
from verifier.errors import EvidenceError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.nitro.claims import claims as claims_of
from verifier.tee.nitro.parse import NitroEvidence, parse

PCR = b"\x11" * 48
ZERO = bytes(48)


@functools.cache
def pki() -> FakeAwsPki:
    return FakeAwsPki()


def verified(pcrs: dict[int, bytes]) -> VerifiedEvidence:
    evidence = pki().mint(pcrs=pcrs)
    result = get_verifier("nitro").verify(evidence, VerifyContext(at=pki().now, anchors=pki().anchors()))
    assert result.failure is None, result.failure
    assert isinstance(result.parsed, NitroEvidence)
    return result


def refs(pcrs: dict[int, bytes]) -> list[ReferenceValue]:
    at = pki().now - dt.timedelta(days=1)
    return [ReferenceValue(f"p{i}", f"nitro.pcr{i}", value, "enclave", at) for i, value in pcrs.items()]


@pytest.mark.parametrize(
    ("pcrs", "allow_debug", "codes"),
    [
        pytest.param({0: PCR, 1: PCR, 2: PCR}, False, [], id="production"),
        pytest.param({0: ZERO, 1: ZERO, 2: ZERO}, False, ["NITRO_DEBUG_MODE"], id="debug-forbidden"),
        pytest.param({0: ZERO, 1: ZERO, 2: ZERO}, True, [], id="debug-allowed"),
        pytest.param({0: ZERO, 1: ZERO, 2: PCR}, False, [], id="two-zero-pcrs-are-not-debug"),
    ],
)
def test_debug_mode_is_read_from_the_document(pcrs: dict[int, bytes], allow_debug: bool, codes: list[str]) -> None:
    baseline, findings, matched = appraise(verified(pcrs), Policy(allow_debug=allow_debug), refs(pcrs), pki().now)
    assert [f.code for f in findings] == codes
    assert combine(baseline, findings).status is (Tier.CONTRAINDICATED if codes else Tier.AFFIRMING)
    assert len(matched) == 3
    if codes:
        assert (findings[0].claim, findings[0].actual) == (
            Claim.CONFIGURATION,
            f"pcr0={ZERO.hex()} pcr1={ZERO.hex()} pcr2={ZERO.hex()}",
        )


def test_the_document_decides_not_the_claims() -> None:
    """Claims that contradict the document (a production document's, beside a debug one) change nothing."""
    debug = verified({0: ZERO, 1: ZERO, 2: ZERO})
    production = parse(pki().mint(pcrs={0: PCR, 1: PCR, 2: PCR}))
    lying = VerifiedEvidence("nitro", debug.parsed, claims_of(production.document), revocation="not-applicable")
    baseline, findings, matched = appraise(lying, Policy(), refs({0: PCR, 1: PCR, 2: PCR}), pki().now)
    assert [f.code for f in findings] == ["NITRO_DEBUG_MODE", *["REFERENCE_VALUE_MISMATCH"] * 3]
    assert matched == [] and combine(baseline, findings).status is Tier.CONTRAINDICATED


@pytest.mark.parametrize(
    "evidence",
    [
        pytest.param(
            VerifiedEvidence("nitro", None, {"pcrs": {"0": PCR.hex()}, "debug_mode": False}), id="no-document"
        ),
        pytest.param(VerifiedEvidence("nitro", b"document", {}), id="document-bytes"),
        pytest.param(
            VerifiedEvidence(
                "nitro",
                parse(FakeAwsPki().mint(pcrs={0: PCR, 1: PCR, 2: PCR})),
                {},
                EvidenceError("NITRO_SIGNATURE_INVALID", "x"),
            ),
            id="verification-failed",
        ),
    ],
)
def test_evidence_without_a_verified_document_fails_closed(evidence: VerifiedEvidence) -> None:
    baseline, findings, matched = appraise(evidence, Policy(), refs({0: PCR, 1: PCR, 2: PCR}), pki().now)
    assert baseline == {} and matched == []
    assert [(f.code, f.claim, f.value) for f in findings] == [("NITRO_NOT_APPRAISABLE", Claim.HARDWARE, 96)]
    assert combine(baseline, findings).status is Tier.CONTRAINDICATED
