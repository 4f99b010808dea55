"""`verifier.trust.public_keys`: a certificate's key is decoded once per certificate object and its point encoded
once per key object; both equal what `cryptography` gives, and two certificates never share an entry."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from verifier.trust.public_keys import public_key, uncompressed_point

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_the_key_and_point_are_cryptographys_made_once(curve: ec.EllipticCurve) -> None:
    cert = _cert(ec.generate_private_key(curve))
    key = public_key(cert)
    assert key is public_key(cert)  # one object per certificate object
    assert key == cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    point = uncompressed_point(key)
    assert point is uncompressed_point(key)
    assert point == cert.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert point[0] == 4 and len(point) == 1 + 2 * ((curve.key_size + 7) // 8)


def test_certificates_and_keys_never_share_an_entry() -> None:
    a, b = _cert(ec.generate_private_key(ec.SECP384R1())), _cert(ec.generate_private_key(ec.SECP384R1()))
    ka, kb = public_key(a), public_key(b)
    assert ka != kb and uncompressed_point(ka) != uncompressed_point(kb)
    fresh = b.public_key()  # another object for the same key: its own entry, the same point
    assert uncompressed_point(fresh) == uncompressed_point(kb)


def test_a_non_ec_key_is_returned_as_it_is() -> None:
    cert = _cert(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key = public_key(cert)
    assert isinstance(key, rsa.RSAPublicKey) and key is public_key(cert)
