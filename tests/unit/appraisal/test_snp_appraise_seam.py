"""The SEV-SNP appraisal seam (appraisal/snp.py `appraise`): it reads the verified `AttestationReport` and its
`SnpFacts`, and refuses (never affirms) anything else: a result without them (e.g. from a plug-in verifier), a
failed one, an incomplete one.

The helpers here mint a report with the fake AMD PKI, verify it with the real `SnpVerifier` and appraise the result;
the other SNP appraisal tests import them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from verifier.appraisal.model import Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy
from verifier.appraisal.snp import appraise
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from verifier.errors import EvidenceError
from verifier.reference_values.kinds import normalize_value
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.abi import AttestationReport
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.facts import SnpFacts
from verifier.tee.sevsnp.tcb import Product

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
MEASUREMENT = hashlib.sha384(b"measurement").digest()  # the fake PKI's default MEASUREMENT
Verified = VerifiedEvidence[AttestationReport, SnpFacts]


class Served:
    """A collateral source serving fixed items by kind ("amd.crl", ...), labelled `label` ("cache" for a cache hit,
    anything else a vendor fetch); other kinds are unavailable."""

    def __init__(self, items: dict[str, bytes], label: str = "kds") -> None:
        self.items, self.label = items, label

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if key.kind not in self.items:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.kind)
        return CollateralItem(key, self.items[key.kind], at, at + dt.timedelta(days=1), self.label)


def request_files(pki: FakeAmdPki, signer: str = "vcek", crl: bytes | None = None) -> dict[str, bytes]:
    """The signer, its ASK/ASVK and the ARK as the request's collateral files (and `crl` as crl.der)."""
    inter = "ask" if signer == "vcek" else "asvk"
    files = {
        f"{signer}.der": getattr(pki, signer).public_bytes(Encoding.DER),
        f"{inter}.pem": getattr(pki, inter).public_bytes(Encoding.PEM),
        "ark.pem": pki.ark.public_bytes(Encoding.PEM),
    }
    return files | ({"crl.der": crl} if crl is not None else {})


def verify(
    pki: FakeAmdPki,
    evidence: bytes | None = None,
    *,
    collateral: dict[str, bytes] | None = None,
    source: CollateralSource | None = None,
    check_crl: bool = True,
    at: dt.datetime | None = None,
) -> Verified:
    """`SnpVerifier.verify` of `evidence` (default: a fresh report of `pki`) at `at` (default `pki.now`), with the
    request's files (default: the VCEK chain and a fresh CRL, so revocation is "checked") and `source` (default:
    offline)."""
    ctx = VerifyContext(
        at=at or pki.now,
        anchors=pki.anchors(),
        collateral=request_files(pki, crl=pki.crl()) if collateral is None else collateral,
        check_crl=check_crl,
        **({"source": source} if source is not None else {}),
    )
    return SnpVerifier().verify(pki.report() if evidence is None else evidence, ctx)


def minted(pki: FakeAmdPki, **overrides: Any) -> Verified:
    """A report of `pki` with `overrides` (AttestationReport fields, `signer`), verified: it must verify."""
    signer = overrides.get("signer", "vcek")
    verified = verify(pki, pki.report(**overrides), collateral=request_files(pki, signer, crl=pki.crl()))
    assert verified.failure is None and verified.facts is not None, verified.failure
    return verified


def with_report(verified: Verified, **fields: Any) -> Verified:
    """`verified` with a hand-built report (fields the fake cannot mint: out-of-range or wrongly typed values)."""
    assert verified.parsed is not None
    return dataclasses.replace(verified, parsed=dataclasses.replace(verified.parsed, **fields))


def with_facts(verified: Verified, **fields: Any) -> Verified:
    """`verified` with other facts (edge cases the verifier does not produce from the fake PKI)."""
    assert verified.facts is not None
    return dataclasses.replace(verified, facts=dataclasses.replace(verified.facts, **fields))


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(
        id=f"{kind}={value}",
        kind=kind,
        value=normalize_value(kind, value),
        label="w",
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )


def measured(verified: Verified) -> ReferenceValue:
    """The snp.measurement reference value of the verified report's MEASUREMENT."""
    assert verified.parsed is not None
    return ref("snp.measurement", verified.parsed.measurement.hex())


def run(
    verified: VerifiedEvidence,
    policy: Policy | None = None,
    refs: list[ReferenceValue] | None = None,
    at: dt.datetime | None = None,
) -> tuple[Tier, list[Finding]]:
    """Appraise at `at` (default: 12 h after the fake PKI's time) with `refs` (default: the measurement)."""
    at = at or dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
    references = refs if refs is not None else [ref("snp.measurement", MEASUREMENT.hex())]
    baseline, findings, _ = appraise(verified, policy or Policy(), references, at)
    return combine(baseline, findings).status, findings


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def test_a_verified_report_with_its_facts_affirms(pki: FakeAmdPki) -> None:
    verified = minted(pki)
    assert isinstance(verified.parsed, AttestationReport) and isinstance(verified.facts, SnpFacts)
    assert not hasattr(verified, "details")  # the facts are typed: there is no string-keyed dict any more
    assert run(verified) == (Tier.AFFIRMING, [])


def _unverified(verified: VerifiedEvidence) -> None:
    baseline, findings, matched = appraise(
        verified, Policy(), [ref("snp.measurement", MEASUREMENT.hex())], dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    )
    assert (baseline, matched) == ({}, [])
    assert [(f.code, f.claim) for f in findings] == [("SNP_EVIDENCE_UNVERIFIED", Claim.INSTANCE_IDENTITY)]
    assert combine(baseline, findings).status is Tier.CONTRAINDICATED


def test_a_result_without_typed_facts_is_never_affirmed(pki: FakeAmdPki) -> None:
    """A plug-in verifier (or an old one) hands over its claims only, without typed facts: the SNP appraiser cannot
    tell what was verified, so nothing is affirmed (the old appraiser affirmed these claims)."""
    verified = minted(pki)
    _unverified(dataclasses.replace(verified, facts=None))
    _unverified(dataclasses.replace(verified, parsed=None))
    _unverified(VerifiedEvidence("snp", object(), dict(verified.claims), facts=verified.facts))
    _unverified(VerifiedEvidence("snp", verified.parsed, dict(verified.claims), facts={"revocation": "checked"}))


def test_a_failed_or_incomplete_result_is_never_affirmed(pki: FakeAmdPki) -> None:
    verified = minted(pki)
    _unverified(dataclasses.replace(verified, failure=EvidenceError("SNP_SIGNATURE_INVALID", "m")))
    _unverified(dataclasses.replace(verified, incomplete="COLLATERAL_OFFLINE"))


def test_a_guest_policy_the_parser_refuses_fails_closed(pki: FakeAmdPki) -> None:
    """A hand-built report whose GUEST_POLICY has bit 17 clear (parse_report refuses it): a finding, not an
    exception, and not affirmed."""
    status, findings = run(with_report(minted(pki), policy=0))
    assert status is Tier.CONTRAINDICATED
    assert [(f.code, f.claim, f.actual) for f in findings] == [
        ("SNP_POLICY_INVALID", Claim.CONFIGURATION, "policy 0x0000000000000000")
    ]
