"""The cryptographic checks of a GPU report against its device certificate chain (no policy, no I/O):

1. the chain, leaf first, exactly as NVIDIA's GPUs return it: GSP FMC LF (the attestation key) <- GSP BROM (per
   chip) <- Provisioner ICA <- GH100/GB100 Identity <- NVIDIA Device Identity CA. Exactly five certificates (as
   nv-local-gpu-verifier insists, `MAX_CERT_CHAIN_LENGTH`): a shorter chain whose every signature verifies (the BROM
   and its CAs without the leaf) is refused rather than trusted because it validates. The last certificate is used
   only when its SHA-256 is pinned ("nvidia-device"); otherwise a pinned root of the name its issuer names stands
   in (nv-local-gpu-verifier drops the GPU's copy and appends its own). The path is validated at the appraisal time
   by `verifier.trust.chain` (RFC 5280 names, signatures, validity, CA flags and keyCertSign) and the leaf must not
   be a CA;
2. the report's signature: ECDSA P-384 with SHA-384, raw r || s, over bytes 0 .. signature_offset - 1, with the
   leaf's key (`verifier.trust.ecdsa.verify_rs`; high-s accepted, as for every TEE);
3. the FWID binding: the leaf's FWID (`fwid.leaf_fwid`) equals the report's opaque FWID. A report without the field
   (535/545 drivers) is not compared, as NVIDIA's verifiers do; a report with it and a leaf without either FWID
   extension is refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ...errors import EvidenceError
from ...trust.anchors import TrustAnchors, fingerprint
from ...trust.certs import load_pem_certificates
from ...trust.chain import VerifiedLinks, validate_chain
from ...trust.ecdsa import verify_rs
from ...trust.public_keys import public_key
from .fwid import LeafFwid, leaf_fwid
from .spdm import SIGNATURE_LENGTH, SpdmReport

VENDOR = "nvidia-device"
CHAIN_FILE = "cert_chain.pem"
CHAIN_LENGTH = 5  # FMC LF, BROM, Provisioner ICA, Identity, Device Identity CA
MAX_CHAIN_FILE_CERTS = 16  # a bound on the decoding work of a hostile file
COORDINATE_BYTES = SIGNATURE_LENGTH // 2


def load_chain(collateral: Mapping[str, bytes]) -> tuple[x509.Certificate, ...]:
    """The device chain from the request's `cert_chain.pem` (PEM, leaf first), fully decoded. Raises EvidenceError
    GPU_CERT_CHAIN_MISSING (no such file) or CERT_MALFORMED."""
    data = collateral.get(CHAIN_FILE)
    if data is None:
        raise EvidenceError(
            "GPU_CERT_CHAIN_MISSING",
            "the GPU's device certificate chain was not given (collateral cert_chain.pem)",
            expected=CHAIN_FILE,
            actual="absent",
        )
    return load_pem_certificates(data, CHAIN_FILE, max_count=MAX_CHAIN_FILE_CERTS)


def _not_a_ca(leaf: x509.Certificate) -> None:
    try:
        ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return
    if ca:
        raise EvidenceError(
            "CHAIN_CONSTRAINTS", "the attestation key certificate is a CA", expected="an end-entity FMC LF leaf"
        )


def verify_chain(
    certs: Sequence[x509.Certificate], anchors: TrustAnchors, at: dt.datetime, links: VerifiedLinks | None = None
) -> list[x509.Certificate]:
    """Step 1 of the module docstring; returns the validated chain, leaf first, ending at the pinned root. Raises
    EvidenceError GPU_CERT_CHAIN_LENGTH, CHAIN_ROOT_UNTRUSTED, CHAIN_CONSTRAINTS and whatever
    `verifier.trust.chain.validate_chain` raises (CHAIN_*, CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_MALFORMED)."""
    if len(certs) != CHAIN_LENGTH:
        raise EvidenceError(
            "GPU_CERT_CHAIN_LENGTH",
            "the device chain must be FMC LF, BROM, Provisioner ICA, Identity and the Device Identity CA",
            expected=str(CHAIN_LENGTH),
            actual=str(len(certs)),
        )
    leaf, intermediates, supplied = certs[0], list(certs[1:-1]), certs[-1]
    roots = anchors.root_for(VENDOR, supplied, intermediates[-1].issuer)
    if not roots:
        raise EvidenceError(
            "CHAIN_ROOT_UNTRUSTED",
            "no pinned NVIDIA Device Identity CA for this chain",
            expected=",".join(sorted(anchors.pins.get(VENDOR, frozenset()))),
            actual=fingerprint(supplied),
        )
    _not_a_ca(leaf)
    failure: EvidenceError | None = None
    for root in roots:
        try:
            return validate_chain(leaf, intermediates, root, at, links)
        except EvidenceError as exc:
            failure = exc
    assert failure is not None
    raise failure


def verify_signature(report: SpdmReport, leaf: x509.Certificate) -> None:
    """Step 2 of the module docstring. Raises EvidenceError GPU_KEY_TYPE (the leaf key is not P-384) or
    GPU_SIGNATURE_INVALID."""
    key = public_key(leaf)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise EvidenceError(
            "GPU_KEY_TYPE", "the attestation key must be ECDSA P-384", expected="secp384r1", actual=curve
        )
    signature = report.response.signature
    r = int.from_bytes(signature[:COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[COORDINATE_BYTES:], "big")
    if not verify_rs(key, r, s, report.signed_bytes, hashes.SHA384()):
        raise EvidenceError(
            "GPU_SIGNATURE_INVALID",
            "the report's signature does not verify with the attestation key (FMC LF leaf)",
            expected=f"ECDSA P-384 SHA-384 by {fingerprint(leaf)} over bytes 0..{report.signature_offset - 1}",
            actual=signature.hex(),
        )


def check_fwid(report: SpdmReport, leaf: x509.Certificate) -> tuple[LeafFwid | None, bool]:
    """Step 3 of the module docstring: (the leaf's FWID, whether it was compared). Raises EvidenceError
    GPU_FWID_EXTENSION_INVALID, GPU_FWID_EXTENSION_MISSING (the report has an FWID, the leaf none) or
    GPU_FWID_MISMATCH."""
    found = leaf_fwid(leaf)
    reported = report.response.opaque.fwid
    if reported is None:
        return found, False
    if found is None:
        raise EvidenceError(
            "GPU_FWID_EXTENSION_MISSING",
            "the report carries an FWID but the attestation key certificate has no FWID extension",
            expected="2.23.133.5.4.1 or 2.23.133.5.4.1.1",
            actual="absent",
        )
    if found.fwid != reported:
        raise EvidenceError(
            "GPU_FWID_MISMATCH",
            f"the report's FWID is not the one in the leaf certificate ({found.oid})",
            expected=found.fwid.hex(),
            actual=reported.hex(),
        )
    return found, True
