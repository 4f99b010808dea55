"""The one X.509 CRL checker for every vendor (RFC 5280 sections 5 and 6.3): issuer name, signature by the issuer
(RSASSA-PSS for AMD, ECDSA for Intel), the window thisUpdate <= at < nextUpdate, and the revoked-serial lookup.

What differs between vendors is data, in a `CrlProfile`: the issuer key types accepted, the error codes of the
window, and whether the window is checked first (Intel collateral) or last (AMD). The CRL loader is
`verifier.trust.certs.load_crl` (re-exported here under its old name).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from verifier.clock import to_rfc3339
from verifier.errors import EvidenceError
from verifier.trust.certs import load_crl
from verifier.trust.chain import VerifiedLinks
from verifier.trust.digests import cert_sha256, crl_sha256
from verifier.trust.names import issuer_key, subject_key

__all__ = ["AMD_ARK", "INTEL_SGX", "CrlProfile", "check_crl", "is_revoked", "load_crl"]

PSS_SALT = 48  # SHA-384 digest length, as AMD signs
Window = Callable[[x509.CertificateRevocationList, datetime.datetime, str], None]


def _utc(at: datetime.datetime) -> datetime.datetime:
    return at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc5280_window(crl: x509.CertificateRevocationList, at: datetime.datetime, what: str) -> None:
    """thisUpdate <= at < nextUpdate (never a stale CRL: nextUpdate itself is past the window, as for the
    collateral cache); naive `at` is UTC. Raises EvidenceError CRL_NOT_YET_VALID or CRL_EXPIRED."""
    at = _utc(at)
    if at < crl.last_update_utc:
        raise EvidenceError(
            "CRL_NOT_YET_VALID",
            f"{what} thisUpdate is after the appraisal time",
            expected=f"thisUpdate {_rfc3339(crl.last_update_utc)}",
            actual=_rfc3339(at),
        )
    next_update = crl.next_update_utc
    if next_update is None or at >= next_update:
        raise EvidenceError(
            "CRL_EXPIRED",
            f"{what} is at or past nextUpdate (or has none): a fresh CRL is required",
            expected=f"before nextUpdate {_rfc3339(next_update) if next_update else '(present)'}",
            actual=_rfc3339(at),
        )


def check_collateral_window(
    what: str, start: datetime.datetime, end: datetime.datetime | None, at: datetime.datetime
) -> None:
    """start <= at < end for an Intel collateral item (CRL, TCB info, QE identity; `at` already UTC): the code
    every TDX collateral item uses. Raises EvidenceError TDX_COLLATERAL_EXPIRED."""
    if end is None or not start <= at < end:
        raise EvidenceError(
            "TDX_COLLATERAL_EXPIRED",
            f"{what} is not valid at the appraisal time",
            expected=f"{to_rfc3339(start)} <= at < {to_rfc3339(end) if end else 'nextUpdate'}",
            actual=to_rfc3339(at),
        )


def collateral_window(crl: x509.CertificateRevocationList, at: datetime.datetime, what: str) -> None:
    """`check_collateral_window` over the CRL's thisUpdate and nextUpdate."""
    check_collateral_window(what, crl.last_update_utc, crl.next_update_utc, at)


@dataclass(frozen=True)
class CrlProfile:
    """How one vendor's CRLs are checked."""

    keys: tuple[type, ...]  # issuer public key types that may sign the CRL
    issuer_role: str  # for the CRL_ISSUER_MISMATCH message: "<what> issuer is not <issuer_role>"
    window: Window
    window_first: bool  # check the window before issuer and signature
    # When the signature cannot be checked at all (an exception): report it under this `expected` (AMD), or, None,
    # as a signature that does not verify (Intel).
    uncheckable: str | None


# AMD KDS CRLs (pub. 57230): signed by the ARK with RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48.
AMD_ARK = CrlProfile(
    keys=(rsa.RSAPublicKey, ec.EllipticCurvePublicKey),
    issuer_role="the expected ARK",
    window=rfc5280_window,
    window_first=False,
    uncheckable="RSASSA-PSS SHA-384",
)
# Intel SGX PCK and root CA CRLs ("SGX PCK Certificate and CRL Profile"): ECDSA by the PCK CA or the root.
INTEL_SGX = CrlProfile(
    keys=(ec.EllipticCurvePublicKey,),
    issuer_role="its signing CA",
    window=collateral_window,
    window_first=True,
    uncheckable=None,
)


def _signature_valid(crl: x509.CertificateRevocationList, issuer: x509.Certificate, profile: CrlProfile) -> bool:
    """RSASSA-PSS is verified explicitly over tbsCertList with the parameters AMD uses (SHA-384, MGF1-SHA-384,
    salt 48; a PSS CRL with another hash is invalid); other algorithms go through `is_signature_valid`."""
    key = issuer.public_key()
    if not isinstance(key, profile.keys):
        return False
    params = crl.signature_algorithm_parameters
    if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.PSS):
        if not isinstance(crl.signature_hash_algorithm, hashes.SHA384):
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


def _check_signature(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    what: str,
    profile: CrlProfile,
    links: VerifiedLinks | None,
) -> None:
    link = (b"crl", crl_sha256(crl), cert_sha256(issuer))
    if links is not None and link in links:
        return
    try:
        valid = _signature_valid(crl, issuer, profile)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if profile.uncheckable is not None:
            raise EvidenceError(
                "CRL_SIGNATURE_INVALID",
                f"{what} signature cannot be checked",
                expected=profile.uncheckable,
                actual=str(exc),
            ) from None
        valid = False
    if not valid:
        raise EvidenceError(
            "CRL_SIGNATURE_INVALID",
            f"{what} signature does not verify with the issuer key",
            expected=issuer.subject.rfc4514_string(),
            actual=crl.signature_algorithm_oid.dotted_string,
        )
    if links is not None:
        links.add(link)


def check_crl(
    crl: x509.CertificateRevocationList,
    issuer: x509.Certificate,
    at: datetime.datetime,
    profile: CrlProfile,
    *,
    what: str = "CRL",
    links: VerifiedLinks | None = None,
) -> None:
    """Issuer name, signature by `issuer` (remembered in `links`), and the window at `at` (`profile.window`, first
    or last as the profile says). Raises EvidenceError CRL_ISSUER_MISMATCH, CRL_SIGNATURE_INVALID, or the window's
    codes (CRL_NOT_YET_VALID / CRL_EXPIRED, or TDX_COLLATERAL_EXPIRED)."""
    if profile.window_first:
        profile.window(crl, at, what)
    if issuer_key(crl) != subject_key(issuer):
        raise EvidenceError(
            "CRL_ISSUER_MISMATCH",
            f"{what} issuer is not {profile.issuer_role}",
            expected=issuer.subject.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    _check_signature(crl, issuer, what, profile, links)
    if not profile.window_first:
        profile.window(crl, at, what)


def is_revoked(crl: x509.CertificateRevocationList | None, cert: x509.Certificate) -> bool:
    """True when `cert` is within the CRL's scope (the CRL's issuer issued it: RFC 5280 section 6.3.3 (b)) and its
    serial number is listed. Every AMD VCEK and VLEK has serial 0, so the issuer match is what keeps one listed
    serial from revoking all of them. False for no CRL."""
    if crl is None or issuer_key(cert) != issuer_key(crl):
        return False
    return crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
