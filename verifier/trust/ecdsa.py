"""ECDSA signatures that TEEs give as raw integers (r, s): one verification routine and the high-s decision.

ECDSA verification (FIPS 186-5 section 6.4.2; SEC 1 v2 section 4.1.4) accepts (r, s) and (r, n - s) alike, so
anyone can turn a valid signature into a second valid one over the same message ("malleability"). Ecosystems
that use a signature or its hash as an identifier require the low half, s <= n/2 (Bitcoin BIP 146, Ethereum
EIP-2). This verifier ACCEPTS high-s signatures, because

- no TEE specification requires low-s (AMD SEV-SNP Firmware ABI, "ECDSA signature format"; Intel TDX DCAP
  Quoting Library API, "ECDSA 256-bit Quote Signature Data Structure"; RFC 9053 section 2.1 for Nitro's ES384),
  and the hardware does not normalize s: of the 20 genuine signatures in the shared vectors (5 SNP reports,
  5 TDX quotes with their 5 QE reports, 4 Nitro documents) exactly 10 have s > n/2, among them the VCEK and VLEK
  reports, two TDX quotes, a QE report and two Nitro documents. Rejecting high-s would refuse genuine evidence;
- malleability gives an attacker nothing here: the malleated copy attests exactly the same signed bytes with the
  same key; the verifier never uses a signature as an identifier, and what it keys by content keys by the exact
  bytes (kept evidence by the SHA-256 of the bytes received, the memo of verified signatures,
  `verifier.trust.signature_memo`, by the exact (r, s)), so a malleated copy is another entry, verified and
  recorded as the different bytes it is; freshness comes from the nonce, and a challenge is consumed once, so a
  malleated copy of fresh evidence presented with its (consumed) challenge is CHALLENGE_REPLAYED.

Tests pin both halves: a malleated copy of every genuine signature verifies exactly like the original, and through
the service such a copy with an already-consumed nonce is refused.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from verifier.trust.signature_memo import verify_once

# Group orders n (SEC 2 v2 sections 2.4.2 and 2.5.1; FIPS 186-5 / SP 800-186 section 3.2.1).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P384_ORDER = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)
_ORDERS = {"secp256r1": P256_ORDER, "secp384r1": P384_ORDER}


def curve_order(curve: ec.EllipticCurve) -> int:
    """The group order n of P-256 or P-384; raises ValueError for any other curve."""
    try:
        return _ORDERS[curve.name]
    except KeyError:
        raise ValueError(f"no group order known for {curve.name}") from None


def is_high_s(s: int, order: int) -> bool:
    """True when s lies in the upper half, n/2 < s < n (the half that BIP 146 / EIP-2 style rules reject)."""
    return order // 2 < s < order


def complement(s: int, order: int) -> int:
    """n - s: the other valid s for the same (r, message, key); turns low-s into high-s and back."""
    return order - s


def verify_rs(key: ec.EllipticCurvePublicKey, r: int, s: int, message: bytes, algorithm: hashes.HashAlgorithm) -> bool:
    """Whether (r, s) is a valid ECDSA signature of `message` by `key` with `algorithm`.

    r and s must lie in [1, n-1] (FIPS 186-5 section 6.4.2 step 1); out-of-range values, including the oversize
    integers a 72-byte SNP field can hold, are invalid, never an exception. High-s is accepted (module docstring).
    A signature found valid before is not verified again (`verifier.trust.signature_memo`).
    """
    order = curve_order(key.curve)
    if not (0 < r < order and 0 < s < order):
        return False
    return verify_once(key, r, s, message, algorithm, order)
