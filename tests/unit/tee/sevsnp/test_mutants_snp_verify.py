"""Issue 16: tests killing the mutation run's survivors in verifier/tee/sevsnp/verify.py (steps 1 and 2).

- Step 1: the certificate in the VCEK (VLEK) slot must have the subject SEV-VCEK (SEV-VLEK), even when it is
  otherwise a perfect signer (issued by the right intermediate, the report's key, its TCB and chip id): the
  error says which subject was expected and which was found.
- Step 2: with no product argument, no CPUID (v2 reports, or an unknown family/model) and no known productName the
  product is unknown (SNP_PRODUCT_UNKNOWN, actual = the productName or "unknown"); a CPUID for another product
  than the one given is SNP_PRODUCT_MISMATCH even when the signer's productName agrees with the argument.

Reports and chains are minted with the fake AMD PKI (tests/fakes/amd_pki.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from verifier.errors import EvidenceError
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.certs import SnpCertificates
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.sevsnp.verify import SnpVerified, verify_report

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def milan() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def _verify(
    pki: FakeAmdPki, kind: str = "vcek", *, certs: SnpCertificates | None = None, product: Product | None = None,
    **report: Any,
) -> SnpVerified:  # fmt: skip
    parsed = parse_report(pki.report(signer=kind, **report))
    return verify_report(parsed, certs or pki.certificates(kind), pki.anchors(), pki.now, product=product)


def _refused(pki: FakeAmdPki, kind: str = "vcek", **kwargs: Any) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        _verify(pki, kind, **kwargs)
    return info.value


# --- step 1: the signer's subject ---------------------------------------------------------------------------------


def _impostor(pki: FakeAmdPki, kind: str, subject: str) -> SnpCertificates:
    """A certificate for the report's own `kind` key, issued by its genuine intermediate, with the KDS extensions
    of that signer, but the subject CN `subject`."""
    validity = (pki.now - DAY, pki.now + DAY)
    p = pki.product.value
    if kind == "vcek":
        cert = pki._signer(subject, pki.vcek_key, f"SEV-{p}", pki.ask_key, validity, hwid=pki.hwid)
        return SnpCertificates(ark=pki.ark, ask=pki.ask, vcek=cert)
    cert = pki._signer(subject, pki.vlek_key, f"SEV-VLEK-{p}", pki.asvk_key, validity, hwid=None)
    return SnpCertificates(ark=pki.ark, asvk=pki.asvk, vlek=cert)


@pytest.mark.parametrize(
    ("kind", "subject", "expected"),
    [("vcek", "SEV-VLEK", "SEV-VCEK"), ("vcek", "SEV-Milan", "SEV-VCEK"), ("vlek", "SEV-VCEK", "SEV-VLEK"),
     ("vlek", "ARK-Milan", "SEV-VLEK")],
    ids=["vcek-slot-vlek-subject", "vcek-slot-ask-subject", "vlek-slot-vcek-subject", "vlek-slot-ark-subject"],
)  # fmt: skip
def test_a_signer_with_another_subject_is_refused(milan: FakeAmdPki, kind: str, subject: str, expected: str) -> None:
    certs = _impostor(milan, kind, subject)
    error = _refused(milan, kind, certs=certs)
    assert (error.code, error.expected, error.actual) == ("SNP_SIGNER_CHAIN_MISMATCH", expected, subject)
    assert error.message == f"the {kind.upper()} certificate has another subject"


@pytest.mark.parametrize("kind", ["vcek", "vlek"])
def test_the_impostor_with_the_right_subject_verifies(milan: FakeAmdPki, kind: str) -> None:
    """The same certificate with the genuine subject passes: only the subject made the difference above."""
    certs = _impostor(milan, kind, "SEV-VCEK" if kind == "vcek" else "SEV-VLEK")
    assert _verify(milan, kind, certs=certs).signer_kind == kind


# --- step 2: the product -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product_name", "report", "actual"),
    [(None, {"version": 2}, "unknown"), ("Siena-B0", {"version": 2}, "Siena-B0"),
     (None, {"version": 3, "cpuid_fam_id": 0x17, "cpuid_mod_id": 0x31}, "unknown")],
    ids=["no-name-v2", "unknown-name-v2", "no-name-unknown-cpuid"],
)  # fmt: skip
def test_no_product_anywhere_is_unknown(product_name: str | None, report: dict[str, Any], actual: str) -> None:
    pki = FakeAmdPki(Product.MILAN, product_name=product_name)
    error = _refused(pki, **report)
    assert (error.code, error.expected, error.actual) == ("SNP_PRODUCT_UNKNOWN", "Milan|Genoa|Turin", actual)
    if product_name is None:  # the argument alone tells the product
        assert _verify(pki, product=Product.MILAN, **report).product is Product.MILAN


@pytest.mark.parametrize("product_name", ["Milan-B0", None], ids=["name-agrees", "no-name"])
def test_a_cpuid_of_another_product_than_the_argument_is_refused(product_name: str | None) -> None:
    """The argument says Milan (and the productName agrees or is absent); the report's CPUID says Genoa."""
    pki = FakeAmdPki(Product.MILAN, product_name=product_name)
    assert _verify(pki, product=Product.MILAN).product is Product.MILAN  # the Milan CPUID agrees
    error = _refused(pki, product=Product.MILAN, cpuid_fam_id=0x19, cpuid_mod_id=0x11)
    assert (error.code, error.expected, error.actual) == ("SNP_PRODUCT_MISMATCH", "Milan", "Genoa")
    assert "CPUID" in error.message
