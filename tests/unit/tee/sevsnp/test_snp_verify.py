"""verify_report: the real SNP vectors, and one fake-PKI negative per failure code."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import manifest_vectors
from tests.fakes.amd_pki import FakeAmdPki
from verifier.errors import EvidenceError, ParseError
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.certs import SnpCertificates, load_certificate
from verifier.tee.sevsnp.crl import load_crl
from verifier.tee.sevsnp.tcb import Product, encode_tcb
from verifier.tee.sevsnp.verify import SnpVerified, verify_report
from verifier.trust.anchors import TrustAnchors

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
DAY = datetime.timedelta(days=1)
VECTORS = [v for v in manifest_vectors("snp") if not v["id"].endswith("-truncated")]
TRUNCATED = [v for v in manifest_vectors("snp") if v["id"].endswith("-truncated")]
CERT_FILES = {"ark.pem": "ark", "ask.pem": "ask", "asvk.pem": "asvk", "vcek.der": "vcek", "vlek.der": "vlek"}


def _at(vector: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


def _vector_certs(directory: Path) -> SnpCertificates:
    present = {k: directory / f for f, k in CERT_FILES.items() if (directory / f).exists()}
    return SnpCertificates(**{k: load_certificate(path.read_bytes(), path.name) for k, path in present.items()})


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_real_vector(vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]) -> None:
    directory = vectors_dir / vector["dir"]
    report = parse_report((directory / "evidence.bin").read_bytes())
    certs = _vector_certs(directory)
    product = Product(vector["what"]["processor_family"])
    anchor_sets = {
        "directory": TrustAnchors.from_directory(trust_anchors_dir),
        "pins-only": TrustAnchors(),  # the ARK from the vector dir, trusted by its pinned fingerprint
    }
    for name, anchors in anchor_sets.items():
        for given in (product, None):  # None: from CPUID (v3+) or the signer's productName
            if vector["expected"]["verdict"] == "valid":
                result = verify_report(report, certs, anchors, _at(vector), product=given)
                assert (result.product, result.signer_kind) == (product, vector["what"]["signing_key"].lower()), name
                assert [c.subject for c in result.chain] == [
                    result.signer.subject,
                    *(c.subject for c in (certs.ask or certs.asvk, certs.ark) if c is not None),
                ]
            else:
                assert vector["id"].endswith("-sigtampered")
                with pytest.raises(EvidenceError) as err:
                    verify_report(report, certs, anchors, _at(vector), product=given)
                assert err.value.code == "SNP_SIGNATURE_INVALID", name


@pytest.mark.parametrize("vector", TRUNCATED, ids=[v["id"] for v in TRUNCATED])
def test_real_truncated_vector_does_not_parse(vectors_dir: Path, vector: dict[str, Any]) -> None:
    with pytest.raises(ParseError) as err:
        parse_report((vectors_dir / vector["dir"] / "evidence.bin").read_bytes())
    assert err.value.code == "SNP_REPORT_TRUNCATED"


def test_real_vector_ark_and_ask_from_anchors(vectors_dir: Path, trust_anchors_dir: Path) -> None:
    vector = next(v for v in VECTORS if v["id"] == "snp-milan-v2-vcek-gosevguest")
    directory = vectors_dir / vector["dir"]
    report = parse_report((directory / "evidence.bin").read_bytes())
    vcek_only = SnpCertificates(vcek=_vector_certs(directory).vcek)
    verify_report(report, vcek_only, TrustAnchors.from_directory(trust_anchors_dir), _at(vector))
    assert _code(report, vcek_only, TrustAnchors(), _at(vector)) == "CHAIN_ROOT_UNTRUSTED"


# ---- fake PKI -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pkis() -> dict[Product, FakeAmdPki]:
    return {p: FakeAmdPki(p) for p in Product}


@pytest.fixture(scope="module")
def milan(pkis: dict[Product, FakeAmdPki]) -> FakeAmdPki:
    return pkis[Product.MILAN]


def _verify(
    pki: FakeAmdPki,
    kind: str = "vcek",
    *,
    certs: SnpCertificates | None = None,
    at: datetime.datetime | None = None,
    **kwargs: Any,
) -> SnpVerified:
    options = {k: kwargs.pop(k) for k in ("product", "crl", "anchors") if k in kwargs}
    report = parse_report(pki.report(signer=kind, **kwargs))
    anchors = options.pop("anchors", pki.anchors())
    return verify_report(report, certs or pki.certificates(kind), anchors, at or pki.now, **options)


def _code(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(EvidenceError) as err:
        if isinstance(args[0], FakeAmdPki):
            _verify(*args, **kwargs)
        else:
            verify_report(*args, **kwargs)
    assert err.value.expected and err.value.actual, err.value
    return err.value.code


@pytest.mark.parametrize("product", list(Product))
@pytest.mark.parametrize("version", [2, 3, 5])
@pytest.mark.parametrize("kind", ["vcek", "vlek"])
def test_fake_valid(pkis: dict[Product, FakeAmdPki], product: Product, version: int, kind: str) -> None:
    result = _verify(pkis[product], kind, version=version)
    assert (result.product, result.signer_kind, result.signer.serial_number) == (product, kind, 0)
    assert len(result.chain) == 3
    assert (result.extensions.hwid is None) == (kind == "vlek")


def test_foreign_ark(milan: FakeAmdPki) -> None:
    foreign = milan.foreign()
    report = parse_report(foreign.report())
    assert _code(report, foreign.certificates(), milan.anchors(), milan.now) == "CHAIN_ROOT_UNTRUSTED"
    # without an ARK in the evidence the pinned one is used, and the foreign ASK does not chain to it
    assert (
        _code(
            report,
            SnpCertificates(ask=foreign.ask, vcek=foreign.vcek),
            TrustAnchors(pins=milan.pins, certificates=[milan.ark]),
            milan.now,
        )
        == "CHAIN_SIGNATURE_INVALID"
    )


def test_ark_of_another_product(pkis: dict[Product, FakeAmdPki]) -> None:
    milan, genoa = pkis[Product.MILAN], pkis[Product.GENOA]
    certs = SnpCertificates(ark=genoa.ark, ask=milan.ask, vcek=milan.vcek)
    assert _code(milan, certs=certs, anchors=TrustAnchors(pins=genoa.pins)) == "SNP_PRODUCT_MISMATCH"


def test_ask_not_signed_by_ark() -> None:
    pki = FakeAmdPki(ask_signer_key=rsa.generate_private_key(65537, 2048))
    assert _code(pki) == "CHAIN_SIGNATURE_INVALID"


def test_vlek_under_ask() -> None:
    pki = FakeAmdPki(vlek_under_ask=True)
    assert _code(pki, "vlek") == "SNP_SIGNER_CHAIN_MISMATCH"
    assert _code(pki, "vlek", certs=SnpCertificates(ark=pki.ark, asvk=pki.ask, vlek=pki.vlek)) == (
        "SNP_SIGNER_CHAIN_MISMATCH"
    )


def test_vcek_with_asvk_as_intermediate(milan: FakeAmdPki) -> None:
    certs = SnpCertificates(ark=milan.ark, ask=milan.asvk, vcek=milan.vcek)
    assert _code(milan, certs=certs) == "SNP_SIGNER_CHAIN_MISMATCH"


def test_intermediate_missing(milan: FakeAmdPki) -> None:
    assert _code(milan, certs=SnpCertificates(ark=milan.ark, vcek=milan.vcek)) == "SNP_INTERMEDIATE_MISSING"
    anchors = TrustAnchors(pins=milan.pins, certificates=[milan.ark, milan.ask])
    _verify(milan, certs=SnpCertificates(vcek=milan.vcek), anchors=anchors)


def test_expired_and_not_yet_valid_vcek(milan: FakeAmdPki) -> None:
    assert _code(milan, at=milan.now + 7 * 365 * DAY + 2 * DAY) == "CERT_EXPIRED"
    assert _code(milan, "vlek", at=milan.now + 366 * DAY) == "CERT_EXPIRED"
    assert _code(milan, at=milan.now - 2 * DAY) == "CERT_NOT_YET_VALID"


def test_expired_vcek_is_reported_before_a_bad_signature() -> None:
    pki = FakeAmdPki(
        vcek_validity=(
            datetime.datetime(2015, 1, 1, tzinfo=datetime.UTC),
            datetime.datetime(2022, 1, 1, tzinfo=datetime.UTC),
        )
    )
    assert _code(pki, signature=bytes(144)) == "CERT_EXPIRED"


def test_crl(milan: FakeAmdPki) -> None:
    crl = load_crl(milan.crl([milan.ask.serial_number]))
    assert _code(milan, crl=crl) == "SNP_CERT_REVOKED"
    _verify(milan, "vlek", crl=crl)  # the ASVK is not listed
    vlek_crl = load_crl(milan.crl([milan.asvk.serial_number]))
    assert _code(milan, "vlek", crl=vlek_crl) == "SNP_CERT_REVOKED"


def test_vcek_serial_zero_in_crl_does_not_revoke_every_vcek(milan: FakeAmdPki) -> None:
    """All VCEKs have serial 0 and are issued by the ASK: an ARK CRL entry 0 is not about them (RFC 5280 6.3.3)."""
    verified = _verify(milan, crl=load_crl(milan.crl([0])))
    assert verified.signer_kind == "vcek" and verified.signer.serial_number == 0
    with pytest.raises(EvidenceError) as info:  # the same CRL mechanism does revoke what the ARK issued
        _verify(milan, crl=load_crl(milan.crl([milan.ask.serial_number])))
    assert info.value.code == "SNP_CERT_REVOKED"


def test_stale_or_foreign_crl(milan: FakeAmdPki) -> None:
    stale = load_crl(milan.crl(this_update=milan.now - 30 * DAY, next_update=milan.now - DAY))
    assert _code(milan, crl=stale) == "CRL_EXPIRED"
    forged = load_crl(milan.crl(signer_key=rsa.generate_private_key(65537, 2048)))
    assert _code(milan, crl=forged) == "CRL_SIGNATURE_INVALID"


@pytest.mark.parametrize("product", list(Product))
def test_tcb_mismatch(pkis: dict[Product, FakeAmdPki], product: Product) -> None:
    pki = pkis[product]
    s = pki.spl
    lower = encode_tcb(product, bootloader=s["bl"], tee=s["tee"], snp=s["snp"] - 1, microcode=s["ucode"], fmc=s["fmc"])
    with pytest.raises(EvidenceError) as err:
        _verify(pki, reported_tcb=lower)
    assert err.value.code == "SNP_TCB_MISMATCH"
    assert (err.value.expected, err.value.actual) == (f"snpSPL={s['snp']}", f"snpSPL={s['snp'] - 1}")
    _verify(pki, current_tcb=lower, committed_tcb=lower)  # only REPORTED_TCB binds the VCEK


def test_turin_fmc_mismatch(pkis: dict[Product, FakeAmdPki]) -> None:
    pki = pkis[Product.TURIN]
    s = pki.spl
    tcb = encode_tcb(Product.TURIN, bootloader=s["bl"], tee=s["tee"], snp=s["snp"], microcode=s["ucode"], fmc=0)
    with pytest.raises(EvidenceError) as err:
        _verify(pki, "vlek", reported_tcb=tcb)
    assert (err.value.code, err.value.expected, err.value.actual) == ("SNP_TCB_MISMATCH", "fmcSPL=1", "fmcSPL=0")


def test_chip_id_mismatch(milan: FakeAmdPki) -> None:
    assert _code(milan, chip_id=bytes(64)) == "SNP_CHIP_ID_MISMATCH"
    assert _code(milan, chip_id=milan.hwid[:-1] + b"\x00") == "SNP_CHIP_ID_MISMATCH"


def test_mask_chip_key_skips_chip_binding(milan: FakeAmdPki) -> None:
    assert _verify(milan, mask_chip_key=True, chip_id=bytes(64)).signer_kind == "vcek"


def test_turin_eight_byte_hwid(pkis: dict[Product, FakeAmdPki]) -> None:
    turin = pkis[Product.TURIN]
    assert len(turin.hwid) == 8
    _verify(turin, chip_id=turin.hwid + bytes(56))
    assert _code(turin, chip_id=turin.hwid + b"\x01" + bytes(55)) == "SNP_CHIP_ID_MISMATCH"
    assert _code(turin, chip_id=bytes(8) + turin.hwid + bytes(48)) == "SNP_CHIP_ID_MISMATCH"


def test_vlek_needs_no_chip_id(milan: FakeAmdPki) -> None:
    verified = _verify(milan, "vlek", chip_id=bytes(64))
    assert verified.signer_kind == "vlek" and verified.extensions.hwid is None


def test_product_name_mismatch(milan: FakeAmdPki) -> None:
    assert _code(milan, product=Product.GENOA) == "SNP_PRODUCT_MISMATCH"
    pki = FakeAmdPki(Product.MILAN, product_name="Genoa")
    assert _code(pki, version=2) == "SNP_PRODUCT_MISMATCH"  # name vs CPUID-less report: name wins, ARK disagrees
    assert _code(pki, version=3) == "SNP_PRODUCT_MISMATCH"  # CPUID says Milan, productName Genoa


def test_product_cpuid_mismatch(milan: FakeAmdPki) -> None:
    assert _code(milan, cpuid_fam_id=0x19, cpuid_mod_id=0x11) == "SNP_PRODUCT_MISMATCH"


def test_vlek_report_with_vcek_cert(milan: FakeAmdPki) -> None:
    assert _code(milan, "vlek", certs=milan.certificates("vcek")) == "SNP_SIGNER_CERT_MISSING"
    wrong_slot = SnpCertificates(ark=milan.ark, asvk=milan.asvk, vlek=milan.vcek)
    assert _code(milan, "vlek", certs=wrong_slot) == "SNP_SIGNER_CHAIN_MISMATCH"


def test_signature_tampered(milan: FakeAmdPki) -> None:
    good = milan.report()
    sig = bytearray(good[0x2A0:0x330])
    sig[0] ^= 1
    assert _code(milan, signature=bytes(sig)) == "SNP_SIGNATURE_INVALID"
    for raw in (bytes(144), b"\xff" * 144):  # R = S = 0, and R, S far above the group order
        assert _code(milan, signature=raw) == "SNP_SIGNATURE_INVALID"
    assert _code(milan, signer_key=ec.generate_private_key(ec.SECP384R1())) == "SNP_SIGNATURE_INVALID"
    assert _code(milan, "vlek", signer_key=milan.vcek_key) == "SNP_SIGNATURE_INVALID"
    body = bytearray(good)
    body[0x50] ^= 1  # REPORT_DATA after signing
    assert _code(parse_report(bytes(body)), milan.certificates(), milan.anchors(), milan.now) == "SNP_SIGNATURE_INVALID"


def test_signing_key_none(milan: FakeAmdPki) -> None:
    assert _code(milan, signing_key=7) == "SNP_SIGNING_KEY_NONE"


def test_signer_key_not_p384(milan: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    validity = (milan.now - DAY, milan.now + DAY)
    vcek = milan._signer("SEV-VCEK", key, "SEV-Milan", milan.ask_key, validity, hwid=milan.hwid)
    certs = SnpCertificates(ark=milan.ark, ask=milan.ask, vcek=vcek)
    assert _code(milan, certs=certs) == "SNP_KEY_TYPE"
