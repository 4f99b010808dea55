"""Issue 16, items 5 and 6: ClientCertVerifier matches an admin client certificate to the admin CA by signature
(an impostor CA with the same name and another key is refused, also as an intermediate) and checks the admin CA's
own validity (an expired or not-yet-valid admin CA is refused although the leaf it signed is still valid)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.test_admin_auth import Issued, _ca, _leaf
from tests.unit.transport.test_transport_interceptors import Details, FakeContext, ok
from verifier import errors
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor, ClientCertVerifier


def _ca_between(name: str, not_before: dt.datetime, not_after: dt.datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _intermediate(issuer: Issued, name: str, not_before: dt.datetime, not_after: dt.datetime) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    return Issued(key, cert)


def _admin_call(verifier: ClientCertVerifier, leaf: Issued, chain: bytes | None = None) -> str:
    """An admin List call presenting `leaf` over TLS: "ok", or the AuthError's code."""
    auth = {"transport_security_type": [b"ssl"], "x509_pem_cert": [leaf.pem]}
    if chain is not None:
        auth["x509_pem_cert_chain"] = [chain]
    interceptor = AdminAuthInterceptor(admin_cas=verifier, cert_role="auditor")
    try:
        return str(
            asyncio.run(
                interceptor.around(
                    "/verifier.v1.ReferenceValues/List",
                    Details("/x"),  # type: ignore[arg-type]
                    ok,
                    None,
                    FakeContext(auth),  # type: ignore[arg-type]
                )
            )
        )
    except errors.AuthError as error:
        return error.code


def test_a_leaf_from_an_impostor_ca_with_the_admin_cas_name_is_refused() -> None:
    admin, impostor = _ca("admin ca"), _ca("admin ca")
    assert admin.cert.subject == impostor.cert.subject and admin.cert.public_key() != impostor.cert.public_key()
    verifier = ClientCertVerifier([admin.cert])
    now = dt.datetime.now(dt.UTC)
    alice, mallory = _leaf(admin, "alice"), _leaf(impostor, "alice")
    assert mallory.cert.issuer == admin.cert.subject  # the name matches: only the signature tells them apart
    assert verifier.verify(alice.pem, None, at=now) == alice.cert
    assert verifier.verify(mallory.pem, None, at=now) is None
    assert _admin_call(verifier, alice) == "ok"
    assert _admin_call(verifier, mallory) == "ADMIN_CERT_INVALID"


def test_an_intermediate_from_an_impostor_ca_with_the_admin_cas_name_is_refused() -> None:
    admin, impostor = _ca("admin ca"), _ca("admin ca")
    verifier = ClientCertVerifier([admin.cert])
    now = dt.datetime.now(dt.UTC)
    span = (now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1))
    good, bad = _intermediate(admin, "ops", *span), _intermediate(impostor, "ops", *span)
    bob, eve = _leaf(good, "bob"), _leaf(bad, "bob")
    assert verifier.verify(bob.pem, bob.pem + good.pem, at=now) == bob.cert
    assert verifier.verify(eve.pem, eve.pem + bad.pem, at=now) is None
    assert _admin_call(verifier, eve, eve.pem + bad.pem) == "ADMIN_CERT_INVALID"


@pytest.mark.parametrize(
    ("start", "end"),
    [(-dt.timedelta(days=2), -dt.timedelta(days=1)), (dt.timedelta(days=1), dt.timedelta(days=2))],
    ids=["expired", "not-yet-valid"],
)
def test_an_admin_ca_outside_its_validity_is_refused_although_the_leaf_is_valid(
    start: dt.timedelta, end: dt.timedelta
) -> None:
    now = dt.datetime.now(dt.UTC)
    admin = _ca_between("admin ca", now + start, now + end)
    alice = _leaf(admin, "alice")  # valid from 5 minutes ago for an hour
    assert alice.cert.not_valid_before_utc <= now <= alice.cert.not_valid_after_utc
    verifier = ClientCertVerifier([admin.cert])
    assert verifier.verify(alice.pem, None, at=now) is None
    assert _admin_call(verifier, alice) == "ADMIN_CERT_INVALID"
    # The control: a CA built the same way but valid now is accepted with a leaf built the same way.
    current = _ca_between("admin ca", now - dt.timedelta(days=1), now + dt.timedelta(days=1))
    bob = _leaf(current, "bob")
    assert ClientCertVerifier([current.cert]).verify(bob.pem, None, at=now) == bob.cert


def test_an_expired_intermediate_is_refused_although_the_leaf_and_the_ca_are_valid() -> None:
    admin = _ca("admin ca")
    verifier = ClientCertVerifier([admin.cert])
    now = dt.datetime.now(dt.UTC)
    ops = _intermediate(admin, "ops", now - dt.timedelta(days=2), now - dt.timedelta(days=1))
    bob = _leaf(ops, "bob")
    assert verifier.verify(bob.pem, bob.pem + ops.pem, at=now) is None
    assert _admin_call(verifier, bob, bob.pem + ops.pem) == "ADMIN_CERT_INVALID"
