"""The relying party on composite results (issue 15): the evidence's submodule plus GPU components gpu0..gpu<N-1>,
each of the required status, the top-level status no better than the worst, and `min_gpus` counted."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.client.test_client_results import check, claims, rejected
from tests.unit.client.test_mutants_client_results import JWKS, sign_raw


def gpu(status: str = "affirming") -> dict[str, Any]:
    return {
        "ear_status": status,
        "ear_trustworthiness_vector": {"instance-identity": 2, "hardware": 2, "executables": 2},
        "ear_attester_claims": {"driver_version": "550.90.07"},
        "ear_verifier_claims": {"findings": [], "evidence_sha384": "ab" * 48},
    }


def composite(*statuses: str, top: str | None = "auto", names: tuple[str, ...] | None = None) -> dict[str, Any]:
    payload = copy.deepcopy(claims())
    for name, status in zip(names or tuple(f"gpu{i}" for i in range(len(statuses))), statuses, strict=True):
        payload["submods"][name] = gpu(status)
    if top == "auto":
        ranks = {"affirming": 3, "warning": 2, "contraindicated": 1, "none": 1}
        payload["ear_status"] = min(["affirming", *statuses], key=ranks.__getitem__)
    elif top is None:
        payload.pop("ear_status")
    else:
        payload["ear_status"] = top
    return payload


def test_components_are_read_in_order() -> None:
    result = check(sign_raw(composite("affirming", "affirming")), JWKS, min_gpus=2)
    assert result.tee == "nitro" and result.status == "affirming"
    assert [(c.name, c.status) for c in result.components] == [("gpu0", "affirming"), ("gpu1", "affirming")]
    assert result.components[1].claims == {"driver_version": "550.90.07"}
    assert result.components[0].verifier_claims["evidence_sha384"] == "ab" * 48
    assert check(sign_raw(claims()), JWKS).components == ()


def test_every_component_must_have_the_required_status() -> None:
    error = rejected("TOKEN_STATUS_INSUFFICIENT", sign_raw(composite("affirming", "contraindicated", top=None)), JWKS)
    assert error.message == "submodule gpu1 is not good enough"
    warned = sign_raw(composite("warning"))
    rejected("TOKEN_STATUS_INSUFFICIENT", warned, JWKS)
    assert check(warned, JWKS, required_status="warning").status == "warning"


def test_the_status_without_a_top_level_one_is_the_worst() -> None:
    result = check(sign_raw(composite("warning", top=None)), JWKS, required_status="warning")
    assert result.status == "warning" and result.submod_status == "affirming"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (composite("contraindicated", top="affirming"), "the top-level ear_status is better than a submodule's"),
        (composite("affirming", names=("gpu1",)), "the GPU components are not numbered gpu0..gpu<N-1>"),
        (composite("affirming", "affirming", names=("gpu0", "gpu2")), "the GPU components are not numbered"),
        (composite("affirming", names=("gpu00",)), "the result must have exactly one submodule besides"),
        (composite("affirming", names=("snp",)), "the result must have exactly one submodule besides"),
    ],
)
def test_malformed_composites(payload: dict[str, Any], message: str) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw(payload), JWKS, required_status="contraindicated")
    assert error.message.startswith(message)


def test_a_component_without_a_tier_is_malformed() -> None:
    payload = composite("affirming")
    payload["submods"]["gpu0"]["ear_status"] = ["affirming"]
    error = rejected("TOKEN_MALFORMED", sign_raw(payload), JWKS)
    assert error.message == "GPU component gpu0 has no EAR tier (ear_status)"


def test_min_gpus() -> None:
    token = sign_raw(composite("affirming"))
    assert len(check(token, JWKS, min_gpus=1).components) == 1
    error = rejected("TOKEN_GPUS_INSUFFICIENT", token, JWKS, min_gpus=2)
    assert (error.expected, error.actual) == (">= 2", "1")
    rejected("TOKEN_GPUS_INSUFFICIENT", sign_raw(claims()), JWKS, min_gpus=1)
    with pytest.raises(ValueError):
        check(token, JWKS, min_gpus=-1)
