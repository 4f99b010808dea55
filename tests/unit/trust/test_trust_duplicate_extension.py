"""A certificate with a duplicated extension (RFC 5280 section 4.2: "A certificate MUST NOT include more than one
instance of a particular extension") is CERT_MALFORMED in the chain checks themselves, not a bare
`x509.DuplicateExtension` escaping them (cryptography raises that class, which is not a ValueError). The loaders
already refuse such certificates; the chain checks are public and must not depend on that (found while killing
issue 16's mutants)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.x509_mutations import duplicate_extension
from verifier.errors import EvidenceError
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.chain import check_ca, check_leaf


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def _duplicated(cert: x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(duplicate_extension(cert.public_bytes(Encoding.DER)))


@pytest.mark.parametrize(
    ("which", "check"),
    [("ask", lambda c: check_ca(c, 0)), ("vcek", check_leaf)],
    ids=["check_ca", "check_leaf"],
)
def test_a_duplicated_extension_is_cert_malformed(
    pki: FakeAmdPki, which: str, check: Callable[[x509.Certificate], None]
) -> None:
    cert = _duplicated(getattr(pki, which))
    with pytest.raises(EvidenceError) as info:
        check(cert)
    assert info.value.code == "CERT_MALFORMED"
