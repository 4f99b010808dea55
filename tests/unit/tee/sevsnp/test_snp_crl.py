"""verifier.tee.sevsnp.crl: ARK-signed CRLs (RSASSA-PSS SHA-384), freshness and scope."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from verifier.errors import EvidenceError
from verifier.tee.sevsnp.crl import load_crl, revoked, verify_crl
from verifier.tee.sevsnp.tcb import Product

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


def _code(call: object, *args: object) -> str:
    with pytest.raises(EvidenceError) as err:
        call(*args)  # type: ignore[operator]
    assert err.value.expected or err.value.actual
    return err.value.code


def test_valid_der_and_pem(pki: FakeAmdPki) -> None:
    der = pki.crl([pki.ask.serial_number])
    crl = verify_crl(der, pki.ark, pki.now)
    assert revoked(crl, pki.ask) and not revoked(crl, pki.asvk)
    pem = load_crl(der).public_bytes(Encoding.PEM)
    assert verify_crl(pem, pki.ark, pki.now.replace(tzinfo=None)) == crl  # naive = UTC


def test_window_bounds(pki: FakeAmdPki) -> None:
    der = pki.crl(this_update=pki.now - DAY, next_update=pki.now + DAY)
    verify_crl(der, pki.ark, pki.now - DAY)
    verify_crl(der, pki.ark, pki.now + DAY - datetime.timedelta(microseconds=1))
    assert _code(verify_crl, der, pki.ark, pki.now + DAY) == "CRL_EXPIRED"  # nextUpdate itself is past the window
    assert _code(verify_crl, der, pki.ark, pki.now - DAY - datetime.timedelta(seconds=1)) == "CRL_NOT_YET_VALID"
    assert _code(verify_crl, der, pki.ark, pki.now + DAY + datetime.timedelta(seconds=1)) == "CRL_EXPIRED"


def test_stale_crl_is_never_used(pki: FakeAmdPki) -> None:
    der = pki.crl(this_update=pki.now - 30 * DAY, next_update=pki.now - DAY)
    assert _code(verify_crl, der, pki.ark, pki.now) == "CRL_EXPIRED"


def test_signature_by_another_key(pki: FakeAmdPki) -> None:
    der = pki.crl(signer_key=rsa.generate_private_key(65537, 2048))
    assert _code(verify_crl, der, pki.ark, pki.now) == "CRL_SIGNATURE_INVALID"
    tampered = bytearray(pki.crl())
    tampered[-5] ^= 1
    assert _code(verify_crl, bytes(tampered), pki.ark, pki.now) == "CRL_SIGNATURE_INVALID"


def test_issuer_mismatch(pki: FakeAmdPki) -> None:
    assert _code(verify_crl, pki.crl(), pki.ask, pki.now) == "CRL_ISSUER_MISMATCH"
    assert _code(verify_crl, pki.crl(issuer_cn="ARK-Milan"), pki.ark, pki.now) == "CRL_ISSUER_MISMATCH"


@pytest.mark.parametrize("data", [b"", b"\x30\x00", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"])
def test_malformed(pki: FakeAmdPki, data: bytes) -> None:
    assert _code(verify_crl, data, pki.ark, pki.now) == "CRL_MALFORMED"


def test_serial_zero_is_scoped_to_the_issuer(pki: FakeAmdPki) -> None:
    """Every VCEK/VLEK has serial 0; an ARK CRL listing 0 covers ARK-issued certificates only (RFC 5280 6.3.3)."""
    crl = verify_crl(pki.crl([0]), pki.ark, pki.now)
    assert crl.get_revoked_certificate_by_serial_number(0) is not None
    assert pki.vcek.serial_number == 0
    assert not revoked(crl, pki.vcek) and not revoked(crl, pki.vlek)
