"""Tests that kill surviving mutants of scripts/mutation.py in verifier/trust (issue 16): the certificate loader's
count bounds and eager decoding, the bookkeeping readers' tolerance of serial 0 and their asn1crypto fallback, the
VerifiedLinks LRU, undecodable extensions in chain checks, and the CRL checker's signature profiles, check order,
appraisal-time zone and memo."""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.fakes.x509_mutations import SEQUENCE, Tlv, _seq, _with_tbs
from verifier.errors import EvidenceError
from verifier.tee.sevsnp.tcb import Product
from verifier.trust import crl as crl_module
from verifier.trust.certs import (
    certificate_not_after,
    load_certificate,
    load_der_certificate,
    load_pem_certificates,
    pem_certificate_ders,
)
from verifier.trust.chain import VerifiedLinks, check_ca, check_leaf, validate_chain
from verifier.trust.crl import AMD_ARK, INTEL_SGX, CrlProfile, check_crl, rfc5280_window

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)
PLUS2 = dt.timezone(dt.timedelta(hours=2))
NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

_KEY = ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(
    cn: str = "core test",
    *,
    issuer: str | None = None,
    key: ec.EllipticCurvePrivateKey = _KEY,
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer or cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(_KEY, hashes.SHA256())


def _code(call: Callable[..., Any], *args: Any, **kwargs: Any) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        call(*args, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


@pytest.fixture(scope="module")
def intel() -> FakeIntelPki:
    return FakeIntelPki()


# --- certs.py: the PEM bundle bounds --------------------------------------------------------------------------------


def _pem(cert: x509.Certificate, label: bytes = b"CERTIFICATE") -> bytes:
    pem = cert.public_bytes(Encoding.PEM)
    return pem.replace(b"BEGIN CERTIFICATE", b"BEGIN " + label).replace(b"END CERTIFICATE", b"END " + label)


def test_an_oversized_bundle_is_refused_by_its_count_before_any_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = b"".join(_pem(_certificate(f"c{i}")) for i in range(3))
    assert len(load_pem_certificates(bundle, "bundle", max_count=3)) == 3  # the bound itself is allowed

    def parser_must_not_run(data: bytes) -> list[x509.Certificate]:
        raise AssertionError("an oversized bundle was decoded")

    monkeypatch.setattr(x509, "load_pem_x509_certificates", parser_must_not_run)
    error = _code(load_pem_certificates, bundle, "bundle", max_count=2)
    assert (error.code, error.expected, error.actual) == ("CERT_MALFORMED", "<= 2", "3")
    assert "too many certificates" in error.message


@pytest.mark.parametrize("count", [2, 3], ids=["two", "three"])
def test_x509_certificate_pem_labels_are_bounded_too(count: int) -> None:
    """`cryptography` also parses "-----BEGIN X509 CERTIFICATE-----" blocks, which the cheap pre-count of
    "-----BEGIN CERTIFICATE-----" does not see: the count after parsing is what bounds them."""
    bundle = b"".join(_pem(_certificate(f"c{i}"), b"X509 CERTIFICATE") for i in range(count))
    assert len(load_pem_certificates(bundle, "bundle", max_count=count)) == count
    error = _code(load_pem_certificates, bundle, "bundle", max_count=count - 1)
    assert (error.code, error.expected, error.actual) == ("CERT_MALFORMED", f"1..{count - 1}", str(count))
    assert "wrong number of PEM certificates" in error.message
    error = _code(load_certificate, bundle, "one certificate")  # the single-certificate loader relies on it
    assert (error.code, error.actual) == ("CERT_MALFORMED", str(count))


# --- certs.py: every part later code reads is decoded at load time --------------------------------------------------


def _with_unknown_key_algorithm(cert: x509.Certificate) -> bytes:
    parsed = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    parsed["tbs_certificate"]["subject_public_key_info"]["algorithm"]["algorithm"] = "1.2.3.4.99"
    return bytes(parsed.dump(force=True))


def test_a_certificate_with_an_unknown_public_key_algorithm_fails_at_load() -> None:
    der = _with_unknown_key_algorithm(_certificate())
    x509.load_der_x509_certificate(der)  # it parses; only its key does not decode
    for data in (der, x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)):
        error = _code(load_certificate, data, "unknown key")
        assert error.code == "CERT_MALFORMED" and "1.2.3.4.99" in error.actual
    assert _code(load_der_certificate, der, "unknown key").code == "CERT_MALFORMED"


def test_a_name_that_fails_to_render_fails_at_load_not_in_chain_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chain errors render subjects with rfc4514_string: a library that decoded name values only there (as the
    loader's docstring allows for) must fail at load with CERT_MALFORMED, not later with an unexpected error."""
    der = _certificate().public_bytes(Encoding.DER)

    def undecodable(self: x509.Name, *_: object) -> str:
        raise ValueError("undecodable name value")

    monkeypatch.setattr(x509.Name, "rfc4514_string", undecodable)
    error = _code(load_der_certificate, der, "name test")
    assert (error.code, error.actual) == ("CERT_MALFORMED", "undecodable name value")


# --- certs.py: bookkeeping readers ----------------------------------------------------------------------------------


def test_bookkeeping_readers_tolerate_serial_zero_whatever_the_warning_filters(amd: FakeAmdPki) -> None:
    """As under `python -W error` (every warning raises): the readers silence the serial-0 warning themselves."""
    assert amd.vcek.serial_number == 0
    der, not_after = amd.vcek.public_bytes(Encoding.DER), amd.vcek.not_valid_after_utc
    bundle = amd.vcek.public_bytes(Encoding.PEM) + amd.ask.public_bytes(Encoding.PEM)
    ask_der = amd.ask.public_bytes(Encoding.DER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Warning):  # the process-wide filter alone does not help here
            x509.load_der_x509_certificate(der)
        assert pem_certificate_ders(bundle) == [der, ask_der]
        assert certificate_not_after(der) == not_after


def _not_after_as(tag: int, body: bytes) -> Callable[[Tlv], Tlv]:
    def change(tbs: Tlv) -> Tlv:
        items = tbs.children()  # [version] serial signature issuer validity ...
        validity = items[4].children()
        validity[1] = Tlv(tag, body)
        items[4] = _seq(SEQUENCE, validity)
        return _seq(SEQUENCE, items)

    return change


def _non_minimal_serial(tbs: Tlv) -> Tlv:
    items = tbs.children()
    items[1] = Tlv(0x02, b"\x00\x01")  # INTEGER 1 with a redundant leading zero: not DER, refused by cryptography
    return _seq(SEQUENCE, items)


def test_certificate_not_after_falls_back_to_asn1crypto_when_cryptography_refuses() -> None:
    der = _with_tbs(_certificate().public_bytes(Encoding.DER), _non_minimal_serial)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(der)
    value = certificate_not_after(der)
    assert value == NOT_AFTER and value.utcoffset() == dt.timedelta(0)


def test_certificate_not_after_refuses_a_not_after_that_is_not_a_datetime() -> None:
    """GeneralizedTime year 0000: cryptography refuses it, asn1crypto gives an extended_datetime (no datetime)."""
    der = _with_tbs(_certificate().public_bytes(Encoding.DER), _not_after_as(0x18, b"00000101000000Z"))
    with pytest.raises(ValueError, match="certificate notAfter is not a time"):
        certificate_not_after(der)


# --- chain.py: VerifiedLinks ----------------------------------------------------------------------------------------

A, B, C = (b"a",), (b"b",), (b"c",)


def test_a_hit_makes_a_link_the_most_recently_used() -> None:
    links = VerifiedLinks(capacity=2)
    links.add(A)
    links.add(B)
    assert A in links  # A is now newer than B
    links.add(C)
    assert A in links and C in links and B not in links


def test_adding_a_remembered_link_again_makes_it_the_most_recently_used() -> None:
    links = VerifiedLinks(capacity=2)
    links.add(A)
    links.add(B)
    links.add(A)
    links.add(C)
    assert B not in links
    assert A in links and C in links


def test_clear_forgets_every_link() -> None:
    links = VerifiedLinks()
    links.add(A)
    links.add(B)
    links.clear()
    assert A not in links and B not in links


# --- chain.py: undecodable extensions -------------------------------------------------------------------------------


def _undecodable(oid: x509.ObjectIdentifier) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, b"\x05\x00")  # NULL where a KeyUsage / BasicConstraints must be


@pytest.mark.parametrize("oid", [ExtensionOID.KEY_USAGE, ExtensionOID.BASIC_CONSTRAINTS], ids=["ku", "bc"])
def test_an_undecodable_extension_is_cert_malformed_in_chain_checks(oid: x509.ObjectIdentifier) -> None:
    cert = _certificate(extensions=(_undecodable(oid),))
    error = _code(check_ca, cert, 0)
    assert error.code == "CERT_MALFORMED" and "bad extensions" in error.message
    if oid == ExtensionOID.KEY_USAGE:  # a leaf without keyUsage passes check_leaf: undecodable is not "absent"
        assert _code(check_leaf, cert).code == "CERT_MALFORMED"


def test_a_leaf_with_an_undecodable_key_usage_fails_the_chain() -> None:
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("root"))
        .issuer_name(_name("root"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )

    def leaf(*extensions: x509.ExtensionType) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name("leaf"))
            .issuer_name(_name("root"))
            .public_key(leaf_key.public_key())
            .serial_number(2)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=True)
        return builder.sign(root_key, hashes.SHA256())

    at = NOT_BEFORE + DAY
    assert validate_chain(leaf(), [], root, at)[-1] == root
    error = _code(validate_chain, leaf(_undecodable(ExtensionOID.KEY_USAGE)), [], root, at)
    assert error.code == "CERT_MALFORMED"


# --- crl.py: appraisal times with a zone ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "code"),
    [
        (-HOUR, "CRL_NOT_YET_VALID"),  # its +02:00 wall clock is after thisUpdate: the instant is what counts
        (dt.timedelta(0), None),
        (HOUR, None),
    ],
    ids=["before", "at", "after"],
)
def test_the_crl_window_at_an_aware_non_utc_time_uses_the_instant(
    amd: FakeAmdPki, instant: dt.timedelta, code: str | None
) -> None:
    crl = x509.load_der_x509_crl(amd.crl(this_update=amd.now, next_update=amd.now + 10 * DAY))
    for at in (amd.now + instant, (amd.now + instant).astimezone(PLUS2)):
        if code is None:
            rfc5280_window(crl, at, "CRL")
            check_crl(crl, amd.ark, at, AMD_ARK)
        else:
            assert _code(rfc5280_window, crl, at, "CRL").code == code
            assert _code(check_crl, crl, amd.ark, at, AMD_ARK).code == code


def test_the_crl_next_update_at_an_aware_non_utc_time_uses_the_instant(amd: FakeAmdPki) -> None:
    next_update = amd.now + DAY
    crl = x509.load_der_x509_crl(amd.crl(this_update=amd.now - 10 * DAY, next_update=next_update))
    rfc5280_window(crl, (next_update - SECOND).astimezone(PLUS2), "CRL")
    # 22:00 at -02:00 wall clock is before nextUpdate, the instant is past it
    at = next_update.astimezone(dt.timezone(-2 * HOUR))
    assert _code(rfc5280_window, crl, at, "CRL").code == "CRL_EXPIRED"


# --- crl.py: which check comes first --------------------------------------------------------------------------------


def test_amd_checks_issuer_and_signature_before_the_window(amd: FakeAmdPki) -> None:
    expired = x509.load_der_x509_crl(amd.crl(this_update=amd.now - 10 * DAY, next_update=amd.now - DAY))
    assert AMD_ARK.window_first is False
    assert _code(check_crl, expired, amd.ask, amd.now, AMD_ARK).code == "CRL_ISSUER_MISMATCH"
    assert _code(check_crl, expired, amd.ark, amd.now, AMD_ARK).code == "CRL_EXPIRED"


def test_intel_checks_the_window_before_issuer_and_signature(intel: FakeIntelPki) -> None:
    expired = x509.load_der_x509_crl(intel.pck_crl(this_update=intel.now - 40 * DAY, next_update=intel.now - DAY))
    assert INTEL_SGX.window_first is True
    assert _code(check_crl, expired, intel.root, intel.now, INTEL_SGX).code == "TDX_COLLATERAL_EXPIRED"
    fresh = x509.load_der_x509_crl(intel.pck_crl())
    check_crl(fresh, intel.pck_ca, intel.now, INTEL_SGX)
    assert _code(check_crl, fresh, intel.root, intel.now, INTEL_SGX).code == "CRL_ISSUER_MISMATCH"


# --- crl.py: signature profiles -------------------------------------------------------------------------------------


def test_the_intel_profile_refuses_an_rsa_issuer_even_with_a_valid_signature(amd: FakeAmdPki) -> None:
    crl = x509.load_der_x509_crl(amd.crl())
    check_crl(crl, amd.ark, amd.now, AMD_ARK)  # the signature is good
    error = _code(check_crl, crl, amd.ark, amd.now, INTEL_SGX)
    assert error.code == "CRL_SIGNATURE_INVALID" and "does not verify" in error.message


def test_a_profile_key_type_that_is_neither_rsa_nor_ec_never_verifies(amd: FakeAmdPki) -> None:
    """Only RSA and EC signatures are checked, even when a profile lists another key type."""
    key = ed25519.Ed25519PrivateKey.generate()
    issuer = (
        x509.CertificateBuilder()
        .subject_name(_name("ed25519 CA"))
        .issuer_name(_name("ed25519 CA"))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(key, None)
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOT_BEFORE)
        .next_update(NOT_AFTER)
        .sign(key, None)
    )
    assert crl.is_signature_valid(key.public_key())  # a good signature
    profile = CrlProfile(
        keys=(ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey),
        issuer_role="the test CA",
        window=rfc5280_window,
        window_first=False,
        uncheckable=None,
    )
    assert _code(check_crl, crl, issuer, NOT_BEFORE + DAY, profile).code == "CRL_SIGNATURE_INVALID"


def test_an_rsa_crl_signature_without_pss_is_verified_with_its_own_padding(amd: FakeAmdPki) -> None:
    """Current behaviour: the AMD profile verifies a PKCS#1 v1.5 signature by the ARK key as such (the PSS
    parameters are enforced for PSS-signed CRLs only); a tampered one is refused."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(amd.ark.subject)
        .last_update(amd.now - DAY)
        .next_update(amd.now + DAY)
    )
    crl = builder.sign(amd.ark_key, hashes.SHA384(), rsa_padding=padding.PKCS1v15())
    assert isinstance(crl.signature_algorithm_parameters, padding.PKCS1v15)
    check_crl(crl, amd.ark, amd.now, AMD_ARK)
    other = builder.sign(amd.asvk_key, hashes.SHA384(), rsa_padding=padding.PKCS1v15())
    assert _code(check_crl, other, amd.ark, amd.now, AMD_ARK).code == "CRL_SIGNATURE_INVALID"


def test_a_pss_crl_and_an_ec_issuer_is_a_signature_that_does_not_verify(amd: FakeAmdPki) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    ec_ark = (
        x509.CertificateBuilder()
        .subject_name(amd.ark.subject)
        .issuer_name(amd.ark.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(key, hashes.SHA384())
    )
    crl = x509.load_der_x509_crl(amd.crl())
    assert isinstance(crl.signature_algorithm_parameters, padding.PSS)
    error = _code(check_crl, crl, ec_ark, amd.now, AMD_ARK)
    assert error.code == "CRL_SIGNATURE_INVALID"
    assert "does not verify" in error.message and error.expected == amd.ark.subject.rfc4514_string()


def _issuer_with_unknown_key(name: x509.Name) -> x509.Certificate:
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(_KEY, hashes.SHA256())
    )
    return x509.load_der_x509_certificate(_with_unknown_key_algorithm(cert))


def test_an_amd_crl_signature_that_cannot_be_checked_says_so(amd: FakeAmdPki) -> None:
    issuer = _issuer_with_unknown_key(amd.ark.subject)
    error = _code(check_crl, x509.load_der_x509_crl(amd.crl()), issuer, amd.now, AMD_ARK)
    assert error.code == "CRL_SIGNATURE_INVALID"
    assert "cannot be checked" in error.message
    assert error.expected == "RSASSA-PSS SHA-384" and "1.2.3.4.99" in error.actual


def test_an_intel_crl_signature_that_cannot_be_checked_does_not_verify(intel: FakeIntelPki) -> None:
    issuer = _issuer_with_unknown_key(intel.pck_ca.subject)
    error = _code(check_crl, x509.load_der_x509_crl(intel.pck_crl()), issuer, intel.now, INTEL_SGX)
    assert error.code == "CRL_SIGNATURE_INVALID"
    assert "does not verify" in error.message and error.expected == intel.pck_ca.subject.rfc4514_string()


# --- crl.py: the verified-signature memo ----------------------------------------------------------------------------


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the CRL signature verifications check_crl performs."""
    calls: list[int] = []
    real = crl_module._signature_valid

    def counted(*args: Any) -> bool:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(crl_module, "_signature_valid", counted)
    return calls


def test_a_verified_crl_signature_is_remembered(amd: FakeAmdPki, signature_checks: list[int]) -> None:
    crl = x509.load_der_x509_crl(amd.crl())
    links = VerifiedLinks()
    check_crl(crl, amd.ark, amd.now, AMD_ARK, links=links)
    check_crl(crl, amd.ark, amd.now, AMD_ARK, links=links)
    assert len(signature_checks) == 1
    check_crl(crl, amd.ark, amd.now, AMD_ARK)  # without a memo: verified again
    assert len(signature_checks) == 2
    # the window is still checked on a hit
    assert _code(check_crl, crl, amd.ark, amd.now + 30 * DAY, AMD_ARK, links=links).code == "CRL_EXPIRED"
    assert len(signature_checks) == 2


def test_a_failed_crl_signature_is_never_remembered(amd: FakeAmdPki, signature_checks: list[int]) -> None:
    links = VerifiedLinks()
    forged = x509.load_der_x509_crl(amd.crl(signer_key=amd.ask_key))
    for attempt in (1, 2):
        assert _code(check_crl, forged, amd.ark, amd.now, AMD_ARK, links=links).code == "CRL_SIGNATURE_INVALID"
        assert len(signature_checks) == attempt
    # a remembered good CRL does not vouch for the same CRL under another issuer key
    good = x509.load_der_x509_crl(amd.crl())
    check_crl(good, amd.ark, amd.now, AMD_ARK, links=links)
    look_alike = (  # the ARK's name, another key
        x509.CertificateBuilder()
        .subject_name(amd.ark.subject)
        .issuer_name(amd.ark.subject)
        .public_key(amd.ask_key.public_key())
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(amd.ask_key, hashes.SHA384())
    )
    assert _code(check_crl, good, look_alike, amd.now, AMD_ARK, links=links).code == "CRL_SIGNATURE_INVALID"
