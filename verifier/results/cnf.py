"""The workload's public key as an RFC 7800 `cnf` confirmation claim ({"jwk": ...}, RFC 7517 public members only).

`runtime_data` carries the key as JWK JSON, as DER SubjectPublicKeyInfo (RFC 5280 4.1.2.7) or as a raw uncompressed
SEC1 elliptic-curve point (SEC 1 v2 s2.3.3: 0x04 || X || Y; 65, 97 or 133 bytes for P-256, P-384, P-521, what an
enclave's `EC_POINT_point2oct` or WebCrypto's `exportKey("raw")` produces and what Nitro users put in the NSM
`public_key`). Only public
keys a relying party can encrypt to or verify with are accepted: EC P-256/P-384/P-521, RSA >= 2048 bits, X25519,
Ed25519. Anything else, including JSON nested deeper than a JWK, yields no `cnf` (the token then binds no key)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from .keys import b64url_encode

MAX_KEY_BYTES = 4096
MAX_JSON_DEPTH = 4  # a JWK is one object whose deepest member is an array of strings (key_ops)
_CURVES = {"secp256r1": ("P-256", 32), "secp384r1": ("P-384", 48), "secp521r1": ("P-521", 66)}
_EC_MEMBERS = {"kty", "crv", "x", "y", "kid", "use", "alg", "key_ops"}
_RSA_MEMBERS = {"kty", "n", "e", "kid", "use", "alg", "key_ops"}
_OKP_MEMBERS = {"kty", "crv", "x", "kid", "use", "alg", "key_ops"}
SEC1_UNCOMPRESSED = 0x04
_SEC1_CURVES: dict[int, ec.EllipticCurve] = {65: ec.SECP256R1(), 97: ec.SECP384R1(), 133: ec.SECP521R1()}


def runtime_key_jwk(runtime_data: bytes) -> dict[str, Any] | None:
    """The public JWK carried by `runtime_data`, or None when it is not an acceptable public key."""
    if not runtime_data or len(runtime_data) > MAX_KEY_BYTES:
        return None
    if runtime_data.lstrip()[:1] == b"{":
        return _from_json(runtime_data)
    if runtime_data[0] == SEC1_UNCOMPRESSED and len(runtime_data) in _SEC1_CURVES:
        return _from_sec1(runtime_data)
    try:
        key = serialization.load_der_public_key(runtime_data)
    except (ValueError, TypeError):
        return None
    return key_to_jwk(key)


def _from_sec1(point: bytes) -> dict[str, Any] | None:
    """The JWK of a raw uncompressed SEC1 point (length picks the curve), or None when the point is not on it
    (cryptography checks the curve equation; the point at infinity and compressed forms are refused)."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(_SEC1_CURVES[len(point)], point)
    except ValueError:
        return None
    return key_to_jwk(key)


def key_to_jwk(key: object) -> dict[str, Any] | None:
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        crv, size = _CURVES[key.curve.name]
        numbers = key.public_numbers()
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64url_encode(numbers.x.to_bytes(size, "big")),
            "y": b64url_encode(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        n, e = key.public_numbers().n, key.public_numbers().e
        return {
            "kty": "RSA",
            "n": b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big")),
            "e": b64url_encode(e.to_bytes((e.bit_length() + 7) // 8, "big")),
        }
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    if isinstance(key, x25519.X25519PublicKey):
        return {"kty": "OKP", "crv": "X25519", "x": b64url_encode(key.public_bytes(*raw))}
    if isinstance(key, ed25519.Ed25519PublicKey):
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(key.public_bytes(*raw))}
    return None


def json_depth_within(data: bytes, limit: int) -> bool:
    """Whether the arrays and objects of JSON text `data` nest at most `limit` deep (brackets inside strings do
    not count). Checked before json.loads, whose recursive decoder raises RecursionError on deep nesting."""
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return True


def _from_json(data: bytes) -> dict[str, Any] | None:
    """Re-derive the JWK from its key material (through cryptography), dropping anything but public members.
    JSON nested deeper than a JWK can be (MAX_JSON_DEPTH) is no key: None, and so no `cnf`."""
    if not json_depth_within(data, MAX_JSON_DEPTH):
        return None
    try:
        jwk = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(jwk, dict) or "d" in jwk or any(k in jwk for k in ("p", "q", "dp", "dq", "qi", "k")):
        return None  # a private or symmetric key must never travel as runtime data
    try:
        key = _load_jwk(jwk)
    except (KeyError, TypeError, ValueError):
        return None
    result = key_to_jwk(key) if key is not None else None
    if result is not None:
        allowed = {"EC": _EC_MEMBERS, "RSA": _RSA_MEMBERS, "OKP": _OKP_MEMBERS}[result["kty"]]
        result.update({k: v for k, v in jwk.items() if k in allowed and k in ("kid", "use", "alg", "key_ops")})
    return result


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("JWK members are base64url strings")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _load_jwk(jwk: dict[str, Any]) -> object | None:
    kty = jwk.get("kty")
    if kty == "EC":
        curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}[jwk["crv"]]
        x, y = int.from_bytes(_b64(jwk["x"]), "big"), int.from_bytes(_b64(jwk["y"]), "big")
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    if kty == "RSA":
        return rsa.RSAPublicNumbers(
            int.from_bytes(_b64(jwk["e"]), "big"), int.from_bytes(_b64(jwk["n"]), "big")
        ).public_key()
    if kty == "OKP" and jwk.get("crv") == "X25519":
        return x25519.X25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    return None
