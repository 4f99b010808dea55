"""verifier.trust.client_certs (issue 12): the client-certificate decision made by `cryptography.x509.verification`
(its webpki-style client profile). Beyond what the hand-written check of admin_auth did (signature and name
chaining, validity, intermediates flagged CA), this holds: the leaf's extendedKeyUsage includes clientAuth when
present, every issuer (the configured CA too) is a CA with keyCertSign and a respected pathLen, the signature
algorithms are the profile's, the leaf is an end entity; and it keeps: validity ends inclusive to the microsecond,
a chain only to a configured CA, at most MAX_INTERMEDIATES intermediates, no crash on undecodable input. A leaf
without subjectAltName or authorityKeyIdentifier is accepted (relaxed on purpose, see the module docstring)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.integration.test_admin_auth import CA_KEY_USAGE, Issued
from verifier.errors import EvidenceError
from verifier.trust.client_certs import MAX_INTERMEDIATES, MAX_PEER_CHAIN_PEM, ClientCertVerifier, VerifiedClientCert

NOW = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)  # whole seconds, far from the real clock
DAY = dt.timedelta(days=1)
TICK = dt.timedelta(microseconds=1)

Extensions = Sequence[tuple[x509.ExtensionType, bool]]
CA_BC = (x509.BasicConstraints(ca=True, path_length=None), True)
CA_KU = (CA_KEY_USAGE, True)
CA_EXTENSIONS: Extensions = (CA_BC, CA_KU)
LEAF_BC = (x509.BasicConstraints(ca=False, path_length=None), True)
CLIENT_AUTH = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
SIGNING_KU = x509.KeyUsage(  # digitalSignature only: an end entity's, no keyCertSign
    digital_signature=True,
    key_cert_sign=False,
    crl_sign=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _cert(
    cn: str,
    issuer: Issued | None,
    extensions: Extensions,
    *,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    not_before: dt.datetime = NOW - DAY,
    not_after: dt.datetime = NOW + DAY,
) -> Issued:
    """A certificate for `cn` signed by `issuer` (self-signed when None) carrying exactly `extensions`."""
    own = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer is not None else subject)
        .public_key(own.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    signer = issuer.key if issuer is not None else own
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    # Issued.key is typed for the EC keys of the other tests; here it may be RSA or Ed25519 too.
    return Issued(cast(Any, own), builder.sign(signer, algorithm))


def _ca(cn: str = "admin ca", extensions: Extensions = CA_EXTENSIONS, **kw: Any) -> Issued:
    return _cert(cn, None, extensions, **kw)


def _leaf(issuer: Issued, cn: str = "alice", extensions: Extensions = (LEAF_BC, CLIENT_AUTH), **kw: Any) -> Issued:
    return _cert(cn, issuer, extensions, **kw)


def _pem(*certs: Issued) -> bytes:
    return b"".join(c.cert.public_bytes(Encoding.PEM) for c in certs)


def _check(cas: Sequence[Issued], leaf: Issued, *chain: Issued, at: dt.datetime = NOW) -> VerifiedClientCert:
    return ClientCertVerifier([c.cert for c in cas]).check(leaf.pem, _pem(*chain) if chain else None, at=at)


def _refused(cas: Sequence[Issued], leaf: Issued, *chain: Issued, at: dt.datetime = NOW) -> EvidenceError:
    """The refusal, after checking that `verify` (the Optional form the interceptor's callers use) agrees."""
    verifier = ClientCertVerifier([c.cert for c in cas])
    assert verifier.verify(leaf.pem, _pem(*chain) if chain else None, at=at) is None
    with pytest.raises(EvidenceError) as caught:
        _check(cas, leaf, *chain, at=at)
    return caught.value


# --- what is accepted ----------------------------------------------------------------------------------------------


def test_a_client_certificate_is_accepted_with_the_chain_to_its_ca() -> None:
    admin = _ca()
    ops = _cert("ops", admin, CA_EXTENSIONS)
    alice, bob = _leaf(admin), _leaf(ops, "bob")
    assert _check([admin], alice) == VerifiedClientCert(alice.cert, (alice.cert, admin.cert))
    assert _check([admin], bob, ops) == VerifiedClientCert(bob.cert, (bob.cert, ops.cert, admin.cert))
    # gRPC's chain may repeat the leaf and end with the root: the same chain is built.
    assert _check([admin], bob, bob, ops, admin).chain == (bob.cert, ops.cert, admin.cert)
    assert ClientCertVerifier([admin.cert]).verify(bob.pem, _pem(ops), at=NOW) == bob.cert


@pytest.mark.parametrize(
    "extensions",
    [
        (),
        (LEAF_BC,),
        (CLIENT_AUTH,),
        (LEAF_BC, (SIGNING_KU, True)),
        (LEAF_BC, CLIENT_AUTH, (x509.SubjectAlternativeName([x509.RFC822Name("alice@example.com")]), False)),
    ],
    ids=["no-extension", "basic-constraints", "eku-only", "key-usage", "san"],
)
def test_a_leaf_needs_neither_san_nor_authority_key_identifier(extensions: Extensions) -> None:
    """webpki requires both in an end-entity certificate; a client certificate names its holder in the subject, and
    the issuer's signature (not the AKI hint) binds it: both relaxed."""
    admin = _ca()
    alice = _leaf(admin, extensions=extensions)
    assert _check([admin], alice).leaf == alice.cert


def test_a_leaf_with_both_eku_purposes_is_a_client_certificate() -> None:
    admin = _ca()
    both = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    assert _check([admin], _leaf(admin, extensions=(LEAF_BC, both))).chain[-1] == admin.cert


def test_a_naive_instant_is_utc() -> None:
    admin = _ca()
    alice = _leaf(admin, not_after=NOW)
    assert _check([admin], alice, at=NOW.replace(tzinfo=None)).leaf == alice.cert
    assert _refused([admin], alice, at=(NOW + TICK).replace(tzinfo=None)).code == "CERT_EXPIRED"


def test_a_pinned_self_signed_leaf_is_its_own_chain() -> None:
    """A CA file may pin one self-signed client certificate (as the hand check allowed): trusted a priori."""
    pinned = _cert("alice", None, (LEAF_BC, CLIENT_AUTH))
    assert _check([pinned], pinned) == VerifiedClientCert(pinned.cert, (pinned.cert,))


# --- the leaf's extendedKeyUsage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "purposes",
    [
        [ExtendedKeyUsageOID.SERVER_AUTH],
        [ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION],
        [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    ],
    ids=["server-auth", "code-signing+email", "any-eku"],
)
def test_a_leaf_whose_eku_lacks_client_auth_is_refused(purposes: list[x509.ObjectIdentifier]) -> None:
    admin = _ca()
    server = _leaf(admin, extensions=(LEAF_BC, (x509.ExtendedKeyUsage(purposes), False)))
    error = _refused([admin], server)
    assert (error.code, "EKU" in error.actual) == ("CHAIN_ROOT_UNTRUSTED", True)


def test_an_issuer_whose_eku_excludes_client_auth_is_refused() -> None:
    admin = _ca()
    ops = _cert("ops", admin, (*CA_EXTENSIONS, (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)))
    assert _refused([admin], _leaf(ops, "bob"), ops).code == "CHAIN_ROOT_UNTRUSTED"


# --- issuers must be CAs that may sign certificates ----------------------------------------------------------------

NO_CERT_SIGN = (
    x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=False,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    ),
    True,
)
NOT_A_CA: dict[str, Extensions] = {
    "ca-false": ((x509.BasicConstraints(ca=False, path_length=None), True), CA_KU),
    "no-basic-constraints": (CA_KU,),
    "basic-constraints-not-critical": ((x509.BasicConstraints(ca=True, path_length=None), False), CA_KU),
    "no-key-cert-sign": (CA_BC, NO_CERT_SIGN),
    "no-key-usage": (CA_BC,),
}


@pytest.mark.parametrize("extensions", NOT_A_CA.values(), ids=NOT_A_CA.keys())
def test_a_configured_ca_that_is_not_a_ca_is_refused(extensions: Extensions) -> None:
    """The hand check never looked at the configured CA's own extensions."""
    admin = _ca(extensions=extensions)
    assert _refused([admin], _leaf(admin)).code == "CHAIN_ROOT_UNTRUSTED"
    good = _ca()  # the control: the same leaf profile under a proper CA
    assert _check([good], _leaf(good)).leaf is not None


@pytest.mark.parametrize("extensions", NOT_A_CA.values(), ids=NOT_A_CA.keys())
def test_an_intermediate_that_is_not_a_ca_is_refused(extensions: Extensions) -> None:
    admin = _ca()
    ops = _cert("ops", admin, extensions)
    assert _refused([admin], _leaf(ops, "bob"), ops).code == "CHAIN_ROOT_UNTRUSTED"


@pytest.mark.parametrize(("path_length", "accepted"), [(0, False), (1, True)])
def test_path_length_constraints_are_respected(path_length: int, accepted: bool) -> None:
    admin = _ca(extensions=((x509.BasicConstraints(ca=True, path_length=path_length), True), CA_KU))
    ops = _cert("ops", admin, CA_EXTENSIONS)
    bob = _leaf(ops, "bob")
    if accepted:
        assert _check([admin], bob, ops).leaf == bob.cert
    else:
        assert _refused([admin], bob, ops).code == "CHAIN_ROOT_UNTRUSTED"


@pytest.mark.parametrize(
    "extensions",
    [(CA_BC, CA_KU), (LEAF_BC, CA_KU)],
    ids=["leaf-is-a-ca", "leaf-may-sign-certificates"],
)
def test_a_leaf_must_be_an_end_entity(extensions: Extensions) -> None:
    admin = _ca()
    assert _refused([admin], _leaf(admin, extensions=extensions)).code == "CHAIN_ROOT_UNTRUSTED"


def test_an_unknown_critical_extension_in_the_leaf_is_refused() -> None:
    admin = _ca()
    unknown = (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), True)
    assert _refused([admin], _leaf(admin, extensions=(LEAF_BC, unknown))).code == "CHAIN_ROOT_UNTRUSTED"


def test_only_x509_v3_certificates_are_accepted() -> None:
    admin = _ca()
    alice = _leaf(admin, extensions=())
    tbs = asn1_x509.Certificate.load(alice.cert.public_bytes(Encoding.DER))["tbs_certificate"]
    fields = ("serial_number", "signature", "issuer", "validity", "subject", "subject_public_key_info")
    v1 = asn1_x509.TbsCertificate({"version": "v1", **{name: tbs[name] for name in fields}})
    assert isinstance(admin.key, ec.EllipticCurvePrivateKey)
    signed = asn1_x509.Certificate(
        {
            "tbs_certificate": v1,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature_value": admin.key.sign(v1.dump(), ec.ECDSA(hashes.SHA256())),
        }
    )
    old = Issued(alice.key, x509.load_der_x509_certificate(signed.dump()))
    assert old.cert.version == x509.Version.v1
    old.cert.verify_directly_issued_by(admin.cert)  # a good signature (raises otherwise): only the version is wrong
    assert _refused([admin], old).code == "CHAIN_ROOT_UNTRUSTED"


# --- signature algorithms ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_key", "accepted"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), True),
        (lambda: rsa.generate_private_key(65537, 2048), True),
        (lambda: rsa.generate_private_key(65537, 1024), False),  # too weak
        (ed25519.Ed25519PrivateKey.generate, False),  # not in the profile
    ],
    ids=["p384", "rsa-2048", "rsa-1024", "ed25519"],
)
def test_the_ca_key_must_be_one_of_the_profile(
    make_key: Callable[[], CertificateIssuerPrivateKeyTypes], accepted: bool
) -> None:
    admin = _ca(key=make_key())
    alice = _leaf(admin)
    if accepted:
        assert _check([admin], alice).leaf == alice.cert
    else:
        assert _refused([admin], alice).code == "CHAIN_ROOT_UNTRUSTED"


# --- validity, at the instant asked --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "code"),
    [(NOW - DAY - TICK, "CERT_NOT_YET_VALID"), (NOW + DAY + TICK, "CERT_EXPIRED")],
    ids=["not-yet-valid", "expired"],
)
def test_a_leaf_outside_its_validity_is_refused(at: dt.datetime, code: str) -> None:
    admin = _ca(not_before=NOW - 30 * DAY, not_after=NOW + 30 * DAY)
    alice = _leaf(admin)  # NOW - DAY .. NOW + DAY
    assert _refused([admin], alice, at=at).code == code
    assert _check([admin], alice, at=NOW - DAY).leaf == alice.cert  # both ends are valid instants
    assert _check([admin], alice, at=NOW + DAY).leaf == alice.cert


def test_an_issuer_expired_by_a_microsecond_is_refused() -> None:
    """The library compares whole seconds; the chain it built is checked again at the exact instant."""
    admin = _ca(not_before=NOW - 30 * DAY, not_after=NOW + 30 * DAY)
    ops = _cert("ops", admin, CA_EXTENSIONS, not_after=NOW)
    bob = _leaf(ops, "bob")
    assert _check([admin], bob, ops, at=NOW).leaf == bob.cert
    assert _refused([admin], bob, ops, at=NOW + TICK).code == "CERT_EXPIRED"


@pytest.mark.parametrize(("start", "end"), [(-3 * DAY, -2 * DAY), (2 * DAY, 3 * DAY)], ids=["expired", "not-yet"])
def test_a_configured_ca_outside_its_validity_is_refused(start: dt.timedelta, end: dt.timedelta) -> None:
    admin = _ca(not_before=NOW + start, not_after=NOW + end)
    assert _refused([admin], _leaf(admin)).code == "CHAIN_ROOT_UNTRUSTED"


# --- only the configured CAs ---------------------------------------------------------------------------------------


def test_a_chain_to_an_unconfigured_ca_is_refused() -> None:
    admin, foreign, impostor = _ca(), _ca("foreign ca"), _ca()  # the impostor has the admin CA's name
    assert _refused([admin], _leaf(foreign)).code == "CHAIN_ROOT_UNTRUSTED"
    assert _refused([admin], _leaf(foreign), foreign).code == "CHAIN_ROOT_UNTRUSTED"  # its root presented too
    assert _refused([admin], _leaf(impostor)).code == "CHAIN_ROOT_UNTRUSTED"
    ops = _cert("ops", foreign, CA_EXTENSIONS)
    assert _refused([admin], _leaf(ops, "bob"), ops, foreign).code == "CHAIN_ROOT_UNTRUSTED"
    assert _check([admin, foreign], _leaf(ops, "bob"), ops).chain[-1] == foreign.cert  # the control


def test_the_chain_depth_is_bounded() -> None:
    admin = _ca()
    chain = [admin]
    for n in range(MAX_INTERMEDIATES + 1):
        chain.insert(0, _cert(f"ops {n}", chain[0], CA_EXTENSIONS))
    intermediates = chain[:-1]  # leaf-side first
    longest = intermediates[1:]  # MAX_INTERMEDIATES of them
    assert len(longest) == MAX_INTERMEDIATES
    assert _check([admin], _leaf(longest[0], "bob"), *longest).leaf is not None
    assert _refused([admin], _leaf(intermediates[0], "eve"), *intermediates).code == "CHAIN_ROOT_UNTRUSTED"


# --- undecodable input ---------------------------------------------------------------------------------------------


def test_undecodable_certificates_are_refused_not_raised_through() -> None:
    admin = _ca()
    alice = _leaf(admin)
    verifier = ClientCertVerifier([admin.cert])
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    for leaf, chain in [
        (b"not a certificate", None),
        (broken, None),
        (alice.pem + admin.pem, None),  # two leaves
        (alice.pem, b"junk"),
        (alice.pem, broken),
        (alice.pem, admin.pem * (MAX_PEER_CHAIN_PEM + 1)),
    ]:
        assert verifier.verify(leaf, chain, at=NOW) is None
        with pytest.raises(EvidenceError) as caught:
            verifier.check(leaf, chain, at=NOW)
        assert caught.value.code == "CERT_MALFORMED"
    assert verifier.verify(alice.pem, admin.pem * MAX_PEER_CHAIN_PEM, at=NOW) == alice.cert
