"""verifier.trust: generic chain validation (ECDSA and AMD-style RSASSA-PSS) and trust anchors."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from verifier.errors import ConfigError, EvidenceError
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors, fingerprint
from verifier.trust.chain import check_ca, check_issued_by, check_validity, validate_chain

NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


def _ku(*, cert_sign: bool, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, False, False, False, cert_sign, cert_sign, False, False)


def _make(
    cn: str,
    key: Any,
    issuer_cn: str,
    issuer_key: Any,
    *,
    ca: bool | None,
    path_length: int | None = None,
    ku: x509.KeyUsage | None = None,
    validity: tuple[datetime.datetime, datetime.datetime] = (NOW - DAY, NOW + DAY),
    pss: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if ku is None and ca:
        ku = _ku(cert_sign=True, digital_signature=False)
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    return builder.sign(issuer_key, hashes.SHA384(), rsa_padding=PSS if pss else None)


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {name: ec.generate_private_key(ec.SECP384R1()) for name in ("root", "ca", "leaf", "other")}


@pytest.fixture(scope="module")
def ec_chain(keys: dict[str, Any]) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    root = _make("Root", keys["root"], "Root", keys["root"], ca=True)
    ca = _make("CA", keys["ca"], "Root", keys["root"], ca=True, path_length=0)
    leaf = _make("Leaf", keys["leaf"], "CA", keys["ca"], ca=False, ku=_ku(cert_sign=False, digital_signature=True))
    return leaf, ca, root


def _code(leaf: x509.Certificate, inter: list[x509.Certificate], root: x509.Certificate, at: Any = NOW) -> str:
    with pytest.raises(EvidenceError) as info:
        validate_chain(leaf, inter, root, at)
    return info.value.code


def test_ec_chain_valid(ec_chain: tuple[x509.Certificate, ...]) -> None:
    leaf, ca, root = ec_chain
    assert validate_chain(leaf, [ca], root, NOW) == [leaf, ca, root]
    assert validate_chain(leaf, [ca], root, NOW.replace(tzinfo=None)) == [leaf, ca, root]  # naive = UTC


def test_rsa_pss_chain_valid() -> None:
    """AMD ARK -> ASK -> VCEK style: RSASSA-PSS SHA-384 signatures, VCEK without keyUsage/basicConstraints."""
    ark_key = rsa.generate_private_key(65537, 2048)
    ask_key = rsa.generate_private_key(65537, 2048)
    vcek_key = ec.generate_private_key(ec.SECP384R1())
    ark = _make("ARK-Test", ark_key, "ARK-Test", ark_key, ca=True, pss=True)
    ask = _make("SEV-Test", ask_key, "ARK-Test", ark_key, ca=True, path_length=0, pss=True)
    vcek = _make("SEV-VCEK", vcek_key, "SEV-Test", ask_key, ca=None, pss=True)
    assert vcek.signature_algorithm_oid == x509.oid.SignatureAlgorithmOID.RSASSA_PSS
    assert validate_chain(vcek, [ask], ark, NOW) == [vcek, ask, ark]
    forged = _make("SEV-VCEK", vcek_key, "SEV-Test", ark_key, ca=None, pss=True)  # signed by the wrong RSA key
    assert _code(forged, [ask], ark) == "CHAIN_SIGNATURE_INVALID"


def test_time_window(ec_chain: tuple[x509.Certificate, ...]) -> None:
    leaf, ca, root = ec_chain
    assert _code(leaf, [ca], root, NOW + 2 * DAY) == "CERT_EXPIRED"
    assert _code(leaf, [ca], root, NOW - 2 * DAY) == "CERT_NOT_YET_VALID"


def test_expired_root(keys: dict[str, Any]) -> None:
    root = _make("Root", keys["root"], "Root", keys["root"], ca=True, validity=(NOW - 3 * DAY, NOW - DAY))
    ca = _make("CA", keys["ca"], "Root", keys["root"], ca=True)
    leaf = _make("Leaf", keys["leaf"], "CA", keys["ca"], ca=False)
    with pytest.raises(EvidenceError) as info:
        validate_chain(leaf, [ca], root, NOW)
    assert info.value.code == "CERT_EXPIRED" and "CN=Root" in info.value.message


def test_root_must_be_self_signed(keys: dict[str, Any], ec_chain: tuple[x509.Certificate, ...]) -> None:
    leaf, ca, _ = ec_chain
    not_self_signed = _make("Root", keys["root"], "Root", keys["other"], ca=True)
    assert _code(leaf, [ca], not_self_signed) == "CHAIN_SIGNATURE_INVALID"
    named_elsewhere = _make("Root", keys["root"], "Other", keys["root"], ca=True)
    assert _code(leaf, [ca], named_elsewhere) == "CHAIN_NAME_MISMATCH"


def test_links(keys: dict[str, Any], ec_chain: tuple[x509.Certificate, ...]) -> None:
    leaf, _, root = ec_chain
    assert _code(leaf, [], root) == "CHAIN_NAME_MISMATCH"
    assert _code(leaf, [root], root) == "CHAIN_NAME_MISMATCH"
    impostor = _make("CA", keys["other"], "Root", keys["root"], ca=True)  # right name, other key
    assert _code(leaf, [impostor], root) == "CHAIN_SIGNATURE_INVALID"


def test_constraints(keys: dict[str, Any], ec_chain: tuple[x509.Certificate, ...]) -> None:
    leaf, _, root = ec_chain
    no_bc = _make("CA", keys["ca"], "Root", keys["root"], ca=None, ku=_ku(cert_sign=True, digital_signature=False))
    assert _code(leaf, [no_bc], root) == "CHAIN_CONSTRAINTS"
    not_ca = _make("CA", keys["ca"], "Root", keys["root"], ca=False, ku=_ku(cert_sign=True, digital_signature=False))
    assert _code(leaf, [not_ca], root) == "CHAIN_CONSTRAINTS"
    no_cert_sign = _make(
        "CA", keys["ca"], "Root", keys["root"], ca=True, ku=_ku(cert_sign=False, digital_signature=True)
    )
    assert _code(leaf, [no_cert_sign], root) == "CHAIN_CONSTRAINTS"
    no_signing_leaf = _make(
        "Leaf", keys["leaf"], "CA", keys["ca"], ca=False, ku=_ku(cert_sign=False, digital_signature=False)
    )
    assert _code(no_signing_leaf, [ec_chain[1]], root) == "CHAIN_CONSTRAINTS"


def test_path_length(keys: dict[str, Any]) -> None:
    root = _make("Root", keys["root"], "Root", keys["root"], ca=True, path_length=0)
    ca = _make("CA", keys["ca"], "Root", keys["root"], ca=True, path_length=0)
    sub = _make("Sub", keys["other"], "CA", keys["ca"], ca=True)
    leaf = _make("Leaf", keys["leaf"], "Sub", keys["other"], ca=False)
    with pytest.raises(EvidenceError) as info:
        validate_chain(leaf, [sub, ca], root, NOW)  # root pathLen 0 but two CAs below it
    assert info.value.code == "CHAIN_CONSTRAINTS" and info.value.expected == "<= 0"
    assert _code(leaf, [sub, ca], _make("Root", keys["root"], "Root", keys["root"], ca=True, path_length=1)) == (
        "CHAIN_CONSTRAINTS"
    )
    open_root = _make("Root", keys["root"], "Root", keys["root"], ca=True, path_length=2)
    assert _code(leaf, [sub, ca], open_root) == "CHAIN_CONSTRAINTS"  # CA pathLen 0 with Sub below
    ok_ca = _make("CA", keys["ca"], "Root", keys["root"], ca=True, path_length=1)
    assert len(validate_chain(leaf, [sub, ok_ca], open_root, NOW)) == 4


def test_anchors_from_directory(trust_anchors_dir: Path) -> None:
    anchors = TrustAnchors.from_directory(trust_anchors_dir)
    assert [fingerprint(c) for c in anchors.roots("aws-nitro")] == sorted(PINNED_ROOTS["aws-nitro"])
    assert {fingerprint(c) for c in anchors.roots("amd-ark")} == PINNED_ROOTS["amd-ark"]
    assert {fingerprint(c) for c in anchors.roots("intel-sgx")} == PINNED_ROOTS["intel-sgx"]
    assert anchors.roots("unknown") == []
    ask = next(c for c in anchors.certificates if "SEV-Milan" in c.subject.rfc4514_string())
    assert not anchors.is_pinned("amd-ark", ask)  # loaded but not a pinned root
    assert TrustAnchors().roots("aws-nitro") == []


def test_real_amd_links_through_the_same_seam(trust_anchors_dir: Path) -> None:
    """Real AMD ARK -> ASK / ASVK links (RSASSA-PSS SHA-384, 4096-bit) with the helpers validate_chain uses."""
    anchors = TrustAnchors.from_directory(trust_anchors_dir)
    at = datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC)
    for ark in anchors.roots("amd-ark"):
        check_issued_by(ark, ark)
        below = [c for c in anchors.certificates if c.issuer == ark.subject and c != ark]
        assert len(below) == 2  # ASK and ASVK
        for ca in below:
            check_issued_by(ca, ark)
            check_validity(ca, at)
            check_ca(ca, ca_below=0)
        check_ca(ark, ca_below=1)


def test_anchor_directory_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TrustAnchors.from_directory(tmp_path / "missing")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ConfigError):
        TrustAnchors.from_directory(tmp_path)


def test_verified_link_cache_never_accepts_a_forged_signature() -> None:
    """A cached success for one (cert, issuer) pair must not vouch for another cert or another issuer."""
    from tests.fakes.aws_pki import FakeAwsPki
    from verifier.trust.chain import VerifiedLinks, check_issued_by

    links = VerifiedLinks()
    pki, foreign = FakeAwsPki(), FakeAwsPki().foreign()
    check_issued_by(pki.regional, pki.root, links=links)  # cached now
    check_issued_by(pki.regional, pki.root, links=links)  # hit
    with pytest.raises(EvidenceError) as info:
        check_issued_by(foreign.regional, pki.root, links=links)  # same names, other key: must still fail
    assert info.value.code == "CHAIN_SIGNATURE_INVALID"
    with pytest.raises(EvidenceError):
        check_issued_by(pki.regional, foreign.root, links=links)
