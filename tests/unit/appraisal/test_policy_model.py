"""Golden values of the policy codec (issue 12 item 3): `policy_to_json`, its canonical JSON and `policy_sha256` of
the built-in policies, of code-built policies and of rich file policies were pinned on the hand-written codec before
the strict pydantic models replaced it. The hash is in every result token and beside every database row, so it must
stay byte-identical; a database row written before (the canonical JSON below) must still read back as the same
policy."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, fields, replace
from typing import Any

import pytest

from verifier.appraisal.policy import (
    DEFAULT_POLICY_ID,
    Policy,
    PolicySet,
    SnpRules,
    TdxRules,
    canonical_json,
    get_policy,
    policy_from_json,
    policy_json_schema,
    policy_sha256,
    policy_to_json,
    weakenings,
)
from verifier.errors import ConfigError

FILE_POLICIES: dict[str, dict[str, Any]] = {
    "full": {
        "id": "strict",
        "require_nonce": True,
        "required_kinds": {"nitro": ["nitro.pcr8"]},
        "snp": {
            "minimum_tcb": {"snp": 20, "microcode": 200},
            "tcb_fields": ["reported", "committed"],
            "allowed_vmpls": [0],
            "minimum_firmware": [1, 55],
            "minimum_build": 3,
            "allowed_chip_ids": ["ab" * 64],
        },
        "tdx": {
            "accepted_statuses": {"UpToDate": "affirming"},
            "advisory_deny": ["INTEL-SA-00837"],
            "allowed_mr_seams": ["cd" * 48],
        },
    },
    # README "Policies" (its CHIP_ID placeholder filled in)
    "readme": {
        "id": "prod-snp",
        "require_nonce": True,
        "report_data_binding": "sha512",
        "required_kinds": {"snp": ["snp.host_data"]},
        "snp": {
            "minimum_tcb": {"bootloader": 4, "tee": 0, "snp": 22, "microcode": 213},
            "tcb_fields": ["reported", "committed"],
            "allowed_vmpls": [0],
            "minimum_firmware": [1, 55],
            "minimum_build": 3,
            "allowed_chip_ids": ["01" * 64],
            "allow_migrate_ma": False,
            "crl_fail_open": False,
            "max_collateral_age_hours": 48,
        },
        "tdx": {"minimum_tcb_evaluation_data_number": 17, "max_collateral_age_hours": 48},
    },
    # every TDX key, upper-case hex (stored lower-case), a repeated VMPL, an empty allow-list, bounds
    "tdx-rich": {
        "id": "tdx-prod",
        "report_data_binding": "raw",
        "required_kinds": {"tdx": ["tdx.rtmr0", "tdx.mr_td", "tdx.rtmr1"], "nitro": []},
        "snp": {
            "allow_migrate_ma": True,
            "crl_fail_open": True,
            "allowed_vmpls": [3, 0, 3],
            "allowed_chip_ids": [],
            "minimum_tcb": {"fmc": 0, "tee": 255},
            "tcb_fields": ["current", "launch"],
        },
        "tdx": {
            "accepted_statuses": {
                "UpToDate": "affirming",
                "SWHardeningNeeded": "affirming",
                "OutOfDate": "warning",
                "TDRelaunchAdvised": "warning",
            },
            "advisory_allow": ["INTEL-SA-00615", "INTEL-SA-00837"],
            "advisory_deny": ["INTEL-SA-00999"],
            "grace_days": 30,
            "require_sept_ve_disable": True,
            "allowed_mr_seams": ["CC" * 48, "0a" * 48],
            "minimum_tcb_evaluation_data_number": 2**31 - 1,
            "max_collateral_age_hours": 1,
        },
    },
    # null (and an empty tcb_fields) read as the default, as the hand-written codec read them (a null SVN, which it
    # read as 0, is refused by the strict model: test_a_null_svn_is_refused)
    "nulls": {
        "id": "nulls",
        "required_kinds": None,
        "snp": {
            "minimum_tcb": {"snp": 0},
            "tcb_fields": [],
            "allowed_vmpls": None,
            "minimum_firmware": None,
            "minimum_build": None,
            "allowed_chip_ids": None,
            "max_collateral_age_hours": None,
        },
        "tdx": {
            "accepted_statuses": None,
            "advisory_allow": None,
            "advisory_deny": None,
            "grace_days": None,
            "allowed_mr_seams": None,
            "minimum_tcb_evaluation_data_number": None,
            "max_collateral_age_hours": None,
        },
    },
    "sections-null": {"id": "sections-null", "snp": None, "tdx": None, "require_nonce": False},
    "minimal": {"id": "p"},
}

CODE_POLICIES: dict[str, Policy] = {
    "code:default": Policy(),
    "code:nonce-required": Policy(policy_id="nonce-required", require_nonce=True),
    # what only code can build: debug allowed, nothing required, SEPT_VE_DISABLE not required
    "code:debug": Policy(
        policy_id="debug",
        allow_debug=True,
        required_kinds={},
        report_data_binding="raw",
        snp=SnpRules(minimum_firmware=(1, 0), allowed_chip_ids=(b"\x01" * 64,)),
        tdx=TdxRules(require_sept_ve_disable=False, accepted_statuses={"UpToDate": "warning"}, allowed_mr_seams=()),
    ),
}

# name -> canonical JSON of policy_to_json (what the database stored, what policy_sha256 hashes), pinned on the
# hand-written codec before the pydantic models replaced it
CANONICAL: dict[str, str] = {
    "full": (
        '{"id":"strict","report_data_binding":"sha512","require_nonce":true,"required_kinds":{"nitro":["nitro'
        '.pcr0","nitro.pcr1","nitro.pcr2","nitro.pcr8"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":'
        '{"allow_migrate_ma":false,"allowed_chip_ids":["ababababababababababababababababababababababababababa'
        'bababababababababababababababababababababababababababababababababababababab"],"allowed_vmpls":[0],"c'
        'rl_fail_open":false,"max_collateral_age_hours":null,"minimum_build":3,"minimum_firmware":[1,55],"min'
        'imum_tcb":{"microcode":200,"snp":20},"tcb_fields":["reported","committed"]},"tdx":{"accepted_statuse'
        's":{"UpToDate":"affirming"},"advisory_allow":null,"advisory_deny":["INTEL-SA-00837"],"allowed_mr_sea'
        'ms":["cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd'
        'cd"],"grace_days":null,"max_collateral_age_hours":null,"minimum_tcb_evaluation_data_number":null,"re'
        'quire_sept_ve_disable":true}}'
    ),
    "readme": (
        '{"id":"prod-snp","report_data_binding":"sha512","require_nonce":true,"required_kinds":{"nitro":["nit'
        'ro.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement","snp.host_data"],"tdx":["tdx.mr_td"]},"'
        'snp":{"allow_migrate_ma":false,"allowed_chip_ids":["010101010101010101010101010101010101010101010101'
        '01010101010101010101010101010101010101010101010101010101010101010101010101010101"],"allowed_vmpls":['
        '0],"crl_fail_open":false,"max_collateral_age_hours":48,"minimum_build":3,"minimum_firmware":[1,55],"'
        'minimum_tcb":{"bootloader":4,"microcode":213,"snp":22,"tee":0},"tcb_fields":["reported","committed"]'
        '},"tdx":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory_allow"'
        ':null,"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours":48,"mi'
        'nimum_tcb_evaluation_data_number":17,"require_sept_ve_disable":true}}'
    ),
    "tdx-rich": (
        '{"id":"tdx-prod","report_data_binding":"raw","require_nonce":false,"required_kinds":{"nitro":["nitro'
        '.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td","tdx.rtmr0","tdx.rtmr'
        '1"]},"snp":{"allow_migrate_ma":true,"allowed_chip_ids":[],"allowed_vmpls":[3,0,3],"crl_fail_open":tr'
        'ue,"max_collateral_age_hours":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{"fmc"'
        ':0,"tee":255},"tcb_fields":["current","launch"]},"tdx":{"accepted_statuses":{"OutOfDate":"warning","'
        'SWHardeningNeeded":"affirming","TDRelaunchAdvised":"warning","UpToDate":"affirming"},"advisory_allow'
        '":["INTEL-SA-00615","INTEL-SA-00837"],"advisory_deny":["INTEL-SA-00999"],"allowed_mr_seams":["cccccc'
        'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","0a0a0a0'
        'a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"],"grace_d'
        'ays":30,"max_collateral_age_hours":1,"minimum_tcb_evaluation_data_number":2147483647,"require_sept_v'
        'e_disable":true}}'
    ),
    "nulls": (
        '{"id":"nulls","report_data_binding":"sha512","require_nonce":false,"required_kinds":{"nitro":["nitro'
        '.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":{"allow_migra'
        'te_ma":false,"allowed_chip_ids":null,"allowed_vmpls":null,"crl_fail_open":false,"max_collateral_age_'
        'hours":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{"snp":0},"tcb_fields":["repo'
        'rted"]},"tdx":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory_'
        'allow":null,"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours":'
        'null,"minimum_tcb_evaluation_data_number":null,"require_sept_ve_disable":true}}'
    ),
    "sections-null": (
        '{"id":"sections-null","report_data_binding":"sha512","require_nonce":false,"required_kinds":{"nitro"'
        ':["nitro.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":{"all'
        'ow_migrate_ma":false,"allowed_chip_ids":null,"allowed_vmpls":null,"crl_fail_open":false,"max_collate'
        'ral_age_hours":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{},"tcb_fields":["rep'
        'orted"]},"tdx":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory'
        '_allow":null,"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours"'
        ':null,"minimum_tcb_evaluation_data_number":null,"require_sept_ve_disable":true}}'
    ),
    "minimal": (
        '{"id":"p","report_data_binding":"sha512","require_nonce":false,"required_kinds":{"nitro":["nitro.pcr'
        '0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":{"allow_migrate_m'
        'a":false,"allowed_chip_ids":null,"allowed_vmpls":null,"crl_fail_open":false,"max_collateral_age_hour'
        's":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{},"tcb_fields":["reported"]},"td'
        'x":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory_allow":null'
        ',"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours":null,"minim'
        'um_tcb_evaluation_data_number":null,"require_sept_ve_disable":true}}'
    ),
    "code:default": (
        '{"id":"default","report_data_binding":"sha512","require_nonce":false,"required_kinds":{"nitro":["nit'
        'ro.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":{"allow_mig'
        'rate_ma":false,"allowed_chip_ids":null,"allowed_vmpls":null,"crl_fail_open":false,"max_collateral_ag'
        'e_hours":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{},"tcb_fields":["reported"'
        ']},"tdx":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory_allow'
        '":null,"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours":null,'
        '"minimum_tcb_evaluation_data_number":null,"require_sept_ve_disable":true}}'
    ),
    "code:nonce-required": (
        '{"id":"nonce-required","report_data_binding":"sha512","require_nonce":true,"required_kinds":{"nitro"'
        ':["nitro.pcr0","nitro.pcr1","nitro.pcr2"],"snp":["snp.measurement"],"tdx":["tdx.mr_td"]},"snp":{"all'
        'ow_migrate_ma":false,"allowed_chip_ids":null,"allowed_vmpls":null,"crl_fail_open":false,"max_collate'
        'ral_age_hours":null,"minimum_build":null,"minimum_firmware":null,"minimum_tcb":{},"tcb_fields":["rep'
        'orted"]},"tdx":{"accepted_statuses":{"SWHardeningNeeded":"warning","UpToDate":"affirming"},"advisory'
        '_allow":null,"advisory_deny":[],"allowed_mr_seams":null,"grace_days":null,"max_collateral_age_hours"'
        ':null,"minimum_tcb_evaluation_data_number":null,"require_sept_ve_disable":true}}'
    ),
    "code:debug": (
        '{"allow_debug":true,"id":"debug","report_data_binding":"raw","require_nonce":false,"required_kinds":'
        '{},"snp":{"allow_migrate_ma":false,"allowed_chip_ids":["01010101010101010101010101010101010101010101'
        '010101010101010101010101010101010101010101010101010101010101010101010101010101010101"],"allowed_vmpl'
        's":null,"crl_fail_open":false,"max_collateral_age_hours":null,"minimum_build":null,"minimum_firmware'
        '":[1,0],"minimum_tcb":{},"tcb_fields":["reported"]},"tdx":{"accepted_statuses":{"UpToDate":"warning"'
        '},"advisory_allow":null,"advisory_deny":[],"allowed_mr_seams":[],"grace_days":null,"max_collateral_a'
        'ge_hours":null,"minimum_tcb_evaluation_data_number":null,"require_sept_ve_disable":false}}'
    ),
}
SHA256: dict[str, str] = {
    "full": "577cb46e3abe2dcade702de11af15568aab75e144e63b087cfdb734f10ca835a",
    "readme": "303ac71cb7966a0fdb8d82dd3a5f70609d86cf204aca6ea5f4144459026eb77a",
    "tdx-rich": "0c75bbcacba2fa42d1aa41b2b05e443b4a8ea279e1c75f010d2d10982ddc05aa",
    "nulls": "fa7a81464bdec1950480f900e9f1f1078dfecc1c01d10f25daf26efd2f25a86d",
    "sections-null": "d13f02a3482b5962586094c43ac32f64b5e36c6d99d1b0f51bbcb1f4872e0d52",
    "minimal": "06a7528c3dc6b1e4d2ee8fc7365972a52a51b7666f76c3bcd2c749ee38144b5d",
    "code:default": "bde5a58f266786e46504854faefa8c35e9d16754a9ddccee11e1ed42ddbf0cb5",
    "code:nonce-required": "e98754f59e5e3eb755da293f0c6d1449a124abc5bf2e9282a404f3c346c1cc5d",
    "code:debug": "14f0664656b0140d8253caa7af9fd3231122f73f98f829eb9ee22e63f795ee3d",
}


def _policy(name: str) -> Policy:
    return CODE_POLICIES[name] if name in CODE_POLICIES else policy_from_json(FILE_POLICIES[name])


@pytest.mark.parametrize("name", list(CANONICAL))
def test_policy_to_json_and_its_hash_are_unchanged(name: str) -> None:
    policy = _policy(name)
    assert canonical_json(policy_to_json(policy)) == CANONICAL[name]
    assert policy_to_json(policy) == json.loads(CANONICAL[name])
    assert policy_sha256(policy) == SHA256[name]


def test_the_built_in_policies_are_pinned() -> None:
    assert policy_sha256(get_policy(None)) == policy_sha256(get_policy(DEFAULT_POLICY_ID)) == SHA256["code:default"]
    assert policy_sha256(get_policy("nonce-required")) == SHA256["code:nonce-required"]
    assert get_policy("nonce-required") == CODE_POLICIES["code:nonce-required"]
    assert PolicySet().names() == ["default", "nonce-required"]


@pytest.mark.parametrize("name", [n for n in CANONICAL if n != "code:debug"])
def test_what_was_stored_before_reads_back_as_the_same_policy(name: str) -> None:
    """A database row (or an audit body) holds policy_to_json's output: it reads back to the same policy and hash."""
    stored = json.loads(CANONICAL[name])
    policy = policy_from_json(stored)
    assert policy == _policy(name)
    assert policy_from_json(policy_to_json(policy)) == policy
    assert policy_sha256(policy) == SHA256[name]


def test_allow_debug_is_in_the_hash_but_never_read_from_json() -> None:
    """Only code builds a debug-allowing policy; its JSON says so (so the hash differs) but is not a valid body."""
    body = json.loads(CANONICAL["code:debug"])
    assert body["allow_debug"] is True
    assert policy_sha256(CODE_POLICIES["code:debug"]) != policy_sha256(Policy(policy_id="debug"))
    with pytest.raises(ConfigError) as error:
        policy_from_json({"id": "debug", "allow_debug": True})
    assert error.value.code == "POLICY_FILE_INVALID"
    assert error.value.message == "debug: unknown keys ['allow_debug']"


# --- the model: declared once, strict from code as from JSON ----------------------------------------------------


def test_every_json_key_is_a_model_field_and_the_schema_says_so() -> None:
    """The JSON form is generated from the model fields (no hand-copied key list): policy_to_json's keys, the JSON
    Schema's properties and the dataclass fields agree at every level, and the schema refuses unknown keys."""
    body = policy_to_json(Policy())
    schema = policy_json_schema()
    assert "gpu" not in body  # written only when not the default, so no existing hash changed (test_policy_gpu.py)
    assert (
        set(schema["properties"])
        == set(body) | {"gpu"}
        == {f.name for f in fields(Policy)} - {"policy_id", "allow_debug"} | {"id"}
    )
    assert schema["required"] == ["id"] and schema["additionalProperties"] is False
    for section, model in (("snp", SnpRules), ("tdx", TdxRules)):
        definition = schema["$defs"][model.__name__]
        assert set(definition["properties"]) == set(body[section]) == {f.name for f in fields(model)}
        assert definition["additionalProperties"] is False
    assert "allow_debug" not in json.dumps(schema)


def test_dataclasses_replace_keeps_working_and_validates() -> None:
    """service.py widens a policy's required kinds with dataclasses.replace; the result is validated like any
    constructor call."""
    policy = replace(Policy(), required_kinds={**Policy().required_kinds, "snp": ("snp.measurement", "snp.host_data")})
    assert policy.required("snp") == ("snp.measurement", "snp.host_data") and policy.required("tdx") == ("tdx.mr_td",)
    with pytest.raises(ConfigError) as error:
        replace(Policy(), require_nonce="yes")  # type: ignore[arg-type]
    assert error.value.code == "POLICY_FILE_INVALID"
    assert error.value.message == "Policy.require_nonce: Input should be a valid boolean"


def test_policies_are_frozen() -> None:
    policy = Policy()
    with pytest.raises(FrozenInstanceError):
        policy.require_nonce = True  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        policy.snp.crl_fail_open = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: SnpRules(allowed_vmpls=(4,)),
            "SnpRules.allowed_vmpls: Input should be less than or equal to 3",
            id="vmpl",
        ),
        pytest.param(
            lambda: SnpRules(allowed_vmpls=[0]),  # type: ignore[arg-type]
            "SnpRules.allowed_vmpls: Input should be a valid tuple",
            id="list-not-tuple",
        ),
        pytest.param(
            lambda: SnpRules(minimum_build=True),
            "SnpRules.minimum_build: Input should be a valid integer",
            id="bool-int",
        ),
        pytest.param(lambda: SnpRules(minimum_tcb={"cpu": 1}), "SnpRules: TCB components are", id="component"),
        pytest.param(lambda: SnpRules(tcb_fields=("bogus",)), "SnpRules: tcb_fields are", id="tcb-field"),
        pytest.param(
            lambda: SnpRules(allowed_chip_ids=(b"\x00" * 63,)),
            "SnpRules.allowed_chip_ids: Data should have at least 64 bytes",
            id="chip-size",
        ),
        pytest.param(
            lambda: SnpRules(allowed_chip_ids=("00" * 64,)),  # type: ignore[arg-type]
            "SnpRules.allowed_chip_ids: Input should be a valid bytes",
            id="chip-str",
        ),
        pytest.param(
            lambda: TdxRules(accepted_statuses={"Revoked": "warning"}),
            "TdxRules: a Revoked TCB can never be accepted",
            id="revoked",
        ),
        pytest.param(
            lambda: TdxRules(accepted_statuses={"OutOfDate": "affirming"}),
            "TdxRules: OutOfDate can at most be a warning",
            id="affirm",
        ),
        pytest.param(
            lambda: TdxRules(max_collateral_age_hours=0),
            "TdxRules.max_collateral_age_hours: Input should be greater than or equal to 1",
            id="hours",
        ),
        pytest.param(
            lambda: Policy(report_data_binding="sha256"),
            "Policy: report_data_binding must be sha512 or raw",
            id="binding",
        ),
        pytest.param(
            lambda: Policy(policy_id=""), "Policy.policy_id: String should have at least 1 character", id="empty-id"
        ),
        pytest.param(
            lambda: Policy(snp={}),  # type: ignore[arg-type]
            "Policy.snp: Input should be an instance of SnpRules",
            id="section-dict",
        ),
        pytest.param(
            lambda: Policy(bogus=1),  # type: ignore[call-arg]
            "Policy: unknown keys ['bogus']",
            id="unknown",
        ),
    ],
)
def test_code_building_an_invalid_policy_gets_a_config_error(build: Any, message: str) -> None:
    """Domain rules and strict types hold for code too, and pydantic's ValidationError never escapes."""
    with pytest.raises(ConfigError) as error:
        build()
    assert error.value.code == "POLICY_FILE_INVALID"
    assert error.value.message.startswith(message), error.value.message


def test_code_may_build_what_a_document_may_not() -> None:
    """Document rules (tighten-only) are for JSON: code still builds the looser policies the tests and the
    weakenings rule need, and `weakenings` names them."""
    loose = Policy(
        allow_debug=True,
        required_kinds={},
        tdx=TdxRules(require_sept_ve_disable=False, accepted_statuses={}),
        snp=SnpRules(tcb_fields=()),
    )
    assert loose.tdx.accepted_statuses == {} and loose.snp.tcb_fields == ()
    assert "allows debug" in weakenings(loose, Policy())


# --- refusals the strict model adds to the hand-written codec's ---------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"id": "p", "snp": {"minimum_tcb": {"snp": None}}},
            "p.snp.minimum_tcb.snp must be a JSON integer 0..255, not null",
            id="null-svn",  # read as 0 before
        ),
        pytest.param(
            {"id": "p", "snp": {"tcb_fields": False}},
            "p.snp.tcb_fields must be a list of strings, not false",
            id="false-tcb-fields",  # read as ["reported"] before
        ),
        pytest.param(
            {"id": "p", "tdx": {"advisory_deny": 0}},
            "p.tdx.advisory_deny must be a list of strings, not 0",
            id="zero-advisory-deny",  # read as [] before
        ),
        pytest.param(
            {"id": "p", "tdx": {"advisory_deny": ""}},
            'p.tdx.advisory_deny must be a list of strings, not ""',
            id="empty-string-advisory-deny",
        ),
        pytest.param(
            {"id": "p", "snp": {"allowed_chip_ids": [" " + "ab" * 64]}},
            "p.snp.allowed_chip_ids must be a list of 128-digit hex strings, not ",
            id="hex-with-whitespace",  # bytes.fromhex skipped it before
        ),
        pytest.param(
            {"id": "p", "required_kinds": {"snp": ["\ud800"]}},
            "p.required_kinds must be a JSON object, not ",
            id="lone-surrogate",  # no UTF-8 form: PostgreSQL, tokens and logs cannot carry it
        ),
        pytest.param({"id": "p", 1: True}, "p: unknown keys ['1']", id="non-string-key"),  # a TypeError before
    ],
)
def test_what_the_strict_model_refuses_that_the_hand_codec_read(entry: dict[Any, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        policy_from_json(entry)
    assert error.value.code == "POLICY_FILE_INVALID"
    assert error.value.message.startswith(message), error.value.message


def test_upper_case_hex_is_read_and_written_lower_case() -> None:
    policy = policy_from_json({"id": "p", "tdx": {"allowed_mr_seams": ["AB" * 48]}})
    assert policy.tdx.allowed_mr_seams == (b"\xab" * 48,)
    assert policy_to_json(policy)["tdx"]["allowed_mr_seams"] == ["ab" * 48]


def test_messages_are_bounded() -> None:
    with pytest.raises(ConfigError) as error:
        policy_from_json({"id": "x" * 10_000, **{f"unknown{i}": i for i in range(1000)}})
    assert len(error.value.message) <= 300
    assert error.value.message.startswith("x" * 97 + "...: unknown keys ['unknown0'")
