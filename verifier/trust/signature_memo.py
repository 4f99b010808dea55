"""Signatures already verified, keyed by their content: the same (key, r, s, message) is checked once per process.

ECDSA verification (FIPS 186-5 section 6.4.2) is a pure function of the public key, the signature (r, s), the hash
algorithm and the message; its outcome never changes with time, a nonce or a revocation decision. So an outcome
that was *valid* can be remembered: the key of an entry is the curve, the key's uncompressed point (SEC 1 v2 section
2.3.3), the hash algorithm, r and s as fixed-length integers and the message's digest under that algorithm, which
is the very value the signature signs (the verification is done on that digest, `Prehashed`, so the message is
hashed once either way). A forgery would need a second message with the same SHA-256 or SHA-384 digest.

What is not kept, on purpose:
- invalid outcomes (an attacker could fill the memo with them, and a failure is no reason to be fast);
- anything else an appraisal decides: whether the key is trusted (its certificate chain, validity at the
  appraisal time, revocation) is decided by the callers on every appraisal, as before; a remembered signature only
  says that these bytes were signed by this key.

A malleated signature (r, n - s) is another entry, verified on its own (`verifier.trust.ecdsa`). Hits occur when the
same evidence comes again: a retry after an `UNAVAILABLE` answer, an appraisal evaluated again because the
reference set changed under it, a dry run over kept evidence, an attestation agent resending its cached report.
Bounded: `MAX_ENTRIES` entries of about 380 bytes each, 0.8 MB full (`verifier.trust.cert_cache.ContentCache`, least
recently used evicted first).
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from verifier.trust.cert_cache import CacheInfo, ContentCache
from verifier.trust.public_keys import uncompressed_point

MAX_ENTRIES = 2048
VERIFIED: ContentCache[bool] = ContentCache("verified signatures", max_entries=MAX_ENTRIES, max_bytes=1024 * 1024)

# The hash algorithms TEE signatures use, by `cryptography`'s name; any other is verified without the memo.
_DIGESTS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def verify_once(
    key: ec.EllipticCurvePublicKey, r: int, s: int, message: bytes, algorithm: hashes.HashAlgorithm, order: int
) -> bool:
    """Whether (r, s), already range-checked by the caller against the group `order`, is a valid ECDSA signature of
    `message` by `key` with `algorithm`; a signature found valid before is not verified again. Never raises for
    an invalid signature (False); other errors of `cryptography` propagate as they would from `key.verify`."""
    hasher = _DIGESTS.get(algorithm.name)
    if hasher is None:
        return _verify(key, encode_dss_signature(r, s), message, ec.ECDSA(algorithm))
    digest = hasher(message).digest()
    width = (order.bit_length() + 7) // 8
    point = uncompressed_point(key)
    entry = b"|".join((key.curve.name.encode(), point, algorithm.name.encode(), digest)) + (
        r.to_bytes(width, "big") + s.to_bytes(width, "big")
    )
    if VERIFIED.get(entry):
        return True
    if not _verify(key, encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(algorithm))):
        return False
    VERIFIED.put(entry, True)
    return True


def _verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes, scheme: ec.ECDSA) -> bool:
    try:
        key.verify(signature, data, scheme)
    except InvalidSignature:
        return False
    return True


def clear() -> None:
    """Forget every remembered signature (cold benchmarks, tests). Never raises."""
    VERIFIED.clear()


def info() -> CacheInfo:
    """Hits, misses and size of the memo. Never raises."""
    return VERIFIED.info()
