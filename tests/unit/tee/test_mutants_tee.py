"""Tests that kill surviving mutants of scripts/mutation.py in the TEE verifiers (SEV-SNP CRL signature, VCEK
gathering, chip binding, report serialization; TDX collateral rejection and PCS bookkeeping)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki, _name
from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.pcs_items import KIND_PCK_CRL, KIND_ROOT_CA_CRL, envelope, next_update
from verifier.errors import EvidenceError
from verifier.tee.base import VerifyContext
from verifier.tee.sevsnp.abi import parse_report, serialize_report
from verifier.tee.sevsnp.certs import SnpCertificates
from verifier.tee.sevsnp.crl import verify_crl
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.sevsnp.verify import verify_report
from verifier.tee.tdx.evidence import TdxVerifier

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def milan() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


# --- SEV-SNP -----------------------------------------------------------------------------------------------------


def _ark_crl(pki: FakeAmdPki, algorithm: hashes.SHA256 | hashes.SHA384, salt: int) -> bytes:
    """An ARK CRL signed with RSASSA-PSS, MGF1 with `algorithm`, the given hash and salt length."""
    pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(f"ARK-{pki.product.value}"))
        .last_update(pki.now - DAY)
        .next_update(pki.now + 7 * DAY)
        .sign(pki.ark_key, algorithm, rsa_padding=pss)
        .public_bytes(Encoding.DER)
    )


def test_an_ark_crl_with_amds_pss_parameters_verifies(milan: FakeAmdPki) -> None:
    verify_crl(_ark_crl(milan, hashes.SHA384(), 48), milan.ark, milan.now)


@pytest.mark.parametrize(
    ("algorithm", "salt"),
    [(hashes.SHA256(), 32), (hashes.SHA256(), 48), (hashes.SHA384(), 32), (hashes.SHA384(), 64)],
    ids=["sha256-salt32", "sha256-salt48", "sha384-salt32", "sha384-salt64"],
)
def test_an_ark_crl_with_other_pss_parameters_is_refused(
    milan: FakeAmdPki, algorithm: hashes.SHA256 | hashes.SHA384, salt: int
) -> None:
    """Signed by the real ARK key, so only the PSS parameters are wrong (pub. 57230: SHA-384, salt 48)."""
    with pytest.raises(EvidenceError) as info:
        verify_crl(_ark_crl(milan, algorithm, salt), milan.ark, milan.now)
    assert info.value.code == "CRL_SIGNATURE_INVALID"


def test_a_v2_vcek_report_of_unknown_product_without_any_vcek_is_collateral_vcek_missing(milan: FakeAmdPki) -> None:
    """Version 2 has no CPUID, no VCEK was sent and none is in the anchors: the product (hence the KDS URL) is
    unknown, so the VCEK cannot be fetched; the answer is the collateral error, not a later evidence failure."""
    ctx = VerifyContext(at=milan.now, anchors=milan.anchors(), collateral={}, check_crl=True)
    verified = SnpVerifier().verify(milan.report(version=2), ctx)
    assert verified.incomplete == "COLLATERAL_VCEK_MISSING"
    assert verified.failure is not None and verified.failure.code == "COLLATERAL_VCEK_MISSING"


def test_a_vcek_without_hwid_is_a_chip_id_mismatch_with_expected_missing(milan: FakeAmdPki) -> None:
    validity = (milan.now - DAY, milan.now + DAY)
    vcek = milan._signer("SEV-VCEK", milan.vcek_key, "SEV-Milan", milan.ask_key, validity, hwid=None)
    certs = SnpCertificates(ark=milan.ark, ask=milan.ask, vcek=vcek)
    report = parse_report(milan.report())
    with pytest.raises(EvidenceError) as info:
        verify_report(report, certs, milan.anchors(), milan.now)
    assert info.value.code == "SNP_CHIP_ID_MISMATCH"
    assert info.value.expected == "missing"
    assert info.value.actual == report.chip_id.hex()


@pytest.mark.parametrize("field", ["report_data", "measurement", "chip_id", "signature_r"])
@pytest.mark.parametrize("delta", [-1, 1])
def test_serialize_report_refuses_a_bytes_field_of_the_wrong_length(milan: FakeAmdPki, field: str, delta: int) -> None:
    report = parse_report(milan.report())
    value = getattr(report, field)
    wrong = dataclasses.replace(report, **{field: value[:-1] if delta < 0 else value + b"\x00"})
    with pytest.raises(ValueError, match=f"{field} must be {len(value)} bytes, got {len(value) + delta}"):
        serialize_report(wrong)


# --- TDX ---------------------------------------------------------------------------------------------------------


class _Recording:
    """Serves `inner`'s items and records what the verifier rejects (a RejectingSource)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.rejected: dict[str, str] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        return self.inner.fetch(key, at=at)  # type: ignore[attr-defined,no-any-return]

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected[item.key.kind] = reason


def test_tdx_served_items_that_fail_are_rejected_when_every_item_used_came_from_the_request() -> None:
    """The request brings all four items (valid); the source serves copies that each fail on their own (TCB info
    and QE identity signed by a stray key, PCK and root CA CRLs signed by stray keys). The request's copies decide
    every item, and the source's bad copies are still reported so a cache drops them."""
    pki = FakeIntelPki()
    stray = ec.generate_private_key(ec.SECP256R1())
    bad = pki.collateral_files(
        **{
            "tcb_info.json": pki.sign_json("tcbInfo", pki.tcb_info(), stray),
            "qe_identity.json": pki.sign_json("enclaveIdentity", pki.qe_identity(), stray),
            "pck_crl.der": pki.pck_crl(signer_key=stray, number=2),
            "root_ca_crl.der": pki.root_ca_crl(signer_key=stray, number=2),
        }
    )
    source = _Recording(pki.source(bad, label="cache"))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(), source=source)
    verified = TdxVerifier().verify(pki.quote(), ctx)
    assert verified.failure is None, verified.failure
    assert {entry.source for entry in verified.collateral} == {"request"}
    assert {"intel.tcb_info", "intel.qe_identity", "intel.pck_crl"} <= set(source.rejected)
    assert all("SIGNATURE" in reason for reason in source.rejected.values()), source.rejected


def _crl_without_next_update(pki: FakeIntelPki) -> bytes:
    """The PCK CRL with its optional nextUpdate removed (`cryptography` cannot build one), re-signed."""
    parsed = asn1_crl.CertificateList.load(pki.pck_crl())
    parsed["tbs_cert_list"]["next_update"] = None
    tbs = parsed["tbs_cert_list"].dump(force=True)
    parsed["signature"] = pki.pck_ca_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    der = bytes(parsed.dump(force=True))
    assert x509.load_der_x509_crl(der).next_update_utc is None
    return der


@pytest.mark.parametrize("kind", [KIND_PCK_CRL, KIND_ROOT_CA_CRL])
def test_tdx_next_update_of_a_crl_without_next_update_is_malformed(kind: str) -> None:
    pki = FakeIntelPki()
    data = envelope(kind, _crl_without_next_update(pki), "")
    with pytest.raises(CollateralUnavailableError) as info:
        next_update(kind, data)
    assert info.value.code == "COLLATERAL_MALFORMED"
    assert "CRL without nextUpdate" in str(info.value)
    assert next_update(kind, envelope(kind, pki.pck_crl(), "")) == pki.now + 29 * DAY  # the ordinary case
