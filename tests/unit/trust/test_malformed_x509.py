"""Certificates and CRLs that make `cryptography` raise when it decodes a part lazily (InvalidVersion,
DuplicateExtension, ValueError for a badly encoded name, UnsupportedAlgorithm) fail where they are loaded, with
CERT_MALFORMED / CRL_MALFORMED, for every TEE: a signed "no", never an escaped exception (gRPC INTERNAL)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.fakes import x509_mutations as mutate
from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.aws_pki import FakeAwsPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.service_helpers import SettableClock
from verifier.appraisal.model import Tier
from verifier.errors import EvidenceError
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.tee.nitro.parse import parse
from verifier.tee.nitro.verify import verify as nitro_verify
from verifier.tee.sevsnp.certtable import build_cert_table
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.tdx.pck import pck_chain
from verifier.trust.certs import load_certificate, load_crl, load_pem_certificates

CERT_MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "version-5": mutate.version,
    "duplicate-extension": mutate.duplicate_extension,
    "bad-subject-string": lambda der: mutate.bad_name(der, "subject"),
    "bad-issuer-string": lambda der: mutate.bad_name(der, "issuer"),
    "unknown-signature-algorithm": mutate.unknown_signature_algorithm,
}
CRL_MUTATIONS: dict[str, Callable[[bytes], bytes]] = {
    "duplicate-extension": mutate.crl_duplicate_extension,
    "duplicate-entry-extension": mutate.crl_duplicate_entry_extension,
    "bad-issuer-string": mutate.crl_bad_issuer,
    "unknown-signature-algorithm": mutate.unknown_signature_algorithm,
}
# the mutations that `cryptography` raises for with something other than ValueError (crashed the old SNP loader)
NOT_VALUE_ERRORS = ["version-5", "duplicate-extension"]
MR_TD = b"\x42" * 48
MEASUREMENT = hashlib.sha384(b"measurement").digest()


def pem(der: bytes) -> bytes:
    return b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


@pytest.fixture(scope="module")
def intel() -> FakeIntelPki:
    return FakeIntelPki()


@pytest.fixture(scope="module")
def aws() -> FakeAwsPki:
    return FakeAwsPki()


def _crl_with_entry_extension() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    entry = (
        x509.RevokedCertificateBuilder()
        .serial_number(5)
        .revocation_date(now)
        .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
        .build()
    )
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), False)
        .add_revoked_certificate(entry)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


# --- the shared loader --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation", CERT_MUTATIONS)
def test_shared_certificate_loader(amd: FakeAmdPki, mutation: str) -> None:
    good = der(amd.ask)
    assert load_certificate(good, "ASK") == amd.ask == load_certificate(pem(good), "ASK")
    bad = CERT_MUTATIONS[mutation](good)
    for data in (bad, pem(bad)):
        with pytest.raises(EvidenceError) as info:
            load_certificate(data, "ASK")
        assert info.value.code == "CERT_MALFORMED" and "ASK" in info.value.message and info.value.actual
    with pytest.raises(EvidenceError) as info:
        load_pem_certificates(pem(good) + pem(bad), "bundle", max_count=4)
    assert info.value.code == "CERT_MALFORMED"


def test_pem_bundle_bounds(amd: FakeAmdPki) -> None:
    two = pem(der(amd.ask)) + pem(der(amd.ark))
    assert load_pem_certificates(two + b"\0\0", "bundle", max_count=2) == (amd.ask, amd.ark)
    for data, limit, actual in ((two * 2, 3, "4"), (b"no pem here", 3, "0"), (b"", 3, "0")):
        with pytest.raises(EvidenceError) as info:
            load_pem_certificates(data, "bundle", max_count=limit)
        assert info.value.code == "CERT_MALFORMED"
        assert actual in info.value.actual or info.value.actual  # count, or the library's message
    with pytest.raises(EvidenceError, match="one PEM"):
        load_certificate(two, "ARK")


@pytest.mark.parametrize("mutation", CRL_MUTATIONS)
def test_shared_crl_loader(intel: FakeIntelPki, mutation: str) -> None:
    good = _crl_with_entry_extension() if mutation == "duplicate-entry-extension" else intel.pck_crl()
    assert load_crl(good).next_update_utc is not None
    with pytest.raises(EvidenceError) as info:
        load_crl(CRL_MUTATIONS[mutation](good), "PCK CRL")
    assert info.value.code == "CRL_MALFORMED" and "PCK CRL" in info.value.message


def test_old_crl_import_path_still_works() -> None:
    from verifier.trust.crl import load_crl as old_name

    assert old_name is load_crl


# --- SEV-SNP ------------------------------------------------------------------------------------------------------


def snp_service(db: Database, pki: FakeAmdPki, **kw: Any) -> VerifierService:
    refs = SqlReferenceValueStore(db)
    refs.add("snp.measurement", MEASUREMENT, "image-1", now=pki.now - dt.timedelta(days=1))
    return VerifierService(
        clock=SettableClock(pki.now),
        anchors=pki.anchors(),
        references=refs,
        signer=ResultSigner([ephemeral_key()]),
        challenges=SqlChallengeStore(db),
        **kw,
    )


def codes(result: Any) -> list[str]:
    return [f.code for f in result.appraisal.findings]


@pytest.mark.parametrize("mutation", NOT_VALUE_ERRORS)
def test_snp_vcek_that_cryptography_rejects_is_contraindicated(db: Database, amd: FakeAmdPki, mutation: str) -> None:
    """Crashed before: the SNP loader caught ValueError only, InvalidVersion and DuplicateExtension escaped."""
    svc = snp_service(db, amd)
    bad = CERT_MUTATIONS[mutation](der(amd.vcek))
    chain = {"ask.pem": amd.ask.public_bytes(Encoding.PEM), "ark.pem": amd.ark.public_bytes(Encoding.PEM)}
    for collateral in (
        {"vcek.der": bad, **chain},
        {"vcek.pem": pem(bad), **chain},
        {"cert_table.bin": build_cert_table({"vcek": bad, "ask": der(amd.ask), "ark": der(amd.ark)})},
    ):
        result = svc.appraise(AppraisalRequest(tee="snp", evidence=amd.report(), collateral=collateral))
        assert result.appraisal.status is Tier.CONTRAINDICATED
        assert codes(result) == ["CERT_MALFORMED"], collateral.keys()


def test_snp_crl_that_cryptography_rejects_is_not_a_crash(db: Database, amd: FakeAmdPki) -> None:
    """Crashed before: DuplicateExtension escaped load_crl (it caught ValueError and TypeError only)."""
    svc = snp_service(db, amd, check_crl=True)
    files = {
        "vcek.der": der(amd.vcek),
        "ask.pem": amd.ask.public_bytes(Encoding.PEM),
        "ark.pem": amd.ark.public_bytes(Encoding.PEM),
    }
    crl = amd.crl()
    good = svc.appraise(AppraisalRequest(tee="snp", evidence=amd.report(), collateral={**files, "crl.der": crl}))
    assert good.appraisal.status is Tier.AFFIRMING, codes(good)
    bad = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=amd.report(), collateral={**files, "crl.der": mutate.unknown_signature_algorithm(crl)}
        )
    )
    assert bad.appraisal.status is not Tier.AFFIRMING  # revocation unknown: fail closed by default
    dup = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=amd.report(), collateral={**files, "crl.der": mutate.crl_duplicate_extension(crl)}
        )
    )
    assert codes(dup) == codes(bad) == ["SNP_CRL_UNAVAILABLE"]


# --- Intel TDX ----------------------------------------------------------------------------------------------------


def tdx_service(db: Database, pki: FakeIntelPki) -> VerifierService:
    refs = SqlReferenceValueStore(db)
    refs.add("tdx.mr_td", MR_TD, "td-image", now=pki.now - dt.timedelta(days=1))
    return VerifierService(
        clock=SettableClock(pki.now),
        anchors=pki.anchors(),
        references=refs,
        signer=ResultSigner([ephemeral_key()]),
        challenges=SqlChallengeStore(db),
    )


def tdx_quote(pki: FakeIntelPki, **kw: Any) -> bytes:
    return pki.quote(mr_td=MR_TD, td_attributes=bytes.fromhex("0000001000000000"), **kw)


@pytest.mark.parametrize("mutation", CERT_MUTATIONS)
def test_tdx_pck_chain_that_cryptography_rejects(intel: FakeIntelPki, mutation: str) -> None:
    leaf, *rest = x509.load_pem_x509_certificates(intel.pck_chain_pem())
    chain = pem(CERT_MUTATIONS[mutation](der(leaf))) + b"".join(c.public_bytes(Encoding.PEM) for c in rest)
    with pytest.raises(EvidenceError) as info:
        pck_chain(chain)
    assert info.value.code == "CERT_MALFORMED"


def test_tdx_quote_with_malformed_pck_or_crl_is_contraindicated(db: Database, intel: FakeIntelPki) -> None:
    """The PCK CRL case crashed before (DuplicateExtension escaped load_crl)."""
    svc = tdx_service(db, intel)
    files = intel.collateral_files()
    ok = svc.appraise(AppraisalRequest(tee="tdx", evidence=tdx_quote(intel), collateral=files))
    assert ok.appraisal.status is Tier.AFFIRMING, codes(ok)
    leaf, *rest = x509.load_pem_x509_certificates(intel.pck_chain_pem())
    chain = pem(mutate.duplicate_extension(der(leaf))) + b"".join(c.public_bytes(Encoding.PEM) for c in rest)
    result = svc.appraise(AppraisalRequest(tee="tdx", evidence=tdx_quote(intel, pck_chain_pem=chain), collateral=files))
    assert (result.appraisal.status, codes(result)) == (Tier.CONTRAINDICATED, ["CERT_MALFORMED"])
    for name in ("pck_crl.der", "root_ca_crl.der"):
        broken = {**files, name: mutate.crl_duplicate_extension(files[name])}
        result = svc.appraise(AppraisalRequest(tee="tdx", evidence=tdx_quote(intel), collateral=broken))
        assert result.appraisal.status is Tier.CONTRAINDICATED, name
        assert "CRL_MALFORMED" in codes(result), (name, codes(result))


# --- AWS Nitro ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation", CERT_MUTATIONS)
def test_nitro_certificates_that_cryptography_rejects(aws: FakeAwsPki, mutation: str) -> None:
    change = CERT_MUTATIONS[mutation]
    leaf = change(der(aws.leaf))
    bundle = aws.cabundle
    for document in (aws.mint(certificate=leaf), aws.mint(cabundle=[bundle[0], change(bundle[1]), bundle[2]])):
        with pytest.raises(EvidenceError) as info:
            nitro_verify(parse(document), aws.anchors(), aws.now)
        assert info.value.code == "CERT_MALFORMED"
