"""verify_quote: the real TDX vectors (quote signature, QE report, binding, PCK chain) and one fake-PKI negative
per failure code."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError
from verifier.tee.tdx.quote import parse_quote
from verifier.tee.tdx.verify import TdxVerified, verify_quote
from verifier.trust.anchors import TrustAnchors

DAY = datetime.timedelta(days=1)
VECTORS = manifest_vectors("tdx")


def _at(vector: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_real_vector(vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]) -> None:
    directory = vectors_dir / vector["dir"]
    quote = parse_quote((directory / "evidence.bin").read_bytes())
    pck_crl, root_ca_crl = (
        x509.load_der_x509_crl((directory / f).read_bytes()) if (directory / f).exists() else None
        for f in ("pck_crl.der", "root_ca_crl.der")
    )
    crls = {"pck_crl": pck_crl, "root_ca_crl": root_ca_crl}
    for anchors in (TrustAnchors(), TrustAnchors.from_directory(trust_anchors_dir)):
        if vector["id"].endswith("-body-tampered"):
            with pytest.raises(EvidenceError) as err:
                verify_quote(quote, anchors, _at(vector), **crls)
            assert err.value.code == "TDX_QUOTE_SIGNATURE_INVALID"
            continue
        result = verify_quote(quote, anchors, _at(vector), **crls)
        assert result.pck.fmspc.hex() == vector["what"]["fmspc"].lower()
        assert [c.subject.rfc4514_string().split(",")[-1] for c in result.chain] == [
            "CN=Intel SGX PCK Certificate",
            "CN=Intel SGX PCK Platform CA",
            "CN=Intel SGX Root CA",
        ]
        assert result.qe_report.isvprodid == 2
        if pck_crl is not None:  # the real CRL was consulted (same issuer) and does not list the real leaf
            assert pck_crl.issuer == result.chain[0].issuer and len(pck_crl) > 0


# ---- fake PKI -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def _verify(
    pki: FakeIntelPki,
    *,
    at: datetime.datetime | None = None,
    anchors: TrustAnchors | None = None,
    pck_crl: bytes | None = None,
    root_ca_crl: bytes | None = None,
    **overrides: Any,
) -> TdxVerified:
    quote = parse_quote(pki.quote(**overrides))
    return verify_quote(
        quote,
        anchors or pki.anchors(),
        at or pki.now,
        pck_crl=x509.load_der_x509_crl(pck_crl) if pck_crl else None,
        root_ca_crl=x509.load_der_x509_crl(root_ca_crl) if root_ca_crl else None,
    )


def _code(pki: FakeIntelPki, **kwargs: Any) -> str:
    with pytest.raises(EvidenceError) as err:
        _verify(pki, **kwargs)
    assert err.value.expected and err.value.actual, err.value
    return err.value.code


@pytest.mark.parametrize(("version", "body_type"), [(4, 2), (5, 2), (5, 3)])
def test_fake_valid(pki: FakeIntelPki, version: int, body_type: int) -> None:
    result = _verify(
        pki,
        version=version,
        body_type=body_type,
        td_attributes=b"\x01" + bytes(7),
        pck_crl=pki.pck_crl([12345]),
        root_ca_crl=pki.root_ca_crl([12345]),
    )
    assert (result.pck.fmspc, result.pck.pcesvn, result.pck.tcb_components) == (
        pki.fmspc,
        pki.pcesvn,
        pki.tcb_components,
    )
    assert (result.qe_report.isvprodid, result.qe_report.isvsvn, result.qe_report.cpusvn) == (2, 4, pki.cpusvn)
    assert result.chain == [pki.pck, pki.pck_ca, pki.root]


def test_processor_ca_and_trailing_padding() -> None:
    pki = FakeIntelPki(sgx_type=0)
    assert _verify(pki, trailing=bytes(70)).chain[1].subject == pki.pck_ca.subject


def test_quote_signature(pki: FakeIntelPki) -> None:
    assert _code(pki, bad_signature=True) == "TDX_QUOTE_SIGNATURE_INVALID"
    good = bytearray(pki.quote())
    good[48 + 16 + 48 + 48 + 8 + 8 + 8] ^= 1  # MRTD after signing
    with pytest.raises(EvidenceError) as err:
        verify_quote(parse_quote(bytes(good)), pki.anchors(), pki.now)
    assert err.value.code == "TDX_QUOTE_SIGNATURE_INVALID"


def test_qe_report_signature(pki: FakeIntelPki) -> None:
    assert _code(pki, bad_qe_report_signature=True) == "TDX_QE_REPORT_SIGNATURE_INVALID"
    tampered = bytearray(pki.quote())
    tampered[48 + 584 + 4 + 64 + 64 + 6 + 258] ^= 1  # QE report ISVSVN after signing
    with pytest.raises(EvidenceError) as err:
        verify_quote(parse_quote(bytes(tampered)), pki.anchors(), pki.now)
    assert err.value.code == "TDX_QE_REPORT_SIGNATURE_INVALID"


def test_qe_report_data_binding(pki: FakeIntelPki) -> None:
    with pytest.raises(EvidenceError) as err:
        _verify(pki, unbound_report_data=True, bad_signature=True)  # reported before the quote signature
    assert err.value.code == "TDX_QE_REPORT_DATA_MISMATCH"
    assert err.value.expected != err.value.actual and len(err.value.expected) == 128
    att = parse_quote(pki.quote()).attestation_key
    upper_half_set = hashlib.sha256(att + bytes(range(32))).digest() + b"\x01" * 32
    assert _code(pki, qe_report_data=upper_half_set) == "TDX_QE_REPORT_DATA_MISMATCH"


def test_foreign_root(pki: FakeIntelPki) -> None:
    foreign = pki.foreign()
    assert _code(foreign, anchors=pki.anchors()) == "CHAIN_ROOT_UNTRUSTED"
    # the pinned root loaded as an anchor has the same subject, but the foreign PCK CA does not chain to it
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.root])
    assert _code(foreign, anchors=anchors) == "CHAIN_SIGNATURE_INVALID"


def test_root_from_anchors(pki: FakeIntelPki) -> None:
    pem = pki.pck_chain_pem()
    without_root = pem[: pem.rindex(b"-----BEGIN CERTIFICATE-----")]
    assert _code(pki, pck_chain_pem=without_root) == "CHAIN_ROOT_UNTRUSTED"
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.root])
    assert _verify(pki, pck_chain_pem=without_root, anchors=anchors).chain[-1] == pki.root


def test_expired_pck_leaf() -> None:
    now = datetime.datetime(2025, 7, 1, tzinfo=datetime.UTC)
    pki = FakeIntelPki(now, pck_validity=(now - 800 * DAY, now - DAY))
    assert _code(pki) == "CERT_EXPIRED"
    assert _code(pki, bad_signature=True) == "CERT_EXPIRED"  # the chain comes first


def test_revoked_pck_leaf(pki: FakeIntelPki) -> None:
    assert _code(pki, pck_crl=pki.pck_crl([pki.pck.serial_number])) == "TDX_PCK_REVOKED"
    other_ca = FakeIntelPki(sgx_type=0)  # a Processor CA CRL does not speak for Platform CA leaves
    _verify(pki, pck_crl=other_ca.pck_crl([pki.pck.serial_number]))


def test_revoked_intermediate(pki: FakeIntelPki) -> None:
    assert _code(pki, root_ca_crl=pki.root_ca_crl([pki.pck_ca.serial_number])) == "TDX_PCK_REVOKED"
    _verify(pki, root_ca_crl=pki.root_ca_crl([pki.tcb_signing.serial_number]))


def test_p384_leaf() -> None:
    assert _code(FakeIntelPki(pck_curve=ec.SECP384R1())) == "TDX_PCK_KEY_TYPE"


def test_invalid_attestation_key_point(pki: FakeIntelPki) -> None:
    assert _code(pki, attestation_key=b"\x01" * 64) == "TDX_ATTESTATION_KEY_INVALID"
    assert _code(pki, attestation_key=bytes(64)) == "TDX_ATTESTATION_KEY_INVALID"


def test_chain_too_short(pki: FakeIntelPki) -> None:
    leaf_only = pki.pck_chain_pem().split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    assert _code(pki, pck_chain_pem=leaf_only) == "TDX_PCK_CHAIN_INVALID"


def test_fake_collateral_is_shaped_like_the_vectors(vectors_dir: Path, pki: FakeIntelPki) -> None:
    files = pki.collateral_files()
    real = {p.name for p in (vectors_dir / "tdx" / "tdx-v4-dcapqvl-sample").iterdir()}
    assert set(files) == real - {"collateral.json", "evidence.bin", "pck_chain.pem"}
    for name, member in (("tcb_info.json", b"tcbInfo"), ("qe_identity.json", b"enclaveIdentity")):
        raw = files[name]
        head, tail = b'{"' + member + b'":', b',"signature":"'
        assert raw.startswith(head) and raw.endswith(b'"}')
        value, sig = raw[len(head) : raw.rindex(tail)], bytes.fromhex(raw[raw.rindex(tail) + len(tail) : -2].decode())
        key = pki.tcb_signing.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        key.verify(der, value, ec.ECDSA(hashes.SHA256()))
        assert json.loads(raw)[member.decode()] == json.loads(value)
    info = json.loads(files["tcb_info.json"])["tcbInfo"]
    level = info["tcbLevels"][0]["tcb"]
    assert (info["id"], info["version"], info["fmspc"].lower()) == ("TDX", 3, pki.fmspc.hex())
    assert [c["svn"] for c in level["sgxtcbcomponents"]] == list(pki.tcb_components)
    assert len(level["tdxtcbcomponents"]) == 16
    assert json.loads(files["qe_identity.json"])["enclaveIdentity"]["id"] == "TD_QE"
    assert x509.load_der_x509_crl(files["pck_crl.der"]).is_signature_valid(pki.pck_ca_key.public_key())
    assert x509.load_der_x509_crl(files["root_ca_crl.der"]).is_signature_valid(pki.root_key.public_key())
