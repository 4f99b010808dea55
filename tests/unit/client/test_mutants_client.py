"""Tests for mutants that survived scripts/mutation.py in verifier/client/results.py: the policy-mismatch text of
a result without a policy hash, and the JSON types of the trust vector and of `ear_verifier_claims`; tokens of the
draft-fv-rats-ear era are refused (a clean break)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.client.test_client_results import check, claims, rejected, signer
from verifier.results.signer import ResultSigner

__all__ = ["signer"]  # the fixture


def with_submod(**members: Any) -> dict[str, Any]:
    payload = claims()
    payload["submods"]["nitro"].update(members)
    return payload


def with_verifier_claims(**members: Any) -> dict[str, Any]:
    payload = claims()
    payload["submods"]["nitro"]["ear_verifier_claims"].update(members)
    return payload


def test_a_policy_mismatch_without_a_policy_hash_reads_no_sha256(signer: ResultSigner) -> None:
    payload = claims()
    payload["submods"]["nitro"]["ear_verifier_claims"].pop("policy_sha256", None)
    error = rejected("TOKEN_POLICY_NOT_ALLOWED", signer.sign(payload), signer.jwks(), allowed_policies={"strict"})
    assert error.actual == "default (no sha256)"


def test_a_policy_mismatch_with_a_policy_hash_shows_it(signer: ResultSigner) -> None:
    token = signer.sign(with_verifier_claims(policy_sha256="ab" * 32))
    error = rejected("TOKEN_POLICY_NOT_ALLOWED", token, signer.jwks(), allowed_policies={"strict"})
    assert error.actual == f"default ({'ab' * 32})"


@pytest.mark.parametrize("value", ["2", 2.0, True, None, [2]])
def test_a_trust_vector_value_that_is_not_an_integer_is_malformed(signer: ResultSigner, value: Any) -> None:
    token = signer.sign(with_submod(**{"ear_trustworthiness_vector": {"executables": 2, "hardware": value}}))
    error = rejected("TOKEN_MALFORMED", token, signer.jwks())
    assert "ear_trustworthiness_vector" in error.message


def test_an_integer_trust_vector_is_returned(signer: ResultSigner) -> None:
    token = signer.sign(with_submod(**{"ear_trustworthiness_vector": {"executables": 2, "hardware": 32}}))
    assert check(token, signer.jwks()).trust_vector == {"executables": 2, "hardware": 32}


@pytest.mark.parametrize("value", [["image v1"], "image v1", 7, None])
def test_verifier_claims_that_are_not_a_map_are_malformed(signer: ResultSigner, value: Any) -> None:
    token = signer.sign(with_submod(ear_verifier_claims=value))
    error = rejected("TOKEN_MALFORMED", token, signer.jwks())
    assert error.message == "ear_verifier_claims is not a map"


def test_a_token_of_the_replaced_draft_is_refused(signer: ResultSigner) -> None:
    """draft-fv-rats-ear names (`ear.status`, `x-verifier.*`, profile tag:github.com,2023:veraison/ear): no reading
    for one more release, the profile says at once what it is."""
    old = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        **{k: v for k, v in claims().items() if k not in ("eat_profile", "submods", "ear_status")},
        "ear.status": "affirming",
        "submods": {"nitro": {"ear.status": "affirming", "x-verifier.workloads": []}},
    }
    error = rejected("TOKEN_MALFORMED", signer.sign(old), signer.jwks())
    assert (error.expected, error.actual) == ("tag:ietf.org,2026:rats/ear#04", "tag:github.com,2023:veraison/ear")
    unprofiled = {k: v for k, v in claims().items() if k != "eat_profile"}
    assert rejected("TOKEN_MALFORMED", signer.sign(unprofiled), signer.jwks()).actual == "None"
