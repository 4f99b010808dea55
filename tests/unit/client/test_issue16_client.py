"""Issue 16, items 11 and 12: verify_result reads the top-level `ear_status` (contraindicated at the top is refused
although the submodule says affirming), and the JWKS entry for the token's kid must be an ES256 signing key
(`alg` ES384 or `use` enc is refused as TOKEN_KEY_INVALID although the key itself verifies the signature)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.client.test_client_results import ISSUER, check, claims, rejected, signer
from verifier.results.signer import ResultSigner

__all__ = ["signer"]  # the fixture


def top_level(status: str) -> dict[str, Any]:
    payload = claims(labels=("app 1",))
    assert payload["ear_status"] == payload["submods"]["nitro"]["ear_status"] == "affirming"
    return {**payload, "ear_status": status}


@pytest.mark.parametrize("status", ["contraindicated", "none"])
@pytest.mark.parametrize("required", ["affirming", "warning"])
def test_a_bad_top_level_status_is_refused_although_the_submodule_affirms(
    signer: ResultSigner, status: str, required: str
) -> None:
    token = signer.sign(top_level(status))
    error = rejected(
        "TOKEN_STATUS_INSUFFICIENT",
        token,
        signer.jwks(),
        issuer=ISSUER,
        required_status=required,
        required_workload="app 1",
    )
    assert (error.expected, error.actual) == (required, status)


def test_a_warning_top_level_status_is_refused_where_affirming_is_required(signer: ResultSigner) -> None:
    token = signer.sign(top_level("warning"))
    rejected("TOKEN_STATUS_INSUFFICIENT", token, signer.jwks(), required_workload="app 1")
    assert check(token, signer.jwks(), required_status="warning", required_workload="app 1").status == "warning"


def with_key(jwks: dict[str, Any], **members: Any) -> dict[str, Any]:
    (key,) = jwks["keys"]
    return {"keys": [{**key, **members}]}


@pytest.mark.parametrize(
    "members",
    [{"alg": "ES384"}, {"alg": "none"}, {"use": "enc"}, {"alg": "ES256", "use": "enc"}, {"alg": "ES384", "use": "sig"}],
    ids=["alg-ES384", "alg-none", "use-enc", "ES256-use-enc", "ES384-use-sig"],
)
def test_a_jwks_entry_that_is_not_an_es256_signing_key_is_refused(
    signer: ResultSigner, members: dict[str, str]
) -> None:
    token = signer.sign(claims())
    assert check(token, signer.jwks()).status == "affirming"  # the published entry: alg ES256, use sig
    rejected("TOKEN_KEY_INVALID", token, with_key(signer.jwks(), **members))


def test_a_jwks_entry_without_alg_or_use_is_accepted(signer: ResultSigner) -> None:
    token = signer.sign(claims())
    bare = {"keys": [{k: v for k, v in key.items() if k not in ("alg", "use")} for key in signer.jwks()["keys"]]}
    assert check(token, bare).status == "affirming"


@pytest.mark.parametrize("key_ops", [["encrypt"], [], "verify", ["sign"]])
def test_a_jwks_entry_whose_key_ops_do_not_allow_verify_is_refused(signer: ResultSigner, key_ops: object) -> None:
    """RFC 7517 s4.3: a key whose `key_ops` do not include "verify" is not a signature-verification key."""
    token = signer.sign(claims())
    rejected("TOKEN_KEY_INVALID", token, with_key(signer.jwks(), key_ops=key_ops))
    assert check(token, with_key(signer.jwks(), key_ops=["verify"])).status == "affirming"
