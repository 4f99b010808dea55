"""RIM signature and signing chain (verifier/tee/gpu/rim_verify.py) with a fake NVIDIA RIM PKI: one broken rule per
test, each with its code; signature wrapping; the verified-RIM cache."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner

from tests.fakes.nvidia_rim import DS, SWID, FakeRimPki, rim_document, tamper_hash, wrap_payload
from verifier.errors import EvidenceError
from verifier.tee.gpu import rim_verify
from verifier.tee.gpu.rim import rim_from_element
from verifier.tee.gpu.rim_verify import clear_rim_cache, rim_cache_info, verify_rim
from verifier.trust.anchors import TrustAnchors
from verifier.trust.chain import VerifiedLinks

ACTIVE = {7: [b"\x07" * 48], 23: [b"\x01" * 48, b"\x02" * 48]}
DAY = datetime.timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> FakeRimPki:
    return FakeRimPki()


@pytest.fixture(scope="module")
def xml(pki: FakeRimPki) -> bytes:
    return pki.mint(version="545.00", active=ACTIVE)


@pytest.fixture(autouse=True)
def _cold_cache() -> Iterator[None]:
    clear_rim_cache()
    yield
    clear_rim_cache()


def _fails(data: bytes, pki: FakeRimPki, code: str, *, at: datetime.datetime | None = None) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        verify_rim(data, at=at or pki.now, anchors=pki.anchors())
    assert info.value.code == code, info.value
    return info.value


def test_a_fake_rim_verifies(pki: FakeRimPki, xml: bytes) -> None:
    verified = verify_rim(xml, at=pki.now, anchors=pki.anchors())
    assert (verified.kind, verified.colloquial_version) == ("driver", "545.00")
    assert [m.index for m in verified.rim.active] == [7, 23]
    assert verified.chain == (pki.leaf, pki.l3_ca, pki.product_ca, pki.root) and verified.signer == pki.leaf
    assert (verified.valid_from, verified.valid_until) == (pki.leaf.not_valid_before_utc, pki.leaf.not_valid_after_utc)
    assert len(verified.sha256) == 64


def test_the_pinned_root_stands_in_when_keyinfo_omits_it(pki: FakeRimPki) -> None:
    verified = verify_rim(pki.mint(include_root=False), at=pki.now, anchors=pki.anchors())
    assert verified.chain[-1] == pki.root


def test_a_vbios_rim_verifies(pki: FakeRimPki) -> None:
    verified = verify_rim(
        pki.mint(version="96.00.5E.00.01", active={0: [b"\x00" * 48]}), at=pki.now, anchors=pki.anchors()
    )
    assert verified.kind == "vbios"


def test_a_hash_changed_after_signing_breaks_the_signature(pki: FakeRimPki, xml: bytes) -> None:
    _fails(tamper_hash(xml, 7), pki, "GPU_RIM_SIGNATURE_INVALID")
    _fails(tamper_hash(xml, 23, alternative=1), pki, "GPU_RIM_SIGNATURE_INVALID")
    _fails(tamper_hash(xml, 0), pki, "GPU_RIM_SIGNATURE_INVALID")  # inactive entries are signed too


def test_a_changed_signature_value_does_not_verify(pki: FakeRimPki, xml: bytes) -> None:
    root = etree.fromstring(xml)
    value = root.find(f".//{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[-1] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    _fails(etree.tostring(root), pki, "GPU_RIM_SIGNATURE_INVALID")


def test_a_signature_by_another_key_does_not_verify(pki: FakeRimPki) -> None:
    other = FakeRimPki()
    forged = XMLSigner(
        signature_algorithm=SignatureMethod.ECDSA_SHA384,
        digest_algorithm=DigestAlgorithm.SHA384,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
    ).sign(
        rim_document(version="545.00", active=ACTIVE),
        key=other.leaf_key,
        cert=[c.public_bytes(Encoding.PEM).decode() for c in (pki.leaf, pki.l3_ca, pki.product_ca, pki.root)],
    )
    _fails(etree.tostring(forged), pki, "GPU_RIM_SIGNATURE_INVALID")


def test_a_foreign_root_is_refused(pki: FakeRimPki, xml: bytes) -> None:
    foreign = pki.foreign()
    error = _fails(foreign.mint(active=ACTIVE), pki, "GPU_RIM_CHAIN_INVALID")  # same names, other keys
    assert "CHAIN_SIGNATURE_INVALID" in error.message
    with pytest.raises(EvidenceError) as info:  # no nvidia-rim pin at all
        verify_rim(xml, at=pki.now, anchors=TrustAnchors(pins={}, certificates=[pki.root]))
    assert info.value.code == "GPU_RIM_CHAIN_INVALID" and "no pinned" in info.value.message


def test_the_documents_root_copy_is_not_trusted_for_being_there(pki: FakeRimPki, xml: bytes) -> None:
    # anchors pinning another root: the RIM's own copy of its root does not make it trusted
    error = _fails(xml, pki.foreign(), "GPU_RIM_CHAIN_INVALID")
    assert "no pinned" in error.message or "CHAIN_SIGNATURE_INVALID" in error.message


def test_an_expired_or_not_yet_valid_signer_is_refused(pki: FakeRimPki, xml: bytes) -> None:
    error = _fails(xml, pki, "GPU_RIM_CHAIN_INVALID", at=pki.leaf.not_valid_after_utc + DAY)
    assert "CERT_EXPIRED" in error.message and error.expected.startswith("notAfter")
    error = _fails(xml, pki, "GPU_RIM_CHAIN_INVALID", at=pki.leaf.not_valid_before_utc - DAY)
    assert "CERT_NOT_YET_VALID" in error.message
    expired = FakeRimPki(leaf_validity=(pki.now - 800 * DAY, pki.now - 70 * DAY))
    _fails(expired.mint(active=ACTIVE), expired, "GPU_RIM_CHAIN_INVALID")


def test_signature_wrapping_content_in_the_signature_is_refused(pki: FakeRimPki, xml: bytes) -> None:
    wrapped = wrap_payload(xml, {7: [b"\x99" * 48]})
    _fails(wrapped, pki, "GPU_RIM_SIGNATURE_INVALID")


def test_only_the_signed_content_reaches_the_parse(pki: FakeRimPki, xml: bytes) -> None:
    """Past the shape check too: signxml verifies the wrapped document (the enveloped-signature transform drops
    the whole signature, hidden payload included), and what it returns as signed has the real values only."""
    wrapped = wrap_payload(xml, {7: [b"\x99" * 48]})
    signed = rim_verify._verify_signature(wrapped, pki.leaf)
    rim = rim_from_element(signed)
    assert rim.colloquial_version == "545.00" and rim.active[0].alternatives == (b"\x07" * 48,)
    assert not list(signed.iter(f"{{{DS}}}Signature"))


def _sign(root: etree._Element, pki: FakeRimPki, **kwargs: object) -> bytes:
    settings = {
        "signature_algorithm": SignatureMethod.ECDSA_SHA384,
        "digest_algorithm": DigestAlgorithm.SHA384,
        "c14n_algorithm": CanonicalizationMethod.CANONICAL_XML_1_1,
    }
    sign_kwargs = {k: v for k, v in kwargs.items() if k not in settings}
    settings.update({k: v for k, v in kwargs.items() if k in settings})
    chain = [c.public_bytes(Encoding.PEM).decode() for c in (pki.leaf, pki.l3_ca, pki.product_ca, pki.root)]
    return etree.tostring(XMLSigner(**settings).sign(root, key=pki.leaf_key, cert=chain, **sign_kwargs))


@pytest.mark.parametrize(
    "change",
    [
        {"signature_algorithm": SignatureMethod.ECDSA_SHA256},
        {"digest_algorithm": DigestAlgorithm.SHA256},
        {"c14n_algorithm": CanonicalizationMethod.CANONICAL_XML_1_0},
        {"c14n_algorithm": CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0},
        {"always_add_key_value": True},
        {"key_name": "signer"},
    ],
    ids=["ecdsa-sha256", "digest-sha256", "c14n-1.0", "exc-c14n", "key-value", "key-name"],
)
def test_another_signature_shape_is_refused(pki: FakeRimPki, change: dict[str, object]) -> None:
    _fails(_sign(rim_document(version="545.00", active=ACTIVE), pki, **change), pki, "GPU_RIM_SIGNATURE_INVALID")


def test_a_reference_to_part_of_the_document_is_refused(pki: FakeRimPki) -> None:
    root = rim_document(version="545.00", active=ACTIVE)
    root.find(f"{{{SWID}}}Payload").set("Id", "payload")
    _fails(_sign(root, pki, reference_uri="#payload"), pki, "GPU_RIM_SIGNATURE_INVALID")


def test_unsigned_and_doubly_signed_rims_are_refused(pki: FakeRimPki, xml: bytes) -> None:
    _fails(pki.mint(active=ACTIVE, sign=False), pki, "GPU_RIM_SIGNATURE_INVALID")
    root = etree.fromstring(xml)
    root.append(etree.fromstring(etree.tostring(root.find(f"{{{DS}}}Signature"))))
    _fails(etree.tostring(root), pki, "GPU_RIM_SIGNATURE_INVALID")
    moved = etree.fromstring(xml)  # the signature not the root's last child
    signature = moved.find(f"{{{DS}}}Signature")
    moved.remove(signature)
    moved.insert(0, signature)
    _fails(etree.tostring(moved), pki, "GPU_RIM_SIGNATURE_INVALID")


def test_bad_keyinfo_certificates_are_a_chain_error(pki: FakeRimPki, xml: bytes) -> None:
    for text in ("!!!not base64!!!", base64.b64encode(b"\x30\x03\x02\x01\x01").decode()):
        root = etree.fromstring(xml)
        root.find(f".//{{{DS}}}X509Certificate").text = text
        _fails(etree.tostring(root), pki, "GPU_RIM_CHAIN_INVALID")


def test_a_validly_signed_malformed_rim_is_malformed(pki: FakeRimPki) -> None:
    def lowercase_active(root: etree._Element) -> None:
        next(r for r in root.iter(f"{{{SWID}}}Resource") if r.get("index") == "7").set("active", "true")

    with pytest.raises(EvidenceError) as info:
        verify_rim(pki.mint(active=ACTIVE, mutate=lowercase_active), at=pki.now, anchors=pki.anchors())
    assert info.value.code == "GPU_RIM_MALFORMED"


def test_a_cached_rim_still_has_its_chain_checked_at_each_time(pki: FakeRimPki, xml: bytes) -> None:
    links = VerifiedLinks()
    first = verify_rim(xml, at=pki.now, anchors=pki.anchors(), links=links)
    assert rim_cache_info().entries == 1
    hits = rim_cache_info().hits
    again = verify_rim(xml, at=pki.now + DAY, anchors=pki.anchors(), links=links)
    assert rim_cache_info().hits == hits + 1 and again.rim is first.rim
    _fails(xml, pki, "GPU_RIM_CHAIN_INVALID", at=pki.leaf.not_valid_after_utc + DAY)  # from the cache, expired
    with pytest.raises(EvidenceError) as info:  # from the cache, other anchors
        verify_rim(xml, at=pki.now, anchors=pki.foreign().anchors())
    assert info.value.code == "GPU_RIM_CHAIN_INVALID"


def test_failures_and_foreign_rims_are_not_cached(pki: FakeRimPki, xml: bytes) -> None:
    _fails(tamper_hash(xml, 7), pki, "GPU_RIM_SIGNATURE_INVALID")
    _fails(pki.foreign().mint(active=ACTIVE), pki, "GPU_RIM_CHAIN_INVALID")
    assert rim_cache_info().entries == 0
    verify_rim(xml, at=pki.now, anchors=pki.anchors(), cache=False)
    assert rim_cache_info().entries == 0


def test_the_written_out_algorithm_uris_are_signxml_s() -> None:
    assert rim_verify.ECDSA_SHA384 == SignatureMethod.ECDSA_SHA384.value
    assert rim_verify.SHA384 == DigestAlgorithm.SHA384.value
