"""Verify a TDX quote (v4/v5) up to a pinned Intel SGX Root CA. Collateral (TCB info, QE identity) is not used
here; the CRLs arrive already verified (signature, issuer, validity) by the collateral layer.

Steps (Intel TDX DCAP Quoting Library API, "Quote Format" and "ECDSA Quote Verification"; Intel "SGX PCK
Certificate and CRL Profile"), each failing with its own EvidenceError code:

1. PCK chain from the certification data: leaf, PCK Platform/Processor CA, root. The root is trusted only when
   pinned ("intel-sgx"): the chain's own root if pinned, else a pinned anchor of the same subject
   (CHAIN_ROOT_UNTRUSTED); RFC 5280 validation at `at` (CERT_EXPIRED, CHAIN_SIGNATURE_INVALID... pass through);
   the leaf key is ECDSA P-256 (TDX_PCK_KEY_TYPE) and its SGX extension parses;
2. revocation: the leaf serial in the PCK CRL of its issuer, the CA serial in the root CA CRL (TDX_PCK_REVOKED);
3. QE report signature: ECDSA P-256 / SHA-256 by the PCK key over the 384 report bytes, raw r||s big-endian
   (TDX_QE_REPORT_SIGNATURE_INVALID; high-s accepted, as by every ECDSA check here: verifier/trust/ecdsa.py);
4. QE report data: REPORTDATA = SHA-256(attestation key || QE authentication data) || 32 zero bytes
   (TDX_QE_REPORT_DATA_MISMATCH);
5. only then the quote: the attestation key X||Y as an uncompressed P-256 point (TDX_ATTESTATION_KEY_INVALID),
   ECDSA / SHA-256 over header + (descriptor +) body, raw r||s (TDX_QUOTE_SIGNATURE_INVALID).
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.errors import EvidenceError
from verifier.tee.tdx.enclave_report import EnclaveReport, parse_enclave_report
from verifier.tee.tdx.pck import PckInfo, pck_chain, pck_info
from verifier.tee.tdx.quote import Quote
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.chain import VerifiedLinks, validate_chain
from verifier.trust.crl import is_revoked
from verifier.trust.ecdsa import verify_rs
from verifier.trust.public_keys import public_key

VENDOR = "intel-sgx"


@dataclass(frozen=True)
class TdxVerified:
    chain: list[x509.Certificate]  # PCK leaf, PCK Platform/Processor CA, Intel SGX Root CA
    pck: PckInfo
    qe_report: EnclaveReport


def _raw_valid(key: ec.EllipticCurvePublicKey, raw: bytes, message: bytes) -> bool:
    """ECDSA P-256 / SHA-256 with raw r||s (32 bytes each, big-endian); high-s is accepted (trust/ecdsa.py)."""
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")
    return verify_rs(key, r, s, message, hashes.SHA256())


def _root(chain: list[x509.Certificate], anchors: TrustAnchors) -> x509.Certificate:
    """Step 1a: the root in the quote is a trust root only when its SHA-256 is pinned (trust-anchors README)."""
    given = chain[2] if len(chain) == 3 else None
    found = anchors.root_for(VENDOR, given, given.subject if given is not None else chain[1].issuer)
    if not found:
        raise EvidenceError(
            "CHAIN_ROOT_UNTRUSTED",
            "the PCK chain does not end at a pinned Intel SGX Root CA",
            expected="pinned intel-sgx fingerprint",
            actual=fingerprint(given) if given is not None else "missing",
        )
    return found[0]


def _chain(
    quote: Quote,
    anchors: TrustAnchors,
    at: datetime.datetime,
    loaded: list[x509.Certificate] | None,
    links: VerifiedLinks | None,
) -> list[x509.Certificate]:
    """Step 1 (PCK Certificate and CRL Profile: Root CA -> PCK Platform/Processor CA -> PCK certificate). `loaded`:
    the quote's chain as the caller already decoded it (`pck_chain`), so it is not decoded twice."""
    certs = loaded if loaded is not None else pck_chain(quote.pck_chain_pem)
    if len(certs) not in (2, 3):
        raise EvidenceError(
            "TDX_PCK_CHAIN_INVALID",
            "the PCK chain must be leaf, PCK CA and root",
            expected="3 certificates",
            actual=str(len(certs)),
        )
    return validate_chain(certs[0], [certs[1]], _root(certs, anchors), at, links)


def _leaf_key(leaf: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """Step 1, last: the PCK key signs QE reports with ECDSA P-256 (PCK Certificate and CRL Profile)."""
    key = public_key(leaf)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        actual = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise EvidenceError("TDX_PCK_KEY_TYPE", "the PCK key is not ECDSA P-256", expected="secp256r1", actual=actual)
    return key


def _check_revocation(
    chain: list[x509.Certificate],
    pck_crl: x509.CertificateRevocationList | None,
    root_ca_crl: x509.CertificateRevocationList | None,
) -> None:
    """Step 2: membership only; the collateral layer has verified both CRLs."""
    for cert, crl, which in ((chain[1], root_ca_crl, "root CA CRL"), (chain[0], pck_crl, "PCK CRL")):
        if is_revoked(crl, cert):
            raise EvidenceError(
                "TDX_PCK_REVOKED",
                f"{cert.subject.rfc4514_string()} is revoked by the {which}",
                expected="not revoked",
                actual=f"serial {cert.serial_number:x}",
            )


def _check_qe_report(quote: Quote, leaf: x509.Certificate, key: ec.EllipticCurvePublicKey) -> EnclaveReport:
    """Steps 3 and 4 (Quoting Library API "QE Report Certification Data")."""
    if not _raw_valid(key, quote.qe_report_signature, quote.qe_report):
        raise EvidenceError(
            "TDX_QE_REPORT_SIGNATURE_INVALID",
            "the QE report signature does not verify (PCK key)",
            expected=f"ECDSA P-256 by {fingerprint(leaf)}",
            actual=quote.qe_report_signature.hex(),
        )
    report = parse_enclave_report(quote.qe_report)
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + bytes(32)
    if report.report_data != expected:
        raise EvidenceError(
            "TDX_QE_REPORT_DATA_MISMATCH",
            "QE REPORTDATA is not SHA-256(attestation key || QE auth data) || zeros",
            expected=expected.hex(),
            actual=report.report_data.hex(),
        )
    return report


def _check_quote_signature(quote: Quote) -> None:
    """Step 5 (Quoting Library API "ECDSA 256-bit Quote Signature Data Structure")."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + quote.attestation_key)
    except ValueError:
        raise EvidenceError(
            "TDX_ATTESTATION_KEY_INVALID",
            "the attestation key is not a P-256 point",
            expected="uncompressed P-256 point X||Y",
            actual=quote.attestation_key.hex(),
        ) from None
    if not _raw_valid(key, quote.signature, quote.signed):
        raise EvidenceError(
            "TDX_QUOTE_SIGNATURE_INVALID",
            "the quote signature does not verify",
            expected=f"ECDSA P-256 by attestation key {quote.attestation_key.hex()}",
            actual=quote.signature.hex(),
        )


def verify_quote(
    quote: Quote,
    anchors: TrustAnchors,
    at: datetime.datetime,
    *,
    pck_crl: x509.CertificateRevocationList | None = None,
    root_ca_crl: x509.CertificateRevocationList | None = None,
    pck_certificates: list[x509.Certificate] | None = None,
    links: VerifiedLinks | None = None,
) -> TdxVerified:
    """Run steps 1-5 (module docstring) at time `at`; raises EvidenceError with the first failure.
    `pck_certificates` is `pck_chain(quote.pck_chain_pem)` when the caller has it already; signatures that
    verified are remembered in `links` (the verifier's cache)."""
    chain = _chain(quote, anchors, at, pck_certificates, links)
    key = _leaf_key(chain[0])
    pck = pck_info(chain[0])
    _check_revocation(chain, pck_crl, root_ca_crl)
    qe_report = _check_qe_report(quote, chain[0], key)
    _check_quote_signature(quote)
    return TdxVerified(chain=chain, pck=pck, qe_report=qe_report)
