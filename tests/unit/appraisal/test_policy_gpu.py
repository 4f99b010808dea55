"""The policy key `gpu: {ocsp: "require" | "best-effort"}` (issue 15): "require" by default, strict like every
section (unknown keys, wrong types and other values refused), in the hash only when set to something else, so the
hash of every existing policy stays what it was."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.appraisal.test_policy_model import SHA256
from verifier.appraisal.policy import Policy, policy_from_json, policy_json_schema, policy_sha256, policy_to_json
from verifier.appraisal.policy_model import GpuRules
from verifier.errors import ConfigError


def test_require_is_the_default_and_leaves_the_hash_alone() -> None:
    assert Policy().gpu.ocsp == "require"
    assert "gpu" not in policy_to_json(Policy())
    assert policy_sha256(Policy()) == SHA256["code:default"]
    explicit = policy_from_json({"id": "default", "gpu": {"ocsp": "require"}})
    assert explicit == Policy() and policy_sha256(explicit) == SHA256["code:default"]
    assert policy_from_json({"id": "default", "gpu": None}) == Policy()  # null: the default, as for snp/tdx
    assert policy_from_json({"id": "default", "gpu": {}}) == Policy()


def test_best_effort_is_read_written_and_hashed() -> None:
    policy = policy_from_json({"id": "p", "gpu": {"ocsp": "best-effort"}})
    assert policy.gpu == GpuRules(ocsp="best-effort")
    body = policy_to_json(policy)
    assert body["gpu"] == {  # every key written, unset pins as null, like the other sections
        "ocsp": "best-effort",
        "allowed_driver_versions": None,
        "allowed_vbios_versions": None,
        "allowed_architectures": None,
    }
    assert policy_from_json(body) == policy
    assert policy_sha256(policy) != policy_sha256(policy_from_json({"id": "p"}))


@pytest.mark.parametrize(
    ("gpu", "message"),
    [
        ({"ocsp": "off"}, 'p.gpu.ocsp must be "require" or "best-effort"'),
        ({"ocsp": "Require"}, 'p.gpu.ocsp must be "require" or "best-effort"'),
        ({"ocsp": True}, 'p.gpu.ocsp must be "require" or "best-effort", not true'),
        ({"ocsp": None}, 'p.gpu.ocsp must be "require" or "best-effort", not null'),
        ({"ocsp": "require", "allow_hold": True}, "p.gpu: unknown keys ['allow_hold']"),
        ("best-effort", 'p.gpu must be a JSON object, not "best-effort"'),
        ([], "p.gpu must be a JSON object, not []"),
    ],
)
def test_anything_else_is_refused(gpu: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        policy_from_json({"id": "p", "gpu": gpu})
    assert error.value.code == "POLICY_FILE_INVALID" and error.value.message == message


def test_code_is_held_to_the_same_values() -> None:
    with pytest.raises(ConfigError) as error:
        GpuRules(ocsp="maybe")
    assert error.value.code == "POLICY_FILE_INVALID"
    assert Policy(gpu=GpuRules(ocsp="best-effort")).gpu.ocsp == "best-effort"


def test_the_schema_says_so() -> None:
    schema = policy_json_schema()
    assert schema["properties"]["gpu"] == {"$ref": "#/$defs/GpuRules"}
    definition = schema["$defs"]["GpuRules"]
    assert definition["additionalProperties"] is False
    assert definition["properties"]["ocsp"]["enum"] == ["require", "best-effort"]
    assert definition["properties"]["ocsp"]["default"] == "require"
    json.dumps(schema)
