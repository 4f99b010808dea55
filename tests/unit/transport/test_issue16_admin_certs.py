"""Issue 16, items 5 and 6: ClientCertVerifier matches an admin client certificate to the admin CA by signature
(an impostor CA with the same name and another key is refused, also as an intermediate) and checks the admin CA's
own validity (an expired or not-yet-valid admin CA is refused although the leaf it signed is still valid).

Issue 12: the profile of verifier.trust.client_certs reaches the interceptor (a leaf for servers only, or one from
a CA that may not sign certificates, is ADMIN_CERT_INVALID / APPRAISAL_CERT_INVALID, the reason in the log), and
the admin actor is still the subject CN, whatever the subjectAltName says."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.test_admin_auth import CA_KEY_USAGE, Issued, _ca, _leaf
from tests.unit.transport.test_transport_interceptors import Details, FakeContext, ok
from verifier import errors
from verifier.auth import current_actor
from verifier.transport.grpc import admin_auth
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor, ClientCertVerifier

SIGN_ONLY = x509.KeyUsage(  # a keyUsage without keyCertSign
    digital_signature=True,
    key_cert_sign=False,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _ca_between(
    name: str, not_before: dt.datetime, not_after: dt.datetime, *, key_usage: x509.KeyUsage | None = CA_KEY_USAGE
) -> Issued:
    """A self-signed CA (basicConstraints CA=true) valid from `not_before` to `not_after`, with `key_usage`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return Issued(key, builder.sign(key, hashes.SHA256()))


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
        .add_extension(CA_KEY_USAGE, critical=True)
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


# --- issue 12: the client-certificate profile, seen through the interceptor -----------------------------------------


def _actor(verifier: ClientCertVerifier, leaf: Issued) -> str:
    """The actor an admin List call presenting `leaf` runs as, or the AuthError's code."""
    seen: list[str] = []

    async def inner(request: object, context: object) -> str:
        seen.append(current_actor())
        return "ok"

    context: Any = FakeContext({"transport_security_type": [b"ssl"], "x509_pem_cert": [leaf.pem]})
    details: Any = Details("/x")
    interceptor = AdminAuthInterceptor(admin_cas=verifier, cert_role="auditor")
    call = interceptor.around("/verifier.v1.ReferenceValues/List", details, inner, None, context)
    try:
        assert asyncio.run(call) == "ok"
    except errors.AuthError as error:
        return error.code
    return seen[0]


def test_the_admin_actor_is_the_subject_cn_whatever_the_san_says() -> None:
    admin = _ca("admin ca")
    verifier = ClientCertVerifier([admin.cert])
    names = [x509.RFC822Name("mallory@example.com"), x509.DNSName("mallory.example.com")]
    assert _actor(verifier, _leaf(admin, "alice", names=names)) == "cert:alice"
    assert _actor(verifier, _leaf(admin, "alice")) == "cert:alice"


def test_an_admin_certificate_for_servers_only_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    admin = _ca("admin ca")
    verifier = ClientCertVerifier([admin.cert])
    server = _leaf(admin, "alice", server=True)  # EKU serverAuth, no clientAuth
    with caplog.at_level(logging.INFO, logger=admin_auth.__name__):
        assert _actor(verifier, server) == "ADMIN_CERT_INVALID"
    assert "admin client certificate refused: CHAIN_ROOT_UNTRUSTED" in caplog.text and "EKU" in caplog.text
    assert _actor(verifier, _leaf(admin, "alice")) == "cert:alice"  # the control: the same CA, a client certificate


def test_a_leaf_of_an_admin_ca_that_may_not_sign_certificates_is_refused() -> None:
    now = dt.datetime.now(dt.UTC)
    span = (now - dt.timedelta(days=1), now + dt.timedelta(days=1))
    for admin in (_ca_between("admin ca", *span, key_usage=None), _ca_between("admin ca", *span, key_usage=SIGN_ONLY)):
        alice = _leaf(admin, "alice")
        alice.cert.verify_directly_issued_by(admin.cert)  # the signature itself is good (raises otherwise)
        assert _actor(ClientCertVerifier([admin.cert]), alice) == "ADMIN_CERT_INVALID"


def test_an_appraisal_certificate_for_servers_only_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    workloads = _ca("workload ca")
    interceptor = AdminAuthInterceptor(appraisal_cas=ClientCertVerifier([workloads.cert]))

    def appraise(leaf: Issued) -> str:
        context: Any = FakeContext({"transport_security_type": [b"ssl"], "x509_pem_cert": [leaf.pem]})
        details: Any = Details("/x")
        try:
            return str(asyncio.run(interceptor.around("/verifier.v1.Verifier/Appraise", details, ok, None, context)))
        except errors.AuthError as error:
            return error.code

    with caplog.at_level(logging.WARNING, logger=admin_auth.__name__):
        assert appraise(_leaf(workloads, "workload-7", server=True)) == "APPRAISAL_CERT_INVALID"
    assert "client certificate not from an accepted CA (CHAIN_ROOT_UNTRUSTED" in caplog.text
    assert appraise(_leaf(workloads, "workload-7")) == "ok"
