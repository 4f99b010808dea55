"""A correctly signed result whose status members are JSON arrays or objects (unhashable in Python) is refused as
TOKEN_MALFORMED, never a bare TypeError: `verify_result` documents that it raises ResultError only, and the broker
turned the TypeError into a 500 with the nonce spent (found while killing issue 16's mutants)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.client.test_client_results import claims, rejected
from tests.unit.client.test_mutants_client_results import JWKS, sign_raw, with_submod, with_verifier_claims

UNHASHABLE = [[], ["affirming"], {}, {"affirming": 1}]


@pytest.mark.parametrize("status", UNHASHABLE, ids=repr)
def test_a_top_level_status_that_is_an_array_or_object_is_malformed(status: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw({**claims(), "ear_status": status}), JWKS)
    assert error.message == "ear_status is not an EAR tier"


@pytest.mark.parametrize("status", UNHASHABLE, ids=repr)
def test_a_submodule_status_that_is_an_array_or_object_is_malformed(status: Any) -> None:
    error = rejected("TOKEN_MALFORMED", sign_raw(with_submod(**{"ear_status": status})), JWKS)
    assert error.message == "the submodule has no EAR tier (ear_status)"


@pytest.mark.parametrize("status", UNHASHABLE, ids=repr)
def test_a_workload_status_that_is_an_array_or_object_is_malformed(status: Any) -> None:
    workload = {"name": "app", "version": "1", "id": "app", "policy": "default", "status": status}
    error = rejected("TOKEN_MALFORMED", sign_raw(with_verifier_claims(workloads=[workload])), JWKS)
    assert error.message == "ear_verifier_claims.workloads is not a list of workload versions"
