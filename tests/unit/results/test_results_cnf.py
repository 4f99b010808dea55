"""Runtime data -> RFC 7800 cnf JWK: JWK JSON or DER SPKI; private, symmetric, weak or garbage keys yield none."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from joserfc.jwk import ECKey, OKPKey, RSAKey

from verifier.results.cnf import runtime_key_jwk

SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: x25519.X25519PrivateKey.generate(),
        lambda: ed25519.Ed25519PrivateKey.generate(),
    ],
)
def test_der_and_jwk_forms_agree_with_an_independent_library(make) -> None:  # type: ignore[no-untyped-def]
    private = make()
    der = private.public_key().public_bytes(*SPKI)
    jwk = runtime_key_jwk(der)
    assert jwk is not None and "d" not in jwk
    imported = {"EC": ECKey, "RSA": RSAKey, "OKP": OKPKey}[jwk["kty"]].import_key(jwk)  # type: ignore[attr-defined]
    assert imported.as_dict(private=False) == {**jwk}
    again = runtime_key_jwk(json.dumps({**jwk, "kid": "k1", "use": "enc"}).encode())
    assert again == {**jwk, "kid": "k1", "use": "enc"}


def test_rejected_runtime_data() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    from joserfc.jwk import ECKey as K

    full = K.import_key(private).as_dict(private=True)
    assert runtime_key_jwk(json.dumps(full).encode()) is None  # a private key never becomes cnf
    assert runtime_key_jwk(json.dumps({"kty": "oct", "k": "AAAA"}).encode()) is None
    assert runtime_key_jwk(rsa.generate_private_key(65537, 1024).public_key().public_bytes(*SPKI)) is None
    assert runtime_key_jwk(b"not a key") is None
    assert runtime_key_jwk(b"{not json") is None
    assert runtime_key_jwk(json.dumps({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}).encode()) is None
    assert runtime_key_jwk(b"") is None and runtime_key_jwk(b"\x30" * 5000) is None
