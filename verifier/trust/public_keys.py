"""Public keys of certificates, decoded once per certificate object, and their encoded points, once per key object.

`cryptography` decodes a certificate's SubjectPublicKeyInfo into a new key object on every `public_key()` call and
encodes a key's point anew on every `public_bytes` (about 16 us for P-384), and every appraisal asks both of the same
few certificates (the signing key of a report or document; `signature_memo` keys its entries by the point).
Certificates are immutable and, since `certs` decodes each input once, the same bytes are the same object; a key
object is immutable too. Memoised by identity (`verifier.identity_memo`), bounded: an entry keeps its object alive."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..identity_memo import IdentityMemo

MEMO_SIZE = 1024

_KEYS: IdentityMemo[CertificatePublicKeyTypes] = IdentityMemo(MEMO_SIZE)
_POINTS: IdentityMemo[bytes] = IdentityMemo(MEMO_SIZE)


def public_key(cert: x509.Certificate) -> CertificatePublicKeyTypes:
    """`cert.public_key()`, one object per certificate object. Raises what `cryptography` raises for a key it
    cannot decode (every time: failures are not kept)."""
    return _KEYS.get(cert, None, cert.public_key)


def uncompressed_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """The key's uncompressed point (SEC 1 v2 section 2.3.3), once per key object. Never raises for a loaded key."""
    return _POINTS.get(key, None, lambda: key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint))
