"""AMD KDS certificate revocation lists (pub. 57230, "Certificate Revocation List": /vcek/v1/<product>/crl and
/vlek/v1/<product>/crl), signed by the ARK with RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48.

The ARK's CRL revokes certificates the ARK issued (ASK, ASVK). A CRL only covers certificates of its own issuer
(RFC 5280 section 6.3.3 (b)), so `revoked` matches the issuer name as well as the serial: every VCEK and VLEK has
serial number 0, and a bare serial match would revoke all of them at once.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from verifier.errors import EvidenceError
from verifier.trust.crl import load_crl

PSS_SALT = 48  # SHA-384 digest length, as AMD signs


def _utc(at: datetime.datetime) -> datetime.datetime:
    return at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signature_valid(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """RSASSA-PSS is verified explicitly over tbsCertList with the parameters the CRL declares (AMD: SHA-384,
    MGF1-SHA-384, salt 48); other algorithms go through `is_signature_valid`."""
    key = issuer.public_key()
    params = crl.signature_algorithm_parameters
    algorithm = crl.signature_hash_algorithm
    if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.PSS):
        if not isinstance(algorithm, hashes.SHA384):
            return False
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=PSS_SALT)
        try:
            key.verify(crl.signature, crl.tbs_certlist_bytes, pss, hashes.SHA384())
        except InvalidSignature:
            return False
        return True
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return False
    return crl.is_signature_valid(key)


def check_crl(crl: x509.CertificateRevocationList, issuer: x509.Certificate, at: datetime.datetime) -> None:
    """Issuer name, signature by `issuer`, and thisUpdate <= at < nextUpdate (never a stale CRL: nextUpdate itself
    is past the window, as for the TDX collateral and the collateral cache). Raises EvidenceError
    CRL_ISSUER_MISMATCH, CRL_SIGNATURE_INVALID, CRL_NOT_YET_VALID or CRL_EXPIRED."""
    if crl.issuer != issuer.subject:
        raise EvidenceError(
            "CRL_ISSUER_MISMATCH",
            "CRL issuer is not the expected ARK",
            expected=issuer.subject.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    try:
        valid = _signature_valid(crl, issuer)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise EvidenceError(
            "CRL_SIGNATURE_INVALID", "CRL signature cannot be checked", expected="RSASSA-PSS SHA-384", actual=str(exc)
        ) from None
    if not valid:
        raise EvidenceError(
            "CRL_SIGNATURE_INVALID",
            "CRL signature does not verify with the issuer key",
            expected=issuer.subject.rfc4514_string(),
            actual=crl.signature_algorithm_oid.dotted_string,
        )
    at = _utc(at)
    if at < crl.last_update_utc:
        raise EvidenceError(
            "CRL_NOT_YET_VALID",
            "CRL thisUpdate is after the appraisal time",
            expected=f"thisUpdate {_rfc3339(crl.last_update_utc)}",
            actual=_rfc3339(at),
        )
    next_update = crl.next_update_utc
    if next_update is None or at >= next_update:
        raise EvidenceError(
            "CRL_EXPIRED",
            "CRL is at or past nextUpdate (or has none): a fresh CRL is required",
            expected=f"before nextUpdate {_rfc3339(next_update) if next_update else '(present)'}",
            actual=_rfc3339(at),
        )


def verify_crl(data: bytes, issuer: x509.Certificate, at: datetime.datetime) -> x509.CertificateRevocationList:
    """Parse `data` and check it against `issuer` (the ARK) at `at`."""
    crl = load_crl(data)
    check_crl(crl, issuer, at)
    return crl


def revoked(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    """True when `cert` is within the CRL's scope (same issuer) and its serial number is listed."""
    if cert.issuer != crl.issuer:
        return False
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
