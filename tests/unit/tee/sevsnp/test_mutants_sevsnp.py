"""Tests that kill surviving mutants of scripts/mutation.py in verifier/tee/sevsnp (issue 16): ATTESTATION_REPORT
bounds, KDS extension decoding, the extended-report certificate table, SnpVerifier's product/origin bookkeeping,
collateral rejection and CRL choice, GUEST_POLICY / PLATFORM_INFO bounds and the TCB reserved-byte message.

Reports and chains are minted with the fake AMD PKI (tests/fakes/amd_pki.py); collateral "from the vendor" comes
from `_Served`, which records what the verifier rejects (a RejectingSource)."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.fakes.amd_pki import PSS, FakeAmdPki, _ca_ku, _name
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.errors import EvidenceError, ParseError
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.abi import parse_report
from verifier.tee.sevsnp.certs import KDS_OID, kds_extensions
from verifier.tee.sevsnp.certtable import ENTRY_SIZE, MAX_TABLE_SIZE, build_cert_table, parse_cert_table
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.facts import SnpFacts
from verifier.tee.sevsnp.policy import decode_platform_info
from verifier.tee.sevsnp.tcb import Product, check_reserved
from verifier.trust.anchors import TrustAnchors

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def milan() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


@pytest.fixture(scope="module")
def other(milan: FakeAmdPki) -> FakeAmdPki:
    """Same names as `milan` (ARK-Milan, SEV-Milan, ...), other keys."""
    return milan.foreign()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


class _Served:
    """A collateral source serving fixed bytes per kind ("amd.vcek", "amd.cert_chain", "amd.crl"); others are
    unavailable. Records `reject` calls by kind."""

    def __init__(self, items: dict[str, bytes]) -> None:
        self.items = items
        self.rejected: dict[str, str] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if key.kind not in self.items:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.kind)
        return CollateralItem(key, self.items[key.kind], at, at + 365 * DAY, "kds")

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected[item.key.kind] = reason


def _verify(
    pki: FakeAmdPki,
    evidence: bytes,
    *,
    collateral: dict[str, bytes] | None = None,
    anchors: TrustAnchors | None = None,
    source: _Served | None = None,
    check_crl: bool = True,
    at: dt.datetime | None = None,
) -> VerifiedEvidence:
    ctx = VerifyContext(
        at=at or pki.now,
        anchors=anchors or pki.anchors(),
        collateral=collateral or {},
        source=source or _Served({}),
        check_crl=check_crl,
    )
    return SnpVerifier().verify(evidence, ctx)


def _request_files(pki: FakeAmdPki, signer: str = "vcek", *, crl: bool = True) -> dict[str, bytes]:
    files = {f"{signer}.pem": _pem(getattr(pki, signer)), "ark.pem": _pem(pki.ark)}
    files["ask.pem" if signer == "vcek" else "asvk.pem"] = _pem(pki.ask if signer == "vcek" else pki.asvk)
    if crl:
        files["crl.der"] = pki.crl()
    return files


# --- abi.py ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("vmpl", "ok"), [(3, True), (4, False)], ids=["vmpl-3-ok", "vmpl-4-invalid"])
def test_vmpl_bound_is_three(milan: FakeAmdPki, vmpl: int, ok: bool) -> None:
    """ABI spec: VMPL is 0..3; 3 is valid, 4 is SNP_VMPL_INVALID (kills vmpl >= 3)."""
    data = milan.report(vmpl=vmpl)
    if ok:
        assert parse_report(data).vmpl == 3
        return
    with pytest.raises(ParseError) as info:
        parse_report(data)
    assert info.value.code == "SNP_VMPL_INVALID"
    assert info.value.actual == "4"


# --- certs.py: KDS extensions ------------------------------------------------------------------------------------


def _cert_with(extensions: list[tuple[str, bytes]]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SEV-VCEK")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + DAY)
    )
    for oid, value in extensions:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
    return builder.sign(key, hashes.SHA384())


@pytest.mark.parametrize(("spl", "ok"), [(0, True), (255, True), (256, False)], ids=["spl-0", "spl-255", "spl-256"])
def test_spl_bound_is_one_byte(spl: int, ok: bool) -> None:
    """An SPL is one TCB_VERSION byte: 255 is accepted (kills number < 255), 256 refused."""
    cert = _cert_with([(f"{KDS_OID}.3.8", core.Integer(spl).dump())])
    if ok:
        assert kds_extensions(cert).ucode_spl == spl
        return
    with pytest.raises(EvidenceError) as info:
        kds_extensions(cert)
    assert info.value.code == "SNP_CERT_EXTENSION_INVALID"
    assert "0..255" in info.value.expected


def test_spl_with_trailing_data_is_reported_as_not_der() -> None:
    """Strict DER decoding names the trailing byte (strict=False would report it as a non-minimal INTEGER)."""
    with pytest.raises(EvidenceError) as info:
        kds_extensions(_cert_with([(f"{KDS_OID}.3.1", b"\x02\x01\x04\x00")]))
    assert info.value.code == "SNP_CERT_EXTENSION_INVALID"
    assert info.value.expected.startswith("not a DER INTEGER (")
    assert "trailing data" in info.value.expected


def test_undecodable_extensions_are_extension_invalid() -> None:
    """A recognized extension (basicConstraints) whose value is not DER makes `cert.extensions` raise ValueError:
    SNP_CERT_EXTENSION_INVALID, not a certificate without KDS extensions."""
    cert = _cert_with([("2.5.29.19", b"\x01\x02")])
    with pytest.raises(EvidenceError) as info:
        kds_extensions(cert)
    assert info.value.code == "SNP_CERT_EXTENSION_INVALID"
    assert info.value.message == "undecodable certificate extensions"


def test_product_name_that_is_not_ia5string_says_so() -> None:
    """An INTEGER productName is "not a DER IA5String", not an "empty productName"."""
    value = core.Integer(1).dump()
    with pytest.raises(EvidenceError) as info:
        kds_extensions(_cert_with([(f"{KDS_OID}.2", value)]))
    assert info.value.code == "SNP_CERT_EXTENSION_INVALID"
    assert info.value.expected.startswith("not a DER IA5String (")
    assert info.value.actual == value.hex()


def test_product_name_with_trailing_data_is_refused() -> None:
    """IA5String "Milan" followed by one extra byte: strict DER refuses it (strict=False would read "Milan")."""
    value = core.IA5String("Milan").dump() + b"\x00"
    with pytest.raises(EvidenceError) as info:
        kds_extensions(_cert_with([(f"{KDS_OID}.2", value)]))
    assert info.value.code == "SNP_CERT_EXTENSION_INVALID"
    assert info.value.actual == value.hex()


# --- certtable.py ------------------------------------------------------------------------------------------------

_ONE_ENTRY_OVERHEAD = 2 * ENTRY_SIZE  # one entry plus the all-zero terminator


def test_a_table_of_exactly_64_kib_builds_and_parses() -> None:
    der = b"\x30" * (MAX_TABLE_SIZE - _ONE_ENTRY_OVERHEAD)
    table = build_cert_table({"vcek": der})
    assert len(table) == MAX_TABLE_SIZE
    assert parse_cert_table(table) == {"vcek": der}


def test_a_table_one_byte_over_64_kib_is_refused_both_ways() -> None:
    with pytest.raises(ValueError, match="larger than 64 KiB"):
        build_cert_table({"vcek": b"\x30" * (MAX_TABLE_SIZE - _ONE_ENTRY_OVERHEAD + 1)})
    with pytest.raises(ParseError) as info:
        parse_cert_table(bytes(MAX_TABLE_SIZE + 1))
    assert info.value.code == "SNP_CERT_TABLE_INVALID"


@pytest.mark.parametrize(("offset", "length"), [(1, 0), (0, 1), (48, 4)], ids=["offset-only", "length-only", "both"])
def test_a_zero_guid_entry_must_be_all_zero(offset: int, length: int) -> None:
    data = bytes(16) + struct.pack("<II", offset, length) + bytes(ENTRY_SIZE) + b"\x30" * 4
    with pytest.raises(ParseError) as info:
        parse_cert_table(data)
    assert info.value.code == "SNP_CERT_TABLE_INVALID"
    assert info.value.actual == f"offset {offset} length {length}"


def test_build_refuses_ask_and_asvk_together_in_a_vlek_table() -> None:
    """ "ask" and "asvk" share the ASK GUID; with a VLEK present the ASVK rule alone would accept the table."""
    with pytest.raises(ValueError, match="appears twice"):
        build_cert_table({"vlek": b"\x30\x01", "asvk": b"\x30\x02", "ask": b"\x30\x03"})


# --- evidence.py: product of a v2 report, provenance, appraisal time ---------------------------------------------


@pytest.mark.parametrize("signer", ["vcek", "vlek"])
def test_v2_report_takes_the_product_from_its_signer_so_the_crl_is_checked(milan: FakeAmdPki, signer: str) -> None:
    """A v2 report has no CPUID: the product comes from the signer's productName (VCEK for SIGNING_KEY 0, VLEK for
    1), which the CRL step needs; without it revocation would be "unavailable" (SNP_PRODUCT_UNKNOWN)."""
    result = _verify(milan, milan.report(signer=signer, version=2), collateral=_request_files(milan, signer))
    assert result.failure is None
    assert result.revocation == "checked"
    assert isinstance(result.facts, SnpFacts) and result.facts.product is Product.MILAN


def test_v2_report_with_no_product_anywhere_records_crl_unavailable() -> None:
    """No CPUID and no productName: revocation is recorded "unavailable" with SNP_PRODUCT_UNKNOWN."""
    pki = FakeAmdPki(Product.MILAN, product_name=None)
    result = _verify(pki, pki.report(version=2), collateral=_request_files(pki))
    assert result.failure is not None and result.failure.code == "SNP_PRODUCT_UNKNOWN"
    assert result.revocation == "unavailable"
    assert isinstance(result.facts, SnpFacts) and result.facts.crl_reason == "SNP_PRODUCT_UNKNOWN"
    assert result.facts.product is None  # not verified


@pytest.mark.parametrize("anchor_certs", [False, True], ids=["pins-only", "anchors-hold-ask-and-ark"])
def test_request_certificates_are_reported_as_from_the_request(milan: FakeAmdPki, anchor_certs: bool) -> None:
    """Every item the request brought is "request" in the result's collateral, also when the trust-anchor files
    hold the same kinds (they only fill gaps)."""
    certificates = [milan.ark, milan.ask] if anchor_certs else []
    anchors = TrustAnchors(pins=milan.pins, certificates=certificates)
    result = _verify(milan, milan.report(), collateral=_request_files(milan), anchors=anchors)
    assert result.failure is None
    assert {(c.item, c.source) for c in result.collateral} == {
        ("amd.vcek", "request"),
        ("amd.cert_chain", "request"),
        ("amd.crl", "request"),
    }


def test_an_appraisal_time_in_another_zone_is_the_same_instant(milan: FakeAmdPki) -> None:
    """An aware appraisal time in another zone verifies as the same instant (validity windows, the CRL), and the
    collateral times are said in UTC. (The appraisal time the CRL age is judged at is the appraiser's `at`:
    tests/unit/appraisal/test_appraisal_snp_collateral.py.)"""
    at = milan.now.astimezone(dt.timezone(dt.timedelta(hours=2)))
    result = _verify(milan, milan.report(), collateral=_request_files(milan), at=at)
    utc = _verify(milan, milan.report(), collateral=_request_files(milan))
    assert result.failure is None and result.revocation == "checked"
    assert (result.facts, result.collateral) == (utc.facts, utc.collateral)
    assert [c.issued for c in result.collateral] == [
        "2025-05-31T00:00:00Z",  # the VCEK's notBefore
        "2024-06-01T00:00:00Z",  # the ASK's
        "2025-05-31T00:00:00Z",  # the CRL's thisUpdate
    ]


# --- evidence.py: rejecting source collateral --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["amd.vcek", "amd.cert_chain"])
def test_a_source_item_that_does_not_parse_is_rejected_and_is_the_failure(milan: FakeAmdPki, kind: str) -> None:
    """The bad copy is rejected (evicted from the cache) and the result fails with its code; never raised (the
    service would answer INTERNAL: see tests/unit/tee/sevsnp/test_snp_served_garbage.py)."""
    served = {"amd.vcek": _der(milan.vcek), "amd.cert_chain": _pem(milan.ask, milan.ark), kind: b"not a certificate"}
    source = _Served(served)
    result = _verify(milan, milan.report(), source=source, check_crl=False)
    assert result.failure is not None and result.failure.code == "CERT_MALFORMED"
    assert source.rejected == {kind: "CERT_MALFORMED"}


def test_a_served_chain_is_judged_by_the_anchored_ark_first(milan: FakeAmdPki, other: FakeAmdPki) -> None:
    """Two pinned ARK-Milan roots; the anchor files hold `milan`'s, KDS serves `other`'s ASK and ARK. The chain is
    judged by the anchored ARK (it does not verify: rejected), not by the ARK the source served with it."""
    anchors = TrustAnchors(pins={"amd-ark": milan.pins["amd-ark"] | other.pins["amd-ark"]}, certificates=[milan.ark])
    source = _Served({"amd.vcek": _der(milan.vcek), "amd.cert_chain": _pem(other.ask, other.ark)})
    result = _verify(milan, milan.report(), anchors=anchors, source=source, check_crl=False)
    assert result.failure is not None
    assert source.rejected == {"amd.cert_chain": "CHAIN_SIGNATURE_INVALID"}


def test_a_served_vcek_not_under_the_anchored_ask_is_rejected_with_the_chain_code(
    milan: FakeAmdPki, other: FakeAmdPki
) -> None:
    """The anchors hold the trusted ASK (no cert_chain is fetched); KDS serves a VCEK named SEV-VCEK under
    SEV-Milan but signed by another key: rejected with the chain error, not the generic name mismatch."""
    anchors = TrustAnchors(pins=milan.pins, certificates=[milan.ark, milan.ask])
    source = _Served({"amd.vcek": _der(other.vcek)})
    result = _verify(milan, milan.report(), anchors=anchors, source=source, check_crl=False)
    assert result.failure is not None and result.failure.code == "CHAIN_SIGNATURE_INVALID"
    assert source.rejected == {"amd.vcek": "CHAIN_SIGNATURE_INVALID"}


def test_a_served_chain_without_ask_is_rejected(milan: FakeAmdPki) -> None:
    source = _Served({"amd.vcek": _der(milan.vcek), "amd.cert_chain": _pem(milan.ark)})
    result = _verify(milan, milan.report(), source=source, check_crl=False)
    assert result.failure is not None and result.failure.code == "SNP_INTERMEDIATE_MISSING"
    assert source.rejected == {"amd.cert_chain": "SNP_INTERMEDIATE_MISSING"}


def test_a_served_chain_with_an_expired_ask_is_rejected(milan: FakeAmdPki) -> None:
    """The ASK is genuinely issued by the pinned ARK (same key as the real one) but expired: the chain is rejected
    for its validity (and then not used to judge the VCEK)."""
    expired_ask = (
        x509.CertificateBuilder()
        .subject_name(_name("SEV-Milan"))
        .issuer_name(_name("ARK-Milan"))
        .public_key(milan.ask_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(milan.now - 400 * DAY)
        .not_valid_after(milan.now - DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_ku(), critical=True)
        .sign(milan.ark_key, hashes.SHA384(), rsa_padding=PSS)
    )
    source = _Served({"amd.vcek": _der(milan.vcek), "amd.cert_chain": _pem(expired_ask, milan.ark)})
    result = _verify(milan, milan.report(), source=source, check_crl=False)
    assert result.failure is not None and result.failure.code == "CERT_EXPIRED"
    assert source.rejected == {"amd.cert_chain": "CERT_EXPIRED"}


# --- evidence.py: the CRL ----------------------------------------------------------------------------------------


def test_the_request_crl_is_checked_against_the_request_ark_first(milan: FakeAmdPki, other: FakeAmdPki) -> None:
    """Two pinned ARK-Milan roots, the anchor files hold `other`'s; the request brings `milan`'s ARK and CRL. The
    CRL is verified under the request's (pinned) ARK, so revocation is checked."""
    anchors = TrustAnchors(pins={"amd-ark": milan.pins["amd-ark"] | other.pins["amd-ark"]}, certificates=[other.ark])
    result = _verify(milan, milan.report(), collateral=_request_files(milan), anchors=anchors)
    assert result.failure is None
    assert result.revocation == "checked"


def test_a_bad_source_crl_that_lost_to_the_request_crl_is_rejected(milan: FakeAmdPki, other: FakeAmdPki) -> None:
    """The request CRL decides; the source's CRL (issuer ARK-Milan, signed by another key) does not verify under
    the pinned ARK, so it is rejected."""
    source = _Served({"amd.crl": milan.crl(signer_key=other.ark_key)})
    result = _verify(milan, milan.report(), collateral=_request_files(milan), source=source)
    assert result.failure is None and result.revocation == "checked"
    assert [c.source for c in result.collateral if c.item == "amd.crl"] == ["request"]
    assert source.rejected == {"amd.crl": "CRL_SIGNATURE_INVALID"}


# --- policy.py / tcb.py ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, (1 << 64) - 1], ids=["zero", "u64-max"])
def test_platform_info_accepts_the_whole_u64_range(value: int) -> None:
    assert decode_platform_info(value).raw == value


@pytest.mark.parametrize("value", [-1, 1 << 64], ids=["negative", "u64-max+1"])
def test_platform_info_outside_u64_is_invalid(value: int) -> None:
    with pytest.raises(ParseError) as info:
        decode_platform_info(value)
    assert info.value.code == "SNP_PLATFORM_INFO_INVALID"


@pytest.mark.parametrize(
    ("product", "index", "layout"),
    [(Product.MILAN, 2, "the Milan layout"), (None, 4, "every layout")],
    ids=["milan-byte-2", "unknown-byte-4"],
)
def test_reserved_tcb_byte_names_the_layout(product: Product | None, index: int, layout: str) -> None:
    raw = bytearray(8)
    raw[index] = 1
    with pytest.raises(ParseError) as info:
        check_reserved(bytes(raw), product, "REPORTED_TCB")
    assert info.value.code == "SNP_RESERVED_NONZERO"
    assert f"is reserved in {layout} and not zero" in info.value.message
