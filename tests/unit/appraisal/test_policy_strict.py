"""Issue 9 item 5: built-in policies cannot be loosened from any path, and policy values keep their JSON types.

Before the fix `--policy-file` could redefine `default` with weakenings the database path refuses, and
`bool("false")` turned the JSON string "false" into True for boolean keys such as `crl_fail_open`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal.policy import Policy, PolicySet, SnpRules, TdxRules, policy_from_json, weakenings
from verifier.errors import ConfigError


def _file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps({"policies": list(entries)}))
    return path


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "default", "snp": {"crl_fail_open": True}},
        {"id": "default", "snp": {"allow_migrate_ma": True}},
        {"id": "default", "tdx": {"accepted_statuses": {"UpToDate": "affirming", "OutOfDate": "warning"}}},
        {"id": "default", "tdx": {"grace_days": 30}},
        {"id": "default", "report_data_binding": "raw"},
        {"id": "nonce-required", "require_nonce": False},
    ],
)
def test_policy_file_cannot_loosen_a_built_in(tmp_path: Path, entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        PolicySet.from_file(_file(tmp_path, entry))
    assert error.value.code == "POLICY_LOOSENS_BUILT_IN"


def test_policy_file_may_tighten_a_built_in(tmp_path: Path) -> None:
    entry = {"id": "default", "require_nonce": True, "snp": {"allowed_vmpls": [0]}}
    policy = PolicySet.from_file(_file(tmp_path, entry)).get(None)
    assert policy.require_nonce is True
    assert policy.snp.allowed_vmpls == (0,)


def test_code_built_policy_sets_follow_the_same_rule() -> None:
    with pytest.raises(ConfigError) as error:
        PolicySet({"default": Policy(snp=SnpRules(crl_fail_open=True))})
    assert error.value.code == "POLICY_LOOSENS_BUILT_IN"
    PolicySet({"lenient": Policy(policy_id="lenient", snp=SnpRules(crl_fail_open=True))})  # a new name is fine


def test_a_policy_id_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        PolicySet.from_file(_file(tmp_path, {"id": "a"}, {"id": "a", "require_nonce": True}))
    assert error.value.code == "POLICY_FILE_INVALID"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        (None, "require_nonce", "false"),
        (None, "require_nonce", "no"),
        (None, "require_nonce", 0),
        (None, "require_nonce", None),
        ("snp", "crl_fail_open", "false"),
        ("snp", "crl_fail_open", "no"),
        ("snp", "crl_fail_open", 1),
        ("snp", "allow_migrate_ma", "false"),
        ("snp", "allow_migrate_ma", []),
        ("tdx", "require_sept_ve_disable", "true"),
        ("snp", "minimum_build", "3"),
        ("snp", "minimum_build", 3.0),
        ("snp", "minimum_build", True),
        ("snp", "minimum_build", -1),
        ("snp", "minimum_tcb", {"snp": "22"}),
        ("snp", "minimum_tcb", {"snp": True}),
        ("snp", "minimum_firmware", ["1", "55"]),
        ("snp", "minimum_firmware", [1]),
        ("snp", "allowed_vmpls", "0"),
        ("snp", "allowed_vmpls", [True]),
        ("snp", "allowed_vmpls", [4]),
        ("snp", "allowed_chip_ids", ["zz"]),
        ("snp", "allowed_chip_ids", "00" * 64),
        ("snp", "max_collateral_age_hours", "24"),
        ("snp", "max_collateral_age_hours", 0),
        ("tdx", "grace_days", "30"),
        ("tdx", "grace_days", 1.5),
        ("tdx", "minimum_tcb_evaluation_data_number", "17"),
        ("tdx", "advisory_deny", "INTEL-SA-00837"),
        ("tdx", "advisory_allow", [1]),
        ("tdx", "allowed_mr_seams", ["00"]),
        (None, "required_kinds", {"snp": "snp.host_data"}),
        (None, "snp", []),
        (None, "tdx", "strict"),
    ],
)
def test_values_must_have_their_json_type(section: str | None, key: str, value: Any) -> None:
    entry: dict[str, Any] = {"id": "typed"}
    if section is None:
        entry[key] = value
    else:
        entry[section] = {key: value}
    with pytest.raises(ConfigError) as error:
        policy_from_json(entry)
    assert error.value.code == "POLICY_FILE_INVALID"


def test_json_booleans_and_integers_are_read_as_such() -> None:
    policy = policy_from_json(
        {
            "id": "typed",
            "require_nonce": False,
            "snp": {
                "crl_fail_open": False,
                "allow_migrate_ma": False,
                "minimum_build": 3,
                "minimum_tcb": {"snp": 22},
                "max_collateral_age_hours": 24,
            },
            "tdx": {"minimum_tcb_evaluation_data_number": 17, "max_collateral_age_hours": 12},
        }
    )
    assert policy.require_nonce is False
    assert policy.snp == SnpRules(
        crl_fail_open=False, minimum_build=3, minimum_tcb={"snp": 22}, max_collateral_age_hours=24
    )
    assert policy.tdx.minimum_tcb_evaluation_data_number == 17
    assert policy.tdx.max_collateral_age_hours == 12


def test_collateral_freshness_keys_only_tighten() -> None:
    base = Policy(
        snp=SnpRules(max_collateral_age_hours=24),
        tdx=TdxRules(minimum_tcb_evaluation_data_number=17, max_collateral_age_hours=24),
    )
    assert weakenings(base, Policy()) == []
    assert weakenings(Policy(), base) == [
        "snp: accepts older collateral",
        "tdx: lower minimum tcbEvaluationDataNumber",
        "tdx: accepts older collateral",
    ]
