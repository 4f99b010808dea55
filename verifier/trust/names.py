"""Comparing X.509 names on the hot path: issuer/subject chaining (RFC 5280 section 6.1.3 (a)(4)) and CRL scope
(section 6.3.3 (b)) compare the same few names on every appraisal, and `cryptography` builds new `Name` objects on
every `.issuer` / `.subject` access and compares them attribute by attribute in Python (about a fifth of a TDX
quote's verification). `issuer_key` / `subject_key` compute a comparison key once per certificate or CRL object
(memoised by identity, as `digests` does; certificates and CRLs are immutable and decoded once per input); two keys
are equal exactly when `cryptography` says the names are (`Name.__eq__`: the same sequence of RDNs, each the same
set of attributes, each the same OID and value; string types are not compared, as there)."""

from __future__ import annotations

from typing import Union

from cryptography import x509

from ..identity_memo import IdentityMemo

NameKey = tuple[frozenset[tuple[str, Union[str, bytes]]], ...]  # noqa: UP007 - a runtime alias
Named = x509.Certificate | x509.CertificateRevocationList
MEMO_SIZE = 1024

_ISSUERS: IdentityMemo[NameKey] = IdentityMemo(MEMO_SIZE)
_SUBJECTS: IdentityMemo[NameKey] = IdentityMemo(MEMO_SIZE)
_TEXTS: IdentityMemo[str] = IdentityMemo(MEMO_SIZE)


def name_key(name: x509.Name) -> NameKey:
    """The comparison key of `name` (module docstring). Never raises."""
    return tuple(frozenset((a.oid.dotted_string, a.value) for a in rdn) for rdn in name.rdns)


def issuer_key(item: Named) -> NameKey:
    """`name_key` of a certificate's or CRL's issuer, once per object. Never raises for a loaded one."""
    return _ISSUERS.get(item, None, lambda: name_key(item.issuer))


def subject_key(cert: x509.Certificate) -> NameKey:
    """`name_key` of a certificate's subject, once per object. Never raises for a loaded certificate."""
    return _SUBJECTS.get(cert, None, lambda: name_key(cert.subject))


def subject_text(cert: x509.Certificate) -> str:
    """The RFC 4514 string of a certificate's subject (`Name.rfc4514_string`), once per object: claims name the
    signing certificate on every appraisal. Never raises for a loaded certificate."""
    return _TEXTS.get(cert, "subject", lambda: cert.subject.rfc4514_string())


def issuer_text(item: Named) -> str:
    """The RFC 4514 string of a certificate's or CRL's issuer, once per object. Never raises for a loaded one."""
    return _TEXTS.get(item, "issuer", lambda: item.issuer.rfc4514_string())
