"""Loading X.509 CRLs (RFC 5280 section 5) for every vendor: DER or PEM, parsed eagerly so malformed input fails
here with a stable code. Signature and window checks are vendor-specific (AMD RSA-PSS, Intel ECDSA)."""

from __future__ import annotations

from cryptography import x509

from verifier.errors import EvidenceError


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in DER or PEM; EvidenceError CRL_MALFORMED otherwise."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
        _ = (crl.issuer, crl.last_update_utc, crl.next_update_utc, list(crl), list(crl.extensions))
    except (ValueError, TypeError) as exc:
        raise EvidenceError("CRL_MALFORMED", "cannot parse CRL", expected="X.509 CRL (DER or PEM)",
                            actual=str(exc)) from None
    return crl
