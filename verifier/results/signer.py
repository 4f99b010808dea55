"""Compact JWS (RFC 7515 s7.1) signing of attestation results with ES256 (RFC 7518 s3.4).

The signature is the raw big-endian r||s pair (32+32 bytes), not DER. The header is explicitly typed (RFC 8725
s3.11): `typ` is `eat+jwt`, the media type application/eat+jwt that RFC 9782 registers for an EAT in a JWT (from which
draft-ietf-rats-ear-04 s5 derives the EAR media type; the draft still spells it application/eat-jwt, the name RFC 9782
replaced), without its "application/" prefix (RFC 7515 s4.1.9), so an EAR cannot pass for another kind of JWT
signed by the same key. `verify` exists for our CLI and tests; relying parties use any JOSE library with the JWKS
(RFC 7517 s5) from `jwks()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.clock import Clock
from verifier.errors import ConfigError, EvidenceError, UnavailableError
from verifier.results.keyring import KeyringWatcher
from verifier.results.keys import COORDINATE_SIZE, SigningKey, b64url_encode, claims_json, public_jwk

ALG = "ES256"
TYP = "eat+jwt"  # RFC 8725 s3.11 explicit typing; RFC 9782 application/eat+jwt
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_ES256 = ec.ECDSA(hashes.SHA256())  # stateless: one instance for every signature


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
    def from_keyring(
        cls, directory: Path, *, clock: Clock, reload_interval: timedelta = timedelta(seconds=5)
    ) -> ResultSigner:
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

    def sign(self, claims: Mapping[str, Any], *, payload: bytes | None = None) -> str:
        """Return `header.payload.signature` (RFC 7515 s7.1) over the JSON claims: `payload` when given, which must be
        `claims_json(claims)` (`verifier.results.ear.encode_ear` has it already: the claims are then not serialised
        a second time), else that serialisation made here.

        Refuses (UNAVAILABLE, SIGNING_KEY_EXPIRED) when the claims' `iat` is past the active key's `not_after`.
        """
        key = self._active()
        iat = claims.get("iat")
        if key.not_after is not None and isinstance(iat, int) and iat > key.not_after.timestamp():
            raise UnavailableError("SIGNING_KEY_EXPIRED", f"active signing key {key.kid} expired; rotate it")
        header = {"alg": ALG, "typ": TYP, "kid": key.kid}
        body = claims_json(dict(claims)) if payload is None else payload
        signing_input = f"{b64url_encode(claims_json(header))}.{b64url_encode(body)}"
        der = key.private_key.sign(signing_input.encode("ascii"), _ES256)
        r, s = decode_dss_signature(der)
        raw = r.to_bytes(COORDINATE_SIZE, "big") + s.to_bytes(COORDINATE_SIZE, "big")
        return f"{signing_input}.{b64url_encode(raw)}"

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 s5) of all keys' public halves, active first."""
        return {"keys": [public_jwk(k) for k in self._published()]}

    @staticmethod
    def verify(token: str, jwks: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        """Check an ES256 compact JWS against a JWKS and return its claims; with `now`, also `exp` and `nbf`.

        The JWS check is `verifier.client.results.verify_jws` (one implementation for relying parties and us).
        Raises EvidenceError TOKEN_MALFORMED, TOKEN_ALG_UNSUPPORTED, TOKEN_KID_UNKNOWN, TOKEN_KEY_INVALID,
        TOKEN_SIGNATURE_INVALID or TOKEN_EXPIRED.
        """
        from verifier.client.results import verify_jws

        _, claims = verify_jws(token, jwks)
        if now is not None:
            ts = now.timestamp()
            exp, nbf = claims.get("exp"), claims.get("nbf")
            if not isinstance(exp, int | float) or ts >= exp:
                raise EvidenceError("TOKEN_EXPIRED", "the token has expired or has no exp", actual=str(exp))
            if isinstance(nbf, int | float) and ts < nbf:
                raise EvidenceError("TOKEN_EXPIRED", "the token is not valid yet (nbf)", actual=str(nbf))
        return claims
