"""Compact JWS (RFC 7515 s7.1) signing of attestation results with ES256 (RFC 7518 s3.4).

The signature is the raw big-endian r||s pair (32+32 bytes), not DER. `verify` exists for our CLI and tests;
relying parties use any JOSE library with the JWKS (RFC 7517 s5) from `jwks()`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from verifier.clock import Clock
from verifier.errors import ConfigError, EvidenceError, UnavailableError
from verifier.results.keyring import KeyringWatcher
from verifier.results.keys import COORDINATE_SIZE, SigningKey, b64url_encode, public_jwk

ALG = "ES256"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class ResultSigner:
    """Signs result claims with the first (active) key; publishes every key so rotated-out tokens still verify.

    Built `from_keyring`, the keys come from a keyring directory that is re-read when it changes: `sign` uses its
    current active key and `jwks` its currently published keys.
    """

    def __init__(self, keys: Sequence[SigningKey], *, development: bool = False) -> None:
        if not keys:
            raise ConfigError("SIGNING_KEY_MISSING", "ResultSigner needs at least one signing key")
        unique: dict[str, SigningKey] = {}
        for key in keys:
            unique.setdefault(key.kid, key)
        self._keys = tuple(unique.values())
        self._development = development
        self._keyring: KeyringWatcher | None = None

    @classmethod
    def from_keyring(cls, directory: Path, *, clock: Clock,
                     reload_interval: timedelta = timedelta(seconds=5)) -> ResultSigner:
        """A signer over a keyring directory, picking up `verifier keys rotate` within `reload_interval`."""
        watcher = KeyringWatcher(directory, clock=clock, reload_interval=reload_interval)
        signer = cls([watcher.active()])
        signer._keyring = watcher
        return signer

    def _active(self) -> SigningKey:
        return self._keys[0] if self._keyring is None else self._keyring.active()

    def _published(self) -> Sequence[SigningKey]:
        return self._keys if self._keyring is None else self._keyring.published()

    @property
    def kid(self) -> str:
        return self._active().kid

    @property
    def development(self) -> bool:
        return self._development

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return `header.payload.signature` (RFC 7515 s7.1) over the JSON claims.

        Refuses (UNAVAILABLE, SIGNING_KEY_EXPIRED) when the claims' `iat` is past the active key's `not_after`.
        """
        key = self._active()
        iat = claims.get("iat")
        if key.not_after is not None and isinstance(iat, int) and iat > key.not_after.timestamp():
            raise UnavailableError("SIGNING_KEY_EXPIRED", f"active signing key {key.kid} expired; rotate it")
        header = {"alg": ALG, "typ": "JWT", "kid": key.kid}
        signing_input = f"{b64url_encode(_json(header))}.{b64url_encode(_json(dict(claims)))}"
        der = key.private_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(COORDINATE_SIZE, "big") + s.to_bytes(COORDINATE_SIZE, "big")
        return f"{signing_input}.{b64url_encode(raw)}"

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 s5) of all keys' public halves, active first."""
        return {"keys": [public_jwk(k) for k in self._published()]}

    @staticmethod
    def verify(token: str, jwks: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        """Check an ES256 compact JWS against a JWKS and return its claims; with `now`, also `exp` and `nbf`.

        Raises EvidenceError TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED, TOKEN_KID_UNKNOWN, TOKEN_KEY_INVALID,
        TOKEN_SIGNATURE_INVALID or TOKEN_EXPIRED.
        """
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3:
            raise EvidenceError("TOKEN_MALFORMED", "a compact JWS has exactly three dot-separated parts")
        header = _decode_object(parts[0], "header")
        if header.get("alg") != ALG:
            raise EvidenceError("TOKEN_ALG_UNSUPPORTED", "only ES256 is accepted", expected=ALG,
                                actual=str(header.get("alg")))
        if "crit" in header:
            raise EvidenceError("TOKEN_MALFORMED", "no critical header parameter is understood (RFC 7515 s4.1.11)")
        kid = header.get("kid")
        keys = jwks.get("keys")
        keys = keys if isinstance(keys, list | tuple) else ()
        jwk = next((k for k in keys if isinstance(k, Mapping) and k.get("kid") == kid), None)
        if not isinstance(kid, str) or jwk is None:
            raise EvidenceError("TOKEN_KID_UNKNOWN", "the token's kid is not in the key set", actual=str(kid))
        public_key = _public_key(jwk)
        signature = _b64url_decode(parts[2], "signature")
        if len(signature) != 2 * COORDINATE_SIZE:
            raise EvidenceError("TOKEN_SIGNATURE_INVALID", "an ES256 signature is 64 bytes (r||s)",
                                expected="64", actual=str(len(signature)))
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            public_key.verify(der, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise EvidenceError("TOKEN_SIGNATURE_INVALID", "the token's signature does not verify") from None
        claims = _decode_object(parts[1], "payload")
        if now is not None:
            ts = now.timestamp()
            exp, nbf = claims.get("exp"), claims.get("nbf")
            if not isinstance(exp, int | float) or ts >= exp:
                raise EvidenceError("TOKEN_EXPIRED", "the token has expired or has no exp", actual=str(exp))
            if isinstance(nbf, int | float) and ts < nbf:
                raise EvidenceError("TOKEN_EXPIRED", "the token is not valid yet (nbf)", actual=str(nbf))
        return claims


def _b64url_decode(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise EvidenceError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise EvidenceError("TOKEN_MALFORMED", f"the {what} is not unpadded base64url") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _decode_object(segment: str, what: str) -> dict[str, Any]:
    raw = _b64url_decode(segment, what)
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        raise EvidenceError("TOKEN_MALFORMED", f"the {what} is not a JSON object") from None
    if not isinstance(value, dict):
        raise EvidenceError("TOKEN_MALFORMED", f"the {what} is not a JSON object")
    return value


def _public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    """An EC P-256 public key from its JWK (RFC 7518 s6.2.1); the point must be on the curve."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise EvidenceError("TOKEN_KEY_INVALID", "the key is not an EC P-256 JWK")
    coords = []
    for name in ("x", "y"):
        value = jwk.get(name)
        try:
            raw = _b64url_decode(value, "key") if isinstance(value, str) else b""
        except EvidenceError:
            raw = b""
        if len(raw) != COORDINATE_SIZE:
            raise EvidenceError("TOKEN_KEY_INVALID", f"the JWK's {name} is not a 32-byte base64url coordinate")
        coords.append(int.from_bytes(raw, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(coords[0], coords[1], ec.SECP256R1()).public_key()
    except ValueError:
        raise EvidenceError("TOKEN_KEY_INVALID", "the JWK's point is not on P-256") from None
