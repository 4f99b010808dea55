"""verifier.tee.sevsnp.certs: loading (serial 0), classification, KDS extensions."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.conftest import manifest_vectors
from tests.fakes.amd_pki import FakeAmdPki
from verifier.errors import EvidenceError
from verifier.tee.sevsnp.certs import (
    SnpCertificates,
    classify,
    kds_extensions,
    load_certificate,
    load_certificates,
)
from verifier.tee.sevsnp.tcb import Product

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
KDS = "1.3.6.1.4.1.3704.1"
pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

SIGNERS = [(v, name) for v in manifest_vectors("snp") for name in ("vcek.der", "vlek.der") if name in v["files"]]


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.TURIN)


@pytest.mark.parametrize(("vector", "name"), SIGNERS, ids=[f"{v['id']}/{n}" for v, n in SIGNERS])
def test_real_signer_serial_zero_loads(vectors_dir: Path, vector: dict[str, Any], name: str) -> None:
    """Every real VCEK/VLEK has serial 0: the installed cryptography must load it, asn1crypto too (fallback)."""
    data = (vectors_dir / vector["dir"] / name).read_bytes()
    cert = load_certificate(data, name)
    assert cert.serial_number == 0
    assert classify(cert) == name[:4]
    pem = (vectors_dir / vector["dir"] / name.replace(".der", ".pem")).read_bytes()
    assert load_certificate(pem, name).serial_number == 0
    parsed = asn1_x509.Certificate.load(data)
    assert parsed["tbs_certificate"]["serial_number"].native == 0
    assert parsed.subject.native["common_name"] == {"vcek": "SEV-VCEK", "vlek": "SEV-VLEK"}[name[:4]]
    ext = kds_extensions(cert)
    facts = vector["what"]["signer_tcb_extensions"]
    assert ext.bl_spl == int(facts["blSPL"][4:], 16)
    assert ext.ucode_spl == int(facts["ucodeSPL"][4:], 16)  # 02 02 00 db -> 219
    assert ext.hwid == (bytes.fromhex(facts["hwID"]) if "hwID" in facts else None)
    assert (ext.fmc_spl is not None) == ("fmcSPL" in facts)


def test_trust_anchor_bundles_classify(trust_anchors_dir: Path) -> None:
    for product in ("milan", "genoa", "turin"):
        ask, ark = load_certificates((trust_anchors_dir / "amd" / f"cert_chain_{product}_vcek.pem").read_bytes())
        asvk, ark2 = load_certificates((trust_anchors_dir / "amd" / f"cert_chain_{product}_vlek.pem").read_bytes())
        assert (classify(ask), classify(ark), classify(asvk)) == ("ask", "ark", "asvk")
        assert ark == ark2
        certs = SnpCertificates.from_list([ask, ark])
        assert certs.ask == ask and certs.ark == ark and certs.vcek is None


def test_fake_extensions_and_merge(pki: FakeAmdPki) -> None:
    ext = kds_extensions(pki.vcek)
    assert (ext.product_name, ext.struct_version, ext.fmc_spl, ext.ucode_spl) == ("Turin", 1, 1, 219)
    assert ext.hwid == pki.hwid and len(pki.hwid) == 8
    assert kds_extensions(pki.vlek).hwid is None
    assert pki.vcek.serial_number == 0
    merged = SnpCertificates(vcek=pki.vcek).merged(SnpCertificates(ark=pki.ark, ask=pki.ask, vcek=pki.vlek))
    assert (merged.vcek, merged.ask, merged.ark, merged.vlek) == (pki.vcek, pki.ask, pki.ark, None)


def test_load_errors(pki: FakeAmdPki) -> None:
    for bad in (b"", b"\x30\x03\x02\x01", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(EvidenceError) as err:
            load_certificate(bad, "VCEK")
        assert err.value.code == "CERT_MALFORMED" and "VCEK" in err.value.message
    two = pki.ark.public_bytes(Encoding.PEM) + pki.ask.public_bytes(Encoding.PEM)
    with pytest.raises(EvidenceError, match="one PEM"):
        load_certificate(two, "ARK")
    assert load_certificates(two) == [pki.ark, pki.ask]
    with pytest.raises(EvidenceError) as err:
        load_certificates(b"not pem")
    assert err.value.code == "CERT_MALFORMED"


def _cert_with(extensions: list[tuple[str, bytes]], cn: str = "SEV-VCEK") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + datetime.timedelta(days=1))
    )
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    return builder.sign(key, hashes.SHA384())


@pytest.mark.parametrize(
    ("oid", "value"),
    [
        (f"{KDS}.3.1", core.IA5String("4").dump()),  # not an INTEGER
        (f"{KDS}.3.1", b"\x02\x01\x04\x00"),  # trailing byte
        (f"{KDS}.3.1", b"\x02\x02\x00\x04"),  # not minimal DER
        (f"{KDS}.3.8", core.Integer(256).dump()),  # an SPL is one byte
        (f"{KDS}.3.3", core.Integer(-1).dump()),
        (f"{KDS}.2", core.Integer(1).dump()),  # productName not IA5String
        (f"{KDS}.2", core.IA5String("").dump()),
        (f"{KDS}.4", bytes(32)),  # hwID is 64 or 8 bytes
    ],
)
def test_malformed_extension(oid: str, value: bytes) -> None:
    cert = _cert_with([(oid, value)])
    for _ in range(2):  # a failure is never memoised: the same certificate fails again, with the same finding
        with pytest.raises(EvidenceError) as err:
            kds_extensions(cert)
        assert err.value.code == "SNP_CERT_EXTENSION_INVALID"
        assert err.value.actual == value.hex()


def test_extensions_are_decoded_once_per_certificate(pki: FakeAmdPki) -> None:
    assert kds_extensions(pki.vcek) is kds_extensions(pki.vcek)
    assert kds_extensions(pki.vlek) is not kds_extensions(pki.vcek)


def test_absent_extensions_are_none() -> None:
    ext = kds_extensions(_cert_with([]))
    assert ext == type(ext)(None, None, None, None, None, None, None, None)


@pytest.mark.parametrize(
    ("cn", "kind"),
    [
        ("ARK-Milan", "ark"),
        ("SEV-Genoa", "ask"),
        ("SEV-VLEK-Turin", "asvk"),
        ("SEV-VCEK", "vcek"),
        ("SEV-VLEK", "vlek"),
    ],
)
def test_classify(cn: str, kind: str) -> None:
    assert classify(_cert_with([], cn)) == kind


@pytest.mark.parametrize("cn", ["ARK-", "SEV-", "SEV-VLEK-", "Intel SGX Root CA", "sev-vcek"])
def test_classify_unknown(cn: str) -> None:
    with pytest.raises(EvidenceError) as err:
        classify(_cert_with([], cn))
    assert err.value.code == "SNP_CERT_UNKNOWN" and err.value.actual == cn


def test_from_list_rejects_two_of_a_kind(pki: FakeAmdPki) -> None:
    with pytest.raises(EvidenceError) as err:
        SnpCertificates.from_list([pki.vcek, pki.foreign().vcek])
    assert err.value.code == "SNP_CERT_DUPLICATE"
