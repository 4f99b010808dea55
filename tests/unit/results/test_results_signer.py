from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from verifier.errors import ConfigError, EvidenceError, UnavailableError
from verifier.results.ear import DEFAULT_LIFETIME, build_ear
from verifier.results.keys import SigningKey, ephemeral_key
from verifier.results.signer import ResultSigner

from .test_results_ear import ISSUED, make_appraisal


def _keyset(signer: ResultSigner) -> KeySet:
    return KeySet.import_key_set(signer.jwks())  # type: ignore[arg-type]


def _b64d(seg: str) -> bytes:
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def signer() -> ResultSigner:
    return ResultSigner([ephemeral_key(), ephemeral_key()])


@pytest.fixture
def claims() -> dict[str, object]:
    return build_ear(
        make_appraisal(),
        issuer="https://verifier.example",
        issued_at=ISSUED,
        lifetime=DEFAULT_LIFETIME,
        nonce=b"n" * 16,
        token_id="tok-1",
        verifier_build="test",
    )


def test_token_verifies_with_joserfc(signer: ResultSigner, claims: dict[str, object]) -> None:
    token = signer.sign(claims)
    decoded = jwt.decode(token, _keyset(signer), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "typ": "eat+jwt", "kid": signer.kid}
    assert decoded.claims == claims
    assert ResultSigner.verify(token, signer.jwks()) == claims


def test_signature_is_raw_r_s_and_unpadded(signer: ResultSigner, claims: dict[str, object]) -> None:
    token = signer.sign(claims)
    assert "=" not in token
    header, payload, sig = token.split(".")
    assert len(_b64d(sig)) == 64
    assert b" " not in _b64d(payload)
    assert json.loads(_b64d(header)) == {"alg": "ES256", "typ": "eat+jwt", "kid": signer.kid}


def test_payload_deterministic(signer: ResultSigner, claims: dict[str, object]) -> None:
    assert signer.sign(claims).split(".")[1] == signer.sign(dict(claims)).split(".")[1]


def test_tampered_payload_rejected(signer: ResultSigner, claims: dict[str, object]) -> None:
    header, _, sig = signer.sign(claims).split(".")
    forged = dict(claims, **{"ear_status": "affirming"})
    token = f"{header}.{_b64e(json.dumps(forged, separators=(',', ':')).encode())}.{sig}"
    with pytest.raises(JoseError):
        jwt.decode(token, _keyset(signer), algorithms=["ES256"])
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(token, signer.jwks())
    assert err.value.code == "TOKEN_SIGNATURE_INVALID"


def test_other_key_rejected(signer: ResultSigner, claims: dict[str, object]) -> None:
    other = ResultSigner([ephemeral_key()])
    token = other.sign(claims)
    with pytest.raises(JoseError):
        jwt.decode(token, _keyset(signer), algorithms=["ES256"])
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(token, signer.jwks())
    assert err.value.code == "TOKEN_KID_UNKNOWN"
    # Same kid claimed, other key's signature: still rejected.
    header = _b64e(json.dumps({"alg": "ES256", "typ": "eat+jwt", "kid": signer.kid}).encode())
    _, payload, sig = token.split(".")
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(f"{header}.{payload}.{sig}", signer.jwks())
    assert err.value.code == "TOKEN_SIGNATURE_INVALID"


def test_rotated_key_still_verifies() -> None:
    old, new = ephemeral_key(), ephemeral_key()
    token = ResultSigner([old]).sign({"iat": 1})
    rotated = ResultSigner([new, old])
    assert rotated.kid == new.kid
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [new.kid, old.kid]
    assert ResultSigner.verify(token, rotated.jwks()) == {"iat": 1}


def _h(header: object) -> str:
    return _b64e(json.dumps(header).encode())


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("a.b", "TOKEN_MALFORMED"),
        ("!!.e30.AA", "TOKEN_MALFORMED"),
        (_h([]) + ".e30.AA", "TOKEN_MALFORMED"),
        (_b64e(b'{"alg":"ES256","alg":"none"}') + ".e30.AA", "TOKEN_MALFORMED"),
        (_h({"alg": "none"}) + ".e30.", "TOKEN_ALG_UNSUPPORTED"),
        (_h({"alg": "HS256", "kid": "x"}) + ".e30.AA", "TOKEN_ALG_UNSUPPORTED"),
        (_h({"alg": "ES256", "crit": ["b64"]}) + ".e30.AA", "TOKEN_MALFORMED"),
        (_h({"alg": "ES256", "typ": "eat+jwt"}) + ".e30.AA", "TOKEN_KID_UNKNOWN"),
        (_h({"alg": "ES256"}) + ".e30.AA", "TOKEN_MALFORMED"),  # our tokens always say typ JWT
    ],
)
def test_malformed_tokens(signer: ResultSigner, token: str, code: str) -> None:
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(token, signer.jwks())
    assert err.value.code == code


def test_truncated_signature(signer: ResultSigner) -> None:
    token = signer.sign({"a": 1})
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(token[:-4], signer.jwks())
    assert err.value.code in {"TOKEN_SIGNATURE_INVALID", "TOKEN_MALFORMED"}


def test_verify_checks_exp_when_given_now(signer: ResultSigner, claims: dict[str, object]) -> None:
    token = signer.sign(claims)
    assert ResultSigner.verify(token, signer.jwks(), now=ISSUED + timedelta(minutes=1))
    with pytest.raises(EvidenceError) as err:
        ResultSigner.verify(token, signer.jwks(), now=ISSUED + timedelta(minutes=5))
    assert err.value.code == "TOKEN_EXPIRED"


def test_expired_active_key_refuses_to_sign(claims: dict[str, object]) -> None:
    key = ephemeral_key()
    expired = SigningKey(key.private_key, key.kid, not_after=ISSUED - timedelta(seconds=1))
    with pytest.raises(UnavailableError) as err:
        ResultSigner([expired]).sign(claims)
    assert err.value.code == "SIGNING_KEY_EXPIRED"
    valid = SigningKey(key.private_key, key.kid, not_after=datetime(2100, 1, 1, tzinfo=UTC))
    assert ResultSigner([valid]).sign(claims)


def test_needs_a_key_and_keeps_development_flag() -> None:
    with pytest.raises(ConfigError):
        ResultSigner([])
    assert ResultSigner([ephemeral_key()], development=True).development is True
