"""AMD KDS certificate revocation lists (pub. 57230, "Certificate Revocation List": /vcek/v1/<product>/crl and
/vlek/v1/<product>/crl), signed by the ARK with RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48.

The ARK's CRL revokes certificates the ARK issued (ASK, ASVK). A CRL only covers certificates of its own issuer
(RFC 5280 section 6.3.3 (b)), so `revoked` matches the issuer name as well as the serial: every VCEK and VLEK has
serial number 0, and a bare serial match would revoke all of them at once. The checks themselves are the shared
checker's (`verifier.trust.crl`, profile AMD_ARK); these names stay for the SEV-SNP code and its tests.
"""

from __future__ import annotations

import datetime

from cryptography import x509

from verifier.trust.chain import VerifiedLinks
from verifier.trust.crl import AMD_ARK, PSS_SALT, is_revoked, load_crl
from verifier.trust.crl import check_crl as _check_crl

__all__ = ["PSS_SALT", "check_crl", "load_crl", "revoked", "verify_crl"]


def check_crl(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    at: datetime.datetime,
    links: VerifiedLinks | None = None,
) -> None:
    """Issuer name, signature by `issuer` (the ARK), and thisUpdate <= at < nextUpdate (never a stale CRL:
    nextUpdate itself is past the window). Raises EvidenceError CRL_ISSUER_MISMATCH, CRL_SIGNATURE_INVALID,
    CRL_NOT_YET_VALID or CRL_EXPIRED."""
    _check_crl(crl, issuer, at, AMD_ARK, links=links)


def verify_crl(
    data: bytes, issuer: x509.Certificate, at: datetime.datetime, links: VerifiedLinks | None = None
) -> x509.CertificateRevocationList:
    """Parse `data` (DER or PEM) and check it against `issuer` (the ARK) at `at`. Raises EvidenceError
    CRL_MALFORMED or the codes of `check_crl`."""
    crl = load_crl(data)
    check_crl(crl, issuer, at, links)
    return crl


def revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """True when `cert` is within the CRL's scope (same issuer) and its serial number is listed."""
    return is_revoked(crl, cert)
