"""`verifier.trust.names`: the memoised comparison keys of X.509 names agree with `cryptography`'s own `Name`
equality on every pair (the chain and CRL-scope checks compare keys instead of `Name` objects), and a key is
computed once per certificate object."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.trust.names import issuer_key, issuer_text, name_key, subject_key, subject_text

OIDS = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME]
TYPES = [x509.name._ASN1Type.UTF8String, x509.name._ASN1Type.PrintableString]
VALUES = st.sampled_from(["Intel SGX PCK Platform CA", "AMD", "US", "Santa Clara", "ARK-Genoa", "a", "A"])


def _attribute(draw: st.DrawFn) -> x509.NameAttribute[str]:
    oid = draw(st.sampled_from(OIDS))
    value = "US" if oid == NameOID.COUNTRY_NAME else draw(VALUES)
    return x509.NameAttribute(oid, value, draw(st.sampled_from(TYPES)))


@st.composite
def names(draw: st.DrawFn) -> x509.Name:
    rdns = []
    for _ in range(draw(st.integers(0, 3))):
        attributes = {(a.oid, a.value): a for a in (_attribute(draw) for _ in range(draw(st.integers(1, 2))))}
        rdns.append(x509.RelativeDistinguishedName(list(attributes.values())))
    return x509.Name(rdns)


@settings(max_examples=400)
@given(names(), names())
def test_keys_are_equal_exactly_when_the_names_are(a: x509.Name, b: x509.Name) -> None:
    assert (name_key(a) == name_key(b)) == (a == b)
    assert name_key(a) == name_key(x509.Name(list(a.rdns)))  # a copy compares equal


def test_string_types_and_attribute_order_within_an_rdn_are_not_compared_as_cryptography_does() -> None:
    utf8 = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ARK-Genoa", x509.name._ASN1Type.UTF8String)])
    printable = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ARK-Genoa", x509.name._ASN1Type.PrintableString)])
    assert utf8 == printable and name_key(utf8) == name_key(printable)
    cn, o = x509.NameAttribute(NameOID.COMMON_NAME, "x"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "y")
    one = x509.Name([x509.RelativeDistinguishedName([cn, o])])
    other = x509.Name([x509.RelativeDistinguishedName([o, cn])])
    assert one == other and name_key(one) == name_key(other)
    split = x509.Name([x509.RelativeDistinguishedName([cn]), x509.RelativeDistinguishedName([o])])
    assert split != one and name_key(split) != name_key(one)  # RDN boundaries count


def test_certificate_keys_are_memoised_per_object() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert subject_key(cert) == name_key(subject) and issuer_key(cert) == name_key(issuer)
    assert subject_key(cert) is subject_key(cert) and issuer_key(cert) is issuer_key(cert)
    assert subject_text(cert) == "CN=leaf" == subject.rfc4514_string() and subject_text(cert) is subject_text(cert)
    assert issuer_text(cert) == "CN=ca" and issuer_text(cert) is issuer_text(cert)
