"""Verification of an NVIDIA RIM: the enveloped XML signature (with signxml) and the signing chain to the pinned
NVIDIA RIM root (with verifier.trust), at the appraisal time.

What NVIDIA signs (../shared/vectors/README.md "RIM signature"): an enveloped XML-DSig over the whole document
(Reference URI "", transforms enveloped-signature then C14N 1.1, digest SHA-384), SignedInfo canonicalised with
C14N 1.1, signature ecdsa-sha384 as raw r || s; KeyInfo/X509Data lists the signer (e.g. "HCC RIM L4 Signer"), an
L3 CA, a product CA and NVIDIA's CoRIM signing root. Exactly that shape is accepted: one ds:Signature, the last
child of the root, holding SignedInfo, SignatureValue and KeyInfo only (no ds:Object, KeyValue or other content that
the enveloped transform would leave unsigned), those algorithms only, one Reference.

Steps (`verify_rim`):
1. parse with the hardened parser (`rim.parse_xml`) and check that shape; load the KeyInfo certificates;
2. chain: the signer leaf <- the CAs <- the pinned "nvidia-rim" root at `at` (`verifier.trust.chain`, RFC 5280
   validity, names, signatures, CA flags, pathLen, keyUsage). The document's copy of the root (its last, self-issued
   certificate) is only a hint, as in nv-local-gpu-verifier, which drops it and appends its own: the root used is
   a pinned one (`TrustAnchors.root_for`). signxml's own chain check is not used (cryptography's strict X.509
   policy refuses NVIDIA's RIM root, whose keyUsage lacks digitalSignature);
3. signature: signxml's XMLVerifier with `x509_cert` = the signer leaf, so it checks SignedInfo's signature with the
   leaf key and the reference digest (signature and digest algorithms pinned in its SignatureConfiguration). Its
   certificate time check is given a time inside the leaf's validity: step 2 decides validity, at `at`;
4. parse the RIM from the element signxml returns as signed (`VerifyResult.signed_xml`, re-parsed from the
   canonical bytes that were digested), never from the input tree: content outside what the signature covers
   (signature wrapping) cannot reach the parse.

Cache: steps 1, 3 and 4 are a pure function of the RIM's bytes, so their result is kept in a bounded LRU keyed by
the SHA-256 of the bytes (`VERIFIED_RIMS`), and only for RIMs whose chain reached a pinned root (step 2 ran first),
so unsigned or foreign documents cannot fill it. Step 2 depends on `at` and the anchors and runs on every call.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information

from verifier.errors import EvidenceError
from verifier.tee.gpu.rim import (
    DSIG_NS,
    Rim,
    RimKind,
    hardened_parser,
    parse_xml,
    rim_from_element,
)
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.cert_cache import CacheInfo, ContentCache
from verifier.trust.certs import load_der_certificate
from verifier.trust.chain import VerifiedLinks, validate_chain

VENDOR = "nvidia-rim"
MAX_CERTIFICATES = 8  # NVIDIA's KeyInfo lists 4
C14N_1_1 = "http://www.w3.org/2006/12/xml-c14n11"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
# signxml's SignatureMethod.ECDSA_SHA384 and DigestAlgorithm.SHA384 (RFC 6931 sections 2.3.6 and 2.1.3), written out:
# signxml (2 MB of RSS) is imported only when a RIM signature is checked (tests/unit/tee/gpu/test_rim_verify.py).
ECDSA_SHA384 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
SHA384 = "http://www.w3.org/2001/04/xmldsig-more#sha384"
_DS = f"{{{DSIG_NS}}}"
_ACTUAL_LIMIT = 200


@dataclass(frozen=True)
class _SignedRim:
    """What a RIM's bytes alone establish: the parse of the signed content and the certificates its signature
    verified with (certificates[0], the signer) or that KeyInfo lists after it."""

    rim: Rim
    certificates: tuple[x509.Certificate, ...]


# Signature-verified, parsed RIMs by SHA-256 of their bytes (see the module docstring); tens of KB each.
VERIFIED_RIMS: ContentCache[_SignedRim] = ContentCache("verified NVIDIA RIMs", max_entries=64, max_bytes=64 * 32)


@dataclass(frozen=True)
class VerifiedRim:
    """A RIM whose signature verified with `chain[0]`, and whose chain `chain` (leaf first, ending at a pinned
    NVIDIA RIM root) was valid at the appraisal time. The chain verifies at any time in [valid_from, valid_until]
    (the intersection of its certificates' validity). `sha256` is the hex SHA-256 of the RIM's bytes."""

    rim: Rim
    chain: tuple[x509.Certificate, ...]
    sha256: str
    valid_from: datetime.datetime
    valid_until: datetime.datetime

    @property
    def kind(self) -> RimKind | None:
        """ "driver" or "vbios" (from the colloquialVersion's shape; `rim.rim_kind`)."""
        return self.rim.kind

    @property
    def colloquial_version(self) -> str:
        """The driver or VBIOS version the RIM is for."""
        return self.rim.colloquial_version

    @property
    def signer(self) -> x509.Certificate:
        """The certificate whose key the signature verified with."""
        return self.chain[0]


def _signature_invalid(message: str, *, expected: str = "", actual: str = "") -> EvidenceError:
    return EvidenceError("GPU_RIM_SIGNATURE_INVALID", message, expected=expected, actual=actual[:_ACTUAL_LIMIT])


def _chain_invalid(message: str, *, expected: str = "", actual: str = "") -> EvidenceError:
    return EvidenceError("GPU_RIM_CHAIN_INVALID", message, expected=expected, actual=actual[:_ACTUAL_LIMIT])


def _elements(parent: etree._Element, tag: str | None = None) -> list[etree._Element]:
    """Element children of `parent` (all, or those named `tag` in the ds namespace)."""
    children = [c for c in parent if isinstance(c.tag, str)]
    return children if tag is None else [c for c in children if c.tag == _DS + tag]


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = _elements(parent, tag)
    if len(found) != 1:
        raise _signature_invalid(f"RIM signature must have exactly one {tag}", expected="1", actual=str(len(found)))
    return found[0]


def _algorithm(parent: etree._Element, tag: str, expected: str) -> None:
    actual = _one(parent, tag).get("Algorithm")
    if actual != expected:
        raise _signature_invalid(f"RIM signature: unsupported {tag}", expected=expected, actual=str(actual))


def _check_shape(root: etree._Element) -> etree._Element:
    """The one ds:Signature of the document, checked to have NVIDIA's shape (module docstring); returns its
    X509Data. Raises EvidenceError GPU_RIM_SIGNATURE_INVALID."""
    signatures = list(root.iter(_DS + "Signature"))
    children = _elements(root)
    if len(signatures) != 1 or not children or children[-1] is not signatures[0]:
        raise _signature_invalid(
            "RIM must carry one enveloped signature, the last child of its root",
            expected="1 ds:Signature as the root's last child",
            actual=f"{len(signatures)} ds:Signature",
        )
    signature = signatures[0]
    parts = [c.tag for c in _elements(signature)]
    if parts != [_DS + "SignedInfo", _DS + "SignatureValue", _DS + "KeyInfo"]:
        raise _signature_invalid(
            "RIM signature has unexpected content",
            expected="SignedInfo, SignatureValue, KeyInfo",
            actual=", ".join(etree.QName(t).localname for t in parts),
        )
    signed_info = _one(signature, "SignedInfo")
    _algorithm(signed_info, "CanonicalizationMethod", C14N_1_1)
    _algorithm(signed_info, "SignatureMethod", ECDSA_SHA384)
    reference = _one(signed_info, "Reference")
    if reference.get("URI") != "":
        raise _signature_invalid("RIM signature must cover the whole document", expected='URI=""')
    transforms = [t.get("Algorithm") for t in _elements(_one(reference, "Transforms"), "Transform")]
    if transforms != [ENVELOPED, C14N_1_1]:
        raise _signature_invalid(
            "RIM signature has unexpected transforms", expected=f"{ENVELOPED} {C14N_1_1}", actual=str(transforms)
        )
    _algorithm(reference, "DigestMethod", SHA384)
    key_info = _one(signature, "KeyInfo")
    x509_data = _one(key_info, "X509Data")
    if len(_elements(key_info)) != 1 or len(_elements(x509_data)) != len(_elements(x509_data, "X509Certificate")):
        raise _signature_invalid("RIM KeyInfo must hold X509Certificate elements only", expected="X509Data")
    return x509_data


def _certificates(x509_data: etree._Element) -> tuple[x509.Certificate, ...]:
    """KeyInfo's certificates in document order, signer first. Raises EvidenceError GPU_RIM_CHAIN_INVALID."""
    elements = _elements(x509_data, "X509Certificate")
    if not 1 <= len(elements) <= MAX_CERTIFICATES:
        raise _chain_invalid(
            "RIM KeyInfo: wrong number of certificates", expected=f"1..{MAX_CERTIFICATES}", actual=str(len(elements))
        )
    certs = []
    for position, element in enumerate(elements):
        text = "".join(str(element.text or "").split())
        try:
            der = base64.b64decode(text, validate=True)
            certs.append(load_der_certificate(der, f"RIM KeyInfo certificate {position}"))
        except (binascii.Error, ValueError) as exc:
            raise _chain_invalid(f"RIM KeyInfo certificate {position} is not base64", actual=str(exc)) from None
        except EvidenceError as exc:
            raise _chain_invalid(exc.message, expected=exc.expected, actual=exc.actual) from None
    return tuple(certs)


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def validate_rim_chain(
    certificates: Sequence[x509.Certificate],
    *,
    at: datetime.datetime,
    anchors: TrustAnchors,
    links: VerifiedLinks | None = None,
) -> tuple[x509.Certificate, ...]:
    """The chain signer <- CAs <- pinned NVIDIA RIM root, valid at `at`, leaf first. `certificates` is KeyInfo's
    list: signer first, then its CAs; a last, self-issued certificate is the document's copy of the root and only
    names which pinned root stands in for it (`TrustAnchors.root_for`). Raises EvidenceError GPU_RIM_CHAIN_INVALID
    (no pinned root, or the chain fails: CERT_EXPIRED, CHAIN_SIGNATURE_INVALID... said in the message)."""
    leaf, rest = certificates[0], list(certificates[1:])
    supplied = rest.pop() if rest and _self_issued(rest[-1]) else None
    top = rest[-1] if rest else leaf
    roots = anchors.root_for(VENDOR, supplied, top.issuer)
    if not roots:
        raise _chain_invalid(
            "RIM signing chain ends at no pinned NVIDIA RIM root",
            expected=",".join(sorted(anchors.pins.get(VENDOR, frozenset()))) or "a pinned nvidia-rim root",
            actual=fingerprint(supplied) if supplied is not None else top.issuer.rfc4514_string(),
        )
    failure: EvidenceError | None = None
    for root in roots:
        try:
            return tuple(validate_chain(leaf, rest, root, at, links))
        except EvidenceError as exc:
            failure = exc
    assert failure is not None
    raise _chain_invalid(
        f"RIM signing chain invalid: {failure.code}: {failure.message}",
        expected=failure.expected,
        actual=failure.actual,
    )


def _verify_signature(xml: bytes, signer: x509.Certificate) -> etree._Element:
    """signxml's check of the signature with `signer`'s key and of the reference digest; returns the signed element
    (re-parsed from the canonical bytes that were digested). Raises EvidenceError GPU_RIM_SIGNATURE_INVALID."""
    from signxml.algorithms import DigestAlgorithm, SignatureMethod
    from signxml.verifier import SignatureConfiguration, XMLVerifier

    config = SignatureConfiguration(
        location="./",
        expect_references=1,
        signature_methods=frozenset({SignatureMethod.ECDSA_SHA384}),
        digest_algorithms=frozenset({DigestAlgorithm.SHA384}),
        verification_time=signer.not_valid_before_utc,  # validity is the chain's business, at the appraisal time
    )
    try:
        result = XMLVerifier().verify(xml, x509_cert=signer, parser=hardened_parser(), expect_config=config)
    except Exception as exc:  # noqa: BLE001 - signxml and lxml raise assorted types on hostile input: all fail closed
        raise _signature_invalid(
            "RIM signature does not verify", expected=f"ecdsa-sha384 by {fingerprint(signer)}", actual=str(exc)
        ) from None
    signed = result.signed_xml if not isinstance(result, list) else None
    if signed is None:
        raise _signature_invalid("RIM signature covers no XML element", expected="SoftwareIdentity")
    return signed


def _signed_rim(
    xml: bytes, *, at: datetime.datetime, anchors: TrustAnchors, links: VerifiedLinks | None
) -> tuple[_SignedRim, tuple[x509.Certificate, ...]]:
    """Steps 1-4 of the module docstring for bytes not in the cache (the chain checked before the signature)."""
    root = parse_xml(xml)
    certificates = _certificates(_check_shape(root))
    chain = validate_rim_chain(certificates, at=at, anchors=anchors, links=links)
    return _SignedRim(rim_from_element(_verify_signature(xml, certificates[0])), certificates), chain


def verify_rim(
    xml: bytes,
    *,
    at: datetime.datetime,
    anchors: TrustAnchors,
    links: VerifiedLinks | None = None,
    cache: bool = True,
) -> VerifiedRim:
    """Verify an NVIDIA RIM (module docstring) as of `at` against the "nvidia-rim" pins of `anchors`; link
    signatures that verified are remembered in `links`. With `cache`, a RIM whose bytes verified before skips
    parsing and the XML signature check (its chain is still validated at `at`, with these anchors).

    Raises ParseError GPU_RIM_TOO_LARGE / GPU_RIM_MALFORMED (not XML, a DTD, not a RIM, bad measurement entries),
    EvidenceError GPU_RIM_SIGNATURE_INVALID (no or more than one signature, another shape or algorithm, a digest
    or signature that does not verify), GPU_RIM_CHAIN_INVALID (bad KeyInfo certificates, no pinned root, a chain
    that is not valid at `at`: an expired signer, a foreign root...)."""
    key = hashlib.sha256(xml).digest()
    signed = VERIFIED_RIMS.get(key) if cache else None
    if signed is not None:
        chain = validate_rim_chain(signed.certificates, at=at, anchors=anchors, links=links)
    else:
        signed, chain = _signed_rim(xml, at=at, anchors=anchors, links=links)
        if cache:
            signed = VERIFIED_RIMS.put(key, signed)
    return VerifiedRim(
        rim=signed.rim,
        chain=chain,
        sha256=key.hex(),
        valid_from=max(c.not_valid_before_utc for c in chain),
        valid_until=min(c.not_valid_after_utc for c in chain),
    )


def clear_rim_cache() -> None:
    """Forget every verified RIM (cold benchmarks, tests). Never raises."""
    VERIFIED_RIMS.clear()


def rim_cache_info() -> CacheInfo:
    """Hits, misses and size of the verified-RIM cache. Never raises."""
    return VERIFIED_RIMS.info()
