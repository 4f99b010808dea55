"""Verification of a parsed Nitro attestation document.

Follows aws-nitro-enclaves-nsm-api docs/attestation_process.md section 3.2 ("Verifying the root of trust")
and RFC 9052 section 4.4 for the COSE_Sign1 signature. Reference-value (PCR) and debug-mode policy are
appraisal concerns and are not checked here.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.errors import EvidenceError
from verifier.tee.nitro.cose import sig_structure
from verifier.tee.nitro.parse import NitroEvidence
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.certs import load_der_certificate
from verifier.trust.chain import VerifiedLinks, validate_chain
from verifier.trust.ecdsa import verify_rs
from verifier.trust.public_keys import public_key

VENDOR = "aws-nitro"
COORDINATE_BYTES = 48  # P-384


def _load(der: bytes, what: str) -> x509.Certificate:
    """Load a DER certificate with the shared loader (fully decoded); EvidenceError CERT_MALFORMED otherwise."""
    return load_der_certificate(der, what)


def _roots(bundle_root: x509.Certificate, top: x509.Certificate, anchors: TrustAnchors) -> list[x509.Certificate]:
    """Step 1 root selection (`TrustAnchors.root_for`): cabundle[0] only if pinned, else pinned anchors named as
    `top`'s issuer."""
    return anchors.root_for(VENDOR, bundle_root, top.issuer)


def verify(
    evidence: NitroEvidence, anchors: TrustAnchors, at: datetime.datetime, links: VerifiedLinks | None = None
) -> list[x509.Certificate]:
    """Verify chain and signature of `evidence` as of `at` (signatures that verified remembered in `links`);
    return the chain leaf-first or raise EvidenceError."""
    doc = evidence.document
    # 1. Build the chain (attestation_process.md 3.2.3.1): certificate <- cabundle[N-1] <- ... <- cabundle[1]
    #    <- root. cabundle[0] is the root as the enclave claims it; it is used only when its SHA-256 is pinned,
    #    otherwise a pinned anchor whose subject is the issuer of the topmost certificate takes its place.
    leaf = _load(doc.certificate, "certificate")
    bundle = [_load(der, f"cabundle[{i}]") for i, der in enumerate(doc.cabundle)]
    intermediates = bundle[:0:-1]
    top = intermediates[-1] if intermediates else leaf
    roots = _roots(bundle[0], top, anchors)
    if not roots:
        raise EvidenceError(
            "CHAIN_ROOT_UNTRUSTED",
            "no pinned AWS Nitro root for this chain",
            expected=",".join(sorted(anchors.pins.get(VENDOR, frozenset()))),
            actual=fingerprint(bundle[0]),
        )
    # 2. Validate the chain at `at` (attestation_process.md 3.2.3.2; RFC 5280 section 6.1): validity of every
    #    certificate including the root, signatures, basicConstraints/pathLen and keyUsage.
    chain: list[x509.Certificate] | None = None
    failure: EvidenceError | None = None
    for root in roots:
        try:
            chain = validate_chain(leaf, intermediates, root, at, links)
            break
        except EvidenceError as exc:
            failure = exc
    if chain is None:
        assert failure is not None
        raise failure
    # 3. Only now check the COSE signature (attestation_process.md 3.2.2; RFC 9052 section 4.4, RFC 9053
    #    section 2.1): ES384 over Sig_structure with the leaf key, raw r||s. High-s is accepted: AWS hardware
    #    emits it (verifier/trust/ecdsa.py says why that is harmless).
    key = public_key(leaf)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise EvidenceError("NITRO_KEY_TYPE", "leaf key must be ECDSA P-384", expected="secp384r1", actual=curve)
    signature = evidence.cose.signature
    r = int.from_bytes(signature[:COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[COORDINATE_BYTES:], "big")
    if not verify_rs(key, r, s, sig_structure(evidence.cose), hashes.SHA384()):
        raise EvidenceError(
            "NITRO_SIGNATURE_INVALID",
            "COSE_Sign1 signature does not verify with the leaf key",
            expected=f"ES384 by {fingerprint(leaf)}",
            actual=signature.hex(),
        )
    return chain
