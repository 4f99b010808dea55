"""Compact JWS (RFC 7515 s7.1) signed ES256 (RFC 7518 s3.4, raw r||s) checked against a JWKS (RFC 7517): the
relying party's signature check of an attestation result, independent of the server's signer.

`alg` must be ES256, `typ` `eat+jwt` (explicit typing, RFC 8725 s3.11: the RFC 9782 media type application/eat+jwt,
compared case-insensitively, with or without "application/"; a plain `JWT` is another kind of token) and there must
be no `crit`; the key comes from the JWKS by `kid`, never from the token (`jwk`/`jku`/`x5u` headers are ignored). No
claim is checked here (verifier.client.claim_checks does that).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from verifier.client.jwks import JwksCache, find_key
from verifier.errors import EvidenceError

ALG = "ES256"
TYP = "eat+jwt"
COORDINATE = 32  # P-256 coordinate and signature-half size in bytes
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class ResultError(EvidenceError):
    """A rejected attestation result. `code` is stable (TOKEN_*); `expected`/`actual` say why, never a key."""


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 s2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def verify_jws(token: str, jwks: Mapping[str, Any] | JwksCache) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, payload) of an ES256 compact JWS (RFC 7515 s5.2, RFC 7518 s3.4) whose signature verifies with the
    key its `kid` names in `jwks`; no claim is checked here. Raises ResultError TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED,
    TOKEN_KID_UNKNOWN, TOKEN_KEY_INVALID or TOKEN_SIGNATURE_INVALID."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ResultError("TOKEN_MALFORMED", "a compact JWS has exactly three dot-separated parts")
    header = _json_object(parts[0], "header")
    if header.get("alg") != ALG:
        raise ResultError(
            "TOKEN_ALG_UNSUPPORTED", "only ES256 is accepted", expected=ALG, actual=str(header.get("alg"))[:32]
        )
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != TYP:
        raise ResultError("TOKEN_MALFORMED", f"the header's typ is not {TYP}", expected=TYP, actual=str(typ)[:32])
    if "crit" in header:
        raise ResultError("TOKEN_MALFORMED", "no critical header parameter is understood (RFC 7515 s4.1.11)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ResultError("TOKEN_KID_UNKNOWN", "the token has no kid")
    jwk = jwks.key_for(kid) if isinstance(jwks, JwksCache) else find_key(jwks, kid)
    if jwk is None:
        raise ResultError("TOKEN_KID_UNKNOWN", "the token's kid is not in the key set", actual=kid[:64])
    _b64decode(parts[1], "payload")  # charset first: the signing input must be ASCII (RFC 7515 s5.2)
    _check_signature(parts, _p256_key(jwk))
    claims = _json_object(parts[1], "payload")
    return header, claims


def _b64decode(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")  # RFC 7515 s5.2: reject rather than pick one
    return result


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment, what).decode("utf-8"), object_pairs_hook=_unique)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, duplicates, deep nesting
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise ResultError("TOKEN_MALFORMED", f"the {what} is not a JSON object")
    return value


def _p256_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """An EC P-256 signing key from its JWK (RFC 7518 s6.2.1); `alg`, `use` and `key_ops` (RFC 7517 s4.2-4.4),
    when present, must allow verifying ES256 signatures."""
    key_ops = jwk.get("key_ops", ["verify"])
    if (
        jwk.get("kty") != "EC"
        or jwk.get("crv") != "P-256"
        or jwk.get("alg", ALG) != ALG
        or jwk.get("use", "sig") != "sig"
        or not isinstance(key_ops, list)
        or "verify" not in key_ops
    ):
        raise ResultError("TOKEN_KEY_INVALID", "the key for this kid is not an ES256 signing key")
    coordinates = []
    for name in ("x", "y"):
        value = jwk.get(name)
        try:
            raw = _b64decode(value, "key") if isinstance(value, str) else b""
        except ResultError:
            raw = b""
        if len(raw) != COORDINATE:
            raise ResultError("TOKEN_KEY_INVALID", f"the JWK's {name} is not a 32-byte coordinate")
        coordinates.append(int.from_bytes(raw, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(coordinates[0], coordinates[1], ec.SECP256R1()).public_key()
    except ValueError:
        raise ResultError("TOKEN_KEY_INVALID", "the JWK's point is not on P-256") from None


def _check_signature(parts: list[str], key: ec.EllipticCurvePublicKey) -> None:
    signature = _b64decode(parts[2], "signature")
    if len(signature) != 2 * COORDINATE:
        raise ResultError(
            "TOKEN_SIGNATURE_INVALID",
            "an ES256 signature is 64 bytes (r||s)",
            expected="64",
            actual=str(len(signature)),
        )
    r, s = int.from_bytes(signature[:COORDINATE], "big"), int.from_bytes(signature[COORDINATE:], "big")
    try:
        key.verify(encode_dss_signature(r, s), f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ResultError("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify") from None
