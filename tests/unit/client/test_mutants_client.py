"""Tests for mutants that survived scripts/mutation.py in verifier/client/results.py: the policy-mismatch text of
a result without a policy hash, and the JSON types of the trust vector and of `x-verifier.matched-labels`."""

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


def test_a_policy_mismatch_without_a_policy_hash_reads_no_sha256(signer: ResultSigner) -> None:
    payload = claims()
    payload["submods"]["nitro"].pop("x-verifier.policy-sha256", None)
    error = rejected("TOKEN_POLICY_NOT_ALLOWED", signer.sign(payload), signer.jwks(), allowed_policies={"strict"})
    assert error.actual == "default (no sha256)"


def test_a_policy_mismatch_with_a_policy_hash_shows_it(signer: ResultSigner) -> None:
    token = signer.sign(with_submod(**{"x-verifier.policy-sha256": "ab" * 32}))
    error = rejected("TOKEN_POLICY_NOT_ALLOWED", token, signer.jwks(), allowed_policies={"strict"})
    assert error.actual == f"default ({'ab' * 32})"


@pytest.mark.parametrize("value", ["2", 2.0, True, None, [2]])
def test_a_trust_vector_value_that_is_not_an_integer_is_malformed(signer: ResultSigner, value: Any) -> None:
    token = signer.sign(with_submod(**{"ear.trustworthiness-vector": {"executables": 2, "hardware": value}}))
    error = rejected("TOKEN_MALFORMED", token, signer.jwks())
    assert "trustworthiness-vector" in error.message


def test_an_integer_trust_vector_is_returned(signer: ResultSigner) -> None:
    token = signer.sign(with_submod(**{"ear.trustworthiness-vector": {"executables": 2, "hardware": 32}}))
    assert check(token, signer.jwks()).trust_vector == {"executables": 2, "hardware": 32}


@pytest.mark.parametrize("value", [["image v1", 3], [None], "image v1", {"image v1": 1}, 7])
def test_matched_labels_that_are_not_a_list_of_strings_are_malformed(signer: ResultSigner, value: Any) -> None:
    token = signer.sign(with_submod(**{"x-verifier.matched-labels": value}))
    error = rejected("TOKEN_MALFORMED", token, signer.jwks())
    assert "matched-labels" in error.message


def test_legacy_matched_labels_are_read(signer: ResultSigner) -> None:
    token = signer.sign(with_submod(**{"x-verifier.matched-labels": ["image v1", "base v3"]}))
    result = check(token, signer.jwks(), required_labels={"base v3"})
    assert result.matched_labels == ("image v1", "base v3")
