"""The strict JSON codec of appraisal policies (`verifier.appraisal.policy.policy_from_json`, since issue 12 the
pydantic models of `policy_model`) and the tighten-only rule's maximum-age comparison (`_longer`) against mutants
scripts/mutation.py left alive (issue 16).

A policy that parses when it should be refused is a policy an admin did not mean, so every check is pinned both
ways and exactly at its bounds: the largest (and smallest) accepted value parses to that value, the first value
past it is refused with POLICY_FILE_INVALID and the message names the offending key's path."""

from __future__ import annotations

from typing import Any

import pytest

from verifier.appraisal.policy import Policy, SnpRules, TdxRules, policy_from_json, weakenings
from verifier.errors import ConfigError

INT_MAX = 2**31 - 1
CHIP_HEX, SEAM_HEX = "ab" * 64, "0c" * 48


def _refused(entry: Any) -> ConfigError:
    with pytest.raises(ConfigError) as error:
        policy_from_json(entry)
    assert error.value.code == "POLICY_FILE_INVALID"
    return error.value


# --- the policy id ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({}, id="no-id"),
        pytest.param({"id": ""}, id="empty-id"),
        pytest.param({"id": 5}, id="integer-id"),
        pytest.param({"id": None}, id="null-id"),
        pytest.param({"id": ["p"]}, id="list-id"),
        pytest.param(["p"], id="entry-is-a-list"),
        pytest.param("p", id="entry-is-a-string"),
        pytest.param(None, id="entry-is-null"),
    ],
)
def test_a_policy_needs_a_non_empty_string_id(entry: Any) -> None:
    error = _refused(entry)
    assert error.message == "every policy needs a non-empty string 'id'"


def test_a_one_character_id_is_enough() -> None:
    assert policy_from_json({"id": "p"}).policy_id == "p"


# --- report_data_binding ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binding", ["sha256", "SHA512", "", None, True, 0], ids=repr)
def test_report_data_binding_other_than_sha512_or_raw_is_refused(binding: Any) -> None:
    error = _refused({"id": "p", "report_data_binding": binding})
    assert error.message == "p: report_data_binding must be sha512 or raw"


@pytest.mark.parametrize("binding", ["sha512", "raw"])
def test_report_data_binding_sha512_and_raw_parse(binding: str) -> None:
    assert policy_from_json({"id": "p", "report_data_binding": binding}).report_data_binding == binding


def test_report_data_binding_defaults_to_sha512() -> None:
    assert policy_from_json({"id": "p"}).report_data_binding == "sha512"


# --- tdx.accepted_statuses ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "tier"),
    [
        pytest.param("Bogus", "warning", id="unknown-status-valid-tier"),
        pytest.param("uptodate", "affirming", id="status-case-matters"),
        pytest.param("UpToDate", "trusted", id="known-status-unknown-tier"),
        pytest.param("OutOfDate", "contraindicated", id="known-status-contraindicated-tier"),
        pytest.param("Bogus", "trusted", id="both-unknown"),
    ],
)
def test_tdx_accepted_status_or_tier_outside_the_vocabulary_is_refused(status: str, tier: str) -> None:
    error = _refused({"id": "p", "tdx": {"accepted_statuses": {"UpToDate": "affirming", status: tier}}})
    assert error.message == f"p.tdx.accepted_statuses: {status} -> {tier}"


def test_tdx_accepted_statuses_within_the_vocabulary_parse() -> None:
    statuses = {"UpToDate": "affirming", "SWHardeningNeeded": "affirming", "OutOfDate": "warning"}
    assert policy_from_json({"id": "p", "tdx": {"accepted_statuses": statuses}}).tdx.accepted_statuses == statuses


# --- snp.tcb_fields -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [["bogus"], ["reported", "Committed"], ["reported", ""]], ids=repr)
def test_snp_tcb_fields_outside_the_vocabulary_are_refused(fields: list[str]) -> None:
    error = _refused({"id": "p", "snp": {"tcb_fields": fields}})
    assert error.message.startswith("p: tcb_fields are ")


def test_snp_tcb_fields_within_the_vocabulary_parse() -> None:
    fields = ["reported", "committed", "launch", "current"]
    assert policy_from_json({"id": "p", "snp": {"tcb_fields": fields}}).snp.tcb_fields == tuple(fields)


# --- single integers (bounded `int` fields): [minimum, maximum], JSON integers only -------------------------------

# (section, key, minimum, maximum, where the rules put it)
INT_KEYS = [
    pytest.param("tdx", "grace_days", 0, INT_MAX, id="tdx-grace-days"),
    pytest.param("tdx", "minimum_tcb_evaluation_data_number", 0, INT_MAX, id="tdx-min-tcb-eval-number"),
    pytest.param("tdx", "max_collateral_age_hours", 1, INT_MAX, id="tdx-max-collateral-age"),
    pytest.param("snp", "max_collateral_age_hours", 1, INT_MAX, id="snp-max-collateral-age"),
    pytest.param("snp", "minimum_build", 0, 255, id="snp-minimum-build"),
]


def _rules(policy: Policy, section: str) -> SnpRules | TdxRules:
    return policy.snp if section == "snp" else policy.tdx


@pytest.mark.parametrize(("section", "key", "low", "high"), INT_KEYS)
def test_int_bounds_are_accepted_exactly(section: str, key: str, low: int, high: int) -> None:
    for value in (low, high):
        policy = policy_from_json({"id": "p", section: {key: value}})
        assert getattr(_rules(policy, section), key) == value


@pytest.mark.parametrize(("section", "key", "low", "high"), INT_KEYS)
def test_int_just_outside_the_bounds_or_not_an_integer_is_refused(section: str, key: str, low: int, high: int) -> None:
    for value in (low - 1, high + 1, True, False, float(low), str(low), [low]):
        error = _refused({"id": "p", section: {key: value}})
        assert error.message.startswith(f"p.{section}.{key} must be a JSON integer {low}..{high}, not "), value


def test_int_absent_or_null_is_none() -> None:
    assert policy_from_json({"id": "p", "tdx": {"grace_days": None}}).tdx.grace_days is None
    assert policy_from_json({"id": "p"}).snp.minimum_build is None


@pytest.mark.parametrize("component", ["fmc", "bootloader", "tee", "snp", "microcode"])
def test_snp_minimum_tcb_svn_bounds(component: str) -> None:
    for value in (0, 1, 254, 255):
        policy = policy_from_json({"id": "p", "snp": {"minimum_tcb": {component: value}}})
        assert policy.snp.minimum_tcb == {component: value}
    for bad in (-1, 256, True, "22"):
        error = _refused({"id": "p", "snp": {"minimum_tcb": {component: bad}}})
        assert error.message.startswith(f"p.snp.minimum_tcb.{component} must be a JSON integer 0..255, not "), bad


# --- integer lists (tuples of bounded ints): every item in [0, maximum] -------------------------------------------


def test_snp_allowed_vmpls_bounds() -> None:
    assert policy_from_json({"id": "p", "snp": {"allowed_vmpls": [0, 1, 2, 3]}}).snp.allowed_vmpls == (0, 1, 2, 3)
    assert policy_from_json({"id": "p", "snp": {"allowed_vmpls": [3]}}).snp.allowed_vmpls == (3,)
    assert policy_from_json({"id": "p", "snp": {"allowed_vmpls": []}}).snp.allowed_vmpls == ()
    for bad in ([4], [0, 4], [-1], [True], [0, False], ["0"], 0, {"0": 0}):
        error = _refused({"id": "p", "snp": {"allowed_vmpls": bad}})
        assert error.message.startswith("p.snp.allowed_vmpls must be a list of JSON integers 0..3, not "), bad


def test_snp_minimum_firmware_bounds() -> None:
    assert policy_from_json({"id": "p", "snp": {"minimum_firmware": [255, 255]}}).snp.minimum_firmware == (255, 255)
    assert policy_from_json({"id": "p", "snp": {"minimum_firmware": [1, 0]}}).snp.minimum_firmware == (1, 0)
    for bad in ([256, 0], [1, 256], [-1, 0], [True, 0], [1, "0"]):
        error = _refused({"id": "p", "snp": {"minimum_firmware": bad}})
        assert error.message.startswith("p.snp.minimum_firmware must be a list of JSON integers 0..255, not "), bad
    for bad_length in ([1], [1, 2, 3]):
        error = _refused({"id": "p", "snp": {"minimum_firmware": bad_length}})
        assert error.message == "p.snp.minimum_firmware is [major, minor]"


# --- hex lists (`ChipId`, `MrSeam`): each item exactly `size` bytes -----------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "item", "size"),
    [
        pytest.param("snp", "allowed_chip_ids", CHIP_HEX, 64, id="snp-chip-ids"),
        pytest.param("tdx", "allowed_mr_seams", SEAM_HEX, 48, id="tdx-mr-seams"),
    ],
)
def test_hex_list_parses_every_item_and_refuses_wrong_lengths(section: str, key: str, item: str, size: int) -> None:
    other = "cd" * size
    policy = policy_from_json({"id": "p", section: {key: [item, other]}})
    assert getattr(_rules(policy, section), key) == (bytes.fromhex(item), bytes.fromhex(other))
    assert getattr(_rules(policy_from_json({"id": "p", section: {key: [item]}}), section), key) == (
        bytes.fromhex(item),
    )
    assert getattr(_rules(policy_from_json({"id": "p", section: {key: []}}), section), key) == ()
    for bad in (item[:-2], item + "00", item[:-1] + "g", item[:-1], ""):
        error = _refused({"id": "p", section: {key: [item, bad]}})
        assert error.message.startswith(f"p.{section}.{key} must be a list of {2 * size}-digit hex strings, not ")
    error = _refused({"id": "p", section: {key: [bytes.fromhex(item).hex(), 5]}})
    assert error.message.startswith(f"p.{section}.{key} must be a list of strings, not ")


# --- `_longer` via weakenings: a maximum age equal to the base's is not longer ------------------------------------


@pytest.mark.parametrize("section", ["snp", "tdx"])
def test_max_collateral_age_equal_to_the_base_is_not_a_weakening(section: str) -> None:
    def policy(hours: int | None) -> Policy:
        return policy_from_json({"id": "p", section: {"max_collateral_age_hours": hours}})

    assert weakenings(policy(24), policy(24)) == []
    assert weakenings(policy(23), policy(24)) == []
    assert weakenings(policy(1), policy(1)) == []
    assert weakenings(policy(25), policy(24)) == [f"{section}: accepts older collateral"]
    assert weakenings(policy(None), policy(24)) == [f"{section}: accepts older collateral"]
    assert weakenings(policy(INT_MAX), policy(INT_MAX)) == []
    assert weakenings(policy(24), policy(None)) == []
