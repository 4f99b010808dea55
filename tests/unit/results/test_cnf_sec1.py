"""Issue 14 item 6: a raw uncompressed SEC1 point (SEC 1 v2 s2.3.3, 0x04 || X || Y) is a key like its JWK or SPKI
form: it becomes a `cnf`, and a Nitro document whose NSM `public_key` is such a point can receive a secret."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import KeySet
from jwcrypto import jwe, jwk

from tests.service_helpers import make_harness
from verifier.broker.release import encrypt_to
from verifier.results.cnf import runtime_key_jwk
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database

RAW = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(
    ("curve", "size", "crv"),
    [(ec.SECP256R1(), 65, "P-256"), (ec.SECP384R1(), 97, "P-384"), (ec.SECP521R1(), 133, "P-521")],
)
def test_a_raw_point_gives_the_same_jwk_as_its_spki(curve: ec.EllipticCurve, size: int, crv: str) -> None:
    public = ec.generate_private_key(curve).public_key()
    raw = public.public_bytes(*RAW)
    assert len(raw) == size
    from_raw = runtime_key_jwk(raw)
    assert from_raw is not None and from_raw["crv"] == crv
    assert from_raw == runtime_key_jwk(public.public_bytes(*SPKI))


def test_points_that_are_not_keys_give_no_cnf() -> None:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    raw = bytearray(public.public_bytes(*RAW))
    raw[-1] ^= 1  # off the curve
    assert runtime_key_jwk(bytes(raw)) is None
    assert runtime_key_jwk(b"\x04" + bytes(64)) is None  # (0, 0) is not on P-256
    assert (
        runtime_key_jwk(public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint))
        is None
    )
    assert runtime_key_jwk(b"\x04" + bytes(63)) is None  # 64 bytes: no curve has that length
    assert runtime_key_jwk(b"\x05" + bytes(raw[1:])) is None  # not the uncompressed form


def test_a_nitro_document_binding_a_raw_point_can_receive_a_secret(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    private = ec.generate_private_key(ec.SECP256R1())
    point = private.public_key().public_bytes(*RAW)
    challenge = h.service.create_challenge()
    evidence = h.pki.mint(nonce=challenge.nonce, public_key=point)
    result = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=evidence, nonce=challenge.nonce, runtime_data=point),
        require_challenge=True,
    )
    keys = KeySet.import_key_set(h.service.jwks())  # type: ignore[arg-type]
    claims = dict(jwt.decode(result.token, keys, algorithms=["ES256"]).claims)
    assert claims["cnf"]["jwk"] == runtime_key_jwk(private.public_key().public_bytes(*SPKI))
    sealed = encrypt_to(claims["cnf"]["jwk"], b"the secret")
    holder = jwk.JWK.from_pem(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    opened = jwe.JWE()
    opened.deserialize(sealed, key=holder)
    assert opened.payload == b"the secret"
    # without runtime data the document's own public_key (the raw point) is the key vouched for
    plain = h.service.appraise(AppraisalRequest(tee="nitro", evidence=evidence))
    assert json.dumps(dict(jwt.decode(plain.token, keys, algorithms=["ES256"]).claims)["cnf"]) == json.dumps(
        claims["cnf"]
    )
