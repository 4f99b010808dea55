"""One token, three independent JOSE libraries besides the project's own verifier.client: joserfc (the project's
JOSE dependency, used by the broker), jwcrypto and PyJWT each check the ES256 signature with the key the published
JWKS holds for the token's `kid`, and the explicit `typ` (RFC 8725 s3.11) of the header. Each returns the claims it
decoded; the caller compares them."""

from __future__ import annotations

import json
from typing import Any

import jwt as pyjwt
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

TYP = "eat+jwt"


def with_joserfc(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    decoded = joserfc_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])  # type: ignore[arg-type]
    assert decoded.header["typ"] == TYP and decoded.header["alg"] == "ES256"
    return dict(decoded.claims)


def with_jwcrypto(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    keys = jwcrypto_jwk.JWKSet.from_json(json.dumps(jwks))
    message = jwcrypto_jws.JWS()
    message.deserialize(token)
    header = message.jose_header
    key = keys.get_key(header["kid"])
    assert key is not None, "kid not in the JWKS"
    message.verify(key, alg="ES256")  # raises InvalidJWSSignature
    assert header["typ"] == TYP
    return dict(json.loads(message.payload))


def with_pyjwt(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == TYP
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}  # vector times are years back
    decoded = pyjwt.decode_complete(token, key.key, algorithms=["ES256"], options=options)  # type: ignore[arg-type]
    assert decoded["header"]["typ"] == TYP
    return dict(decoded["payload"])


def all_agree(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """The claims, after joserfc, jwcrypto and PyJWT each verified the token and decoded the same claims."""
    claims = with_joserfc(token, jwks)
    assert with_jwcrypto(token, jwks) == claims
    assert with_pyjwt(token, jwks) == claims
    return claims
