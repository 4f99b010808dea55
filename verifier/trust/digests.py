"""SHA-256 digests of certificates and CRLs, memoised per object (`cryptography` recomputes a fingerprint on every
call, ~10 us, and an appraisal asks for the same few a dozen times: signature-check memo keys, pinned roots).
Certificates and CRLs are immutable and, since `certs` decodes each input once, the same bytes are the same object.
Bounded: an entry keeps its object alive, so the bound is also the memory bound (about 11 KB per touched
certificate)."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ..identity_memo import IdentityMemo

MEMO_SIZE = 1024

_CERTS: IdentityMemo[bytes] = IdentityMemo(MEMO_SIZE)
_CRLS: IdentityMemo[bytes] = IdentityMemo(MEMO_SIZE // 16)


def cert_sha256(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER encoding (its fingerprint). Never raises for a loaded certificate."""
    return _CERTS.get(cert, None, lambda: cert.fingerprint(hashes.SHA256()))


def crl_sha256(crl: x509.CertificateRevocationList) -> bytes:
    """SHA-256 of the CRL's DER encoding. Never raises for a loaded CRL."""
    return _CRLS.get(crl, None, lambda: hashlib.sha256(crl.public_bytes(Encoding.DER)).digest())
