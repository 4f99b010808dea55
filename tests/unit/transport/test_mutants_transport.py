"""Tests that kill surviving mutants of scripts/mutation.py in verifier/transport/grpc/interceptors.py (the client
certificate chain walk)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.integration.test_admin_auth import CA_KEY_USAGE
from verifier.transport.grpc.admin_auth import ClientCertVerifier

AT = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(AT - DAY)
        .not_valid_after(AT + DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:  # a CA asserts keyCertSign (RFC 5280 section 4.2.1.3)
        builder = builder.add_extension(CA_KEY_USAGE, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def test_a_looping_first_intermediate_gives_the_same_answer_as_the_chain_without_it() -> None:
    """leaf <- "ops" <- "admin ca". The loop is a self-issued CA named "ops" with the real intermediate's key: it
    issued the leaf (name and signature match) and itself, so a walk that does not use each intermediate once
    goes round it until the depth limit; used once, the walk moves on to the real "ops" and the admin CA."""
    root_key, ops_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("admin ca", root_key, "admin ca", root_key, ca=True)
    ops = _cert("ops", ops_key, "admin ca", root_key, ca=True)
    loop = _cert("ops", ops_key, "ops", ops_key, ca=True)
    leaf = _cert("alice", leaf_key, "ops", ops_key, ca=False)
    verifier = ClientCertVerifier([root])
    assert verifier.verify(_pem(leaf), _pem(ops), at=AT) == leaf
    assert verifier.verify(_pem(leaf), _pem(loop, ops), at=AT) == leaf
    assert verifier.verify(_pem(leaf), _pem(leaf, loop, ops), at=AT) == leaf
    assert verifier.verify(_pem(leaf), _pem(loop), at=AT) is None  # the loop alone leads nowhere
    assert verifier.verify(_pem(leaf), _pem(loop, loop), at=AT) is None
