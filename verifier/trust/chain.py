"""Generic X.509 path validation (RFC 5280 section 6.1, reduced to what vendor PKIs need).

Every link is checked explicitly with `verify_directly_issued_by`, so ECDSA (AWS, Intel) and RSASSA-PSS (AMD)
signatures go through the same code. No revocation here: CRLs are `verifier.trust.crl`.

Signatures that verified may be remembered in a `VerifiedLinks` the caller passes (`links`): each TEE verifier
owns one (its constructor makes it, or takes the one the composition root gives). There is no module-level cache:
without `links` every signature is checked.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from verifier.errors import EvidenceError
from verifier.trust.digests import cert_sha256
from verifier.trust.names import issuer_key, subject_key


def _utc(at: datetime.datetime) -> datetime.datetime:
    """Naive datetimes are taken as UTC."""
    return at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)


def _rfc3339(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def check_validity(cert: x509.Certificate, at: datetime.datetime) -> None:
    """RFC 5280 section 6.1.3 (a)(2): notBefore <= at <= notAfter."""
    at = _utc(at)
    if at < cert.not_valid_before_utc:
        raise EvidenceError(
            "CERT_NOT_YET_VALID",
            f"certificate {_name(cert)} not yet valid",
            expected=f"notBefore {_rfc3339(cert.not_valid_before_utc)}",
            actual=_rfc3339(at),
        )
    if at > cert.not_valid_after_utc:
        raise EvidenceError(
            "CERT_EXPIRED",
            f"certificate {_name(cert)} expired",
            expected=f"notAfter {_rfc3339(cert.not_valid_after_utc)}",
            actual=_rfc3339(at),
        )


class VerifiedLinks:
    """Bounded LRU of signatures that verified, keyed by digests of everything the check depends on (for a
    certificate link: SHA-256 of the cert DER and of the issuer DER).

    A signature check is a pure function of those bytes, so a hit is as good as re-verifying; only successes are
    kept. Validity, names and constraints are still checked on every call, at that call's appraisal time."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._links: OrderedDict[tuple[bytes, ...], None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: tuple[bytes, ...]) -> bool:
        with self._lock:
            if key in self._links:
                self._links.move_to_end(key)
                return True
            return False

    def add(self, key: tuple[bytes, ...]) -> None:
        """Remember that the signature keyed by `key` verified, evicting the least recently used entries beyond
        `capacity` (0: nothing is kept). Never raises; thread-safe."""
        with self._lock:
            self._links[key] = None
            self._links.move_to_end(key)
            while len(self._links) > self._capacity:
                self._links.popitem(last=False)

    def clear(self) -> None:
        """Forget every remembered signature. Never raises; thread-safe."""
        with self._lock:
            self._links.clear()


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate, links: VerifiedLinks | None = None) -> None:
    """RFC 5280 section 6.1.3 (a)(1) and (a)(4): issuer name chaining and the signature (remembered in `links`).
    Raises EvidenceError CHAIN_NAME_MISMATCH or CHAIN_SIGNATURE_INVALID."""
    if issuer_key(cert) != subject_key(issuer):
        raise EvidenceError(
            "CHAIN_NAME_MISMATCH",
            "issuer name does not match the issuer's subject",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    link = (cert_sha256(cert), cert_sha256(issuer))
    if links is not None and link in links:
        return
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise EvidenceError(
            "CHAIN_SIGNATURE_INVALID",
            f"signature of {_name(cert)} does not verify with {_name(issuer)}",
            expected=_name(issuer),
            actual=type(exc).__name__,
        ) from None
    if links is not None:
        links.add(link)


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension) as exc:  # undecodable or duplicate (not a ValueError) extension
        raise EvidenceError("CERT_MALFORMED", f"bad extensions in {_name(cert)}", actual=str(exc)) from None


def check_ca(cert: x509.Certificate, ca_below: int) -> None:
    """RFC 5280 section 6.1.4 (k), (l), (m), (n): CA flag, pathLen over the CAs below it, keyCertSign."""
    bc = _extension(cert, x509.BasicConstraints)
    if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
        raise EvidenceError("CHAIN_CONSTRAINTS", f"{_name(cert)} is not a CA", expected="basicConstraints CA=true")
    if bc.path_length is not None and ca_below > bc.path_length:
        raise EvidenceError(
            "CHAIN_CONSTRAINTS",
            f"pathLen of {_name(cert)} exceeded",
            expected=f"<= {bc.path_length}",
            actual=str(ca_below),
        )
    ku = _extension(cert, x509.KeyUsage)
    if not isinstance(ku, x509.KeyUsage) or not ku.key_cert_sign:
        raise EvidenceError("CHAIN_CONSTRAINTS", f"{_name(cert)} may not sign certificates", expected="keyCertSign")


def check_leaf(cert: x509.Certificate) -> None:
    """RFC 5280 section 4.2.1.3: when keyUsage is present the leaf must allow digitalSignature."""
    ku = _extension(cert, x509.KeyUsage)
    if isinstance(ku, x509.KeyUsage) and not ku.digital_signature:
        raise EvidenceError("CHAIN_CONSTRAINTS", f"{_name(cert)} may not sign", expected="digitalSignature")


def validate_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    root: x509.Certificate,
    at: datetime.datetime,
    links: VerifiedLinks | None = None,
) -> list[x509.Certificate]:
    """Validate leaf <- intermediates[0] <- ... <- intermediates[-1] <- root at time `at`.

    `intermediates` is ordered leaf-side first (intermediates[0] issued the leaf). The root must be
    self-signed; whether it is trusted (pinned) is the caller's decision. Returns the chain leaf-first.
    Checks run from the root down: names and signature, validity, then CA constraints. Signatures that verified
    are remembered in `links`. Raises EvidenceError (CHAIN_*, CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_MALFORMED).
    """
    chain = [leaf, *intermediates, root]
    check_issued_by(root, root, links)
    for position in range(len(chain) - 1, -1, -1):
        cert = chain[position]
        if position < len(chain) - 1:
            check_issued_by(cert, chain[position + 1], links)
        check_validity(cert, at)
        if position == 0:
            check_leaf(cert)
        else:
            # CAs below this one, excluding the leaf (RFC 5280 section 4.2.1.9)
            check_ca(cert, ca_below=position - 1)
    return chain
