"""The tighten-only rule (`verifier.appraisal.policy.weakenings`) against mutants scripts/mutation.py left alive
(issue 16). Every rule is pinned both ways: a candidate that loosens it is named (exactly, nothing else), and a
candidate at the base's own value (the boundary) is not. A weakening the rule misses lets an admin loosen a
built-in policy through `verifier policy set` or `--policy-file`, so the PolicySet seam is pinned too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from verifier.appraisal.policy import Policy, PolicySet, SnpRules, TdxRules, weakenings
from verifier.errors import ConfigError

CHIP_A, CHIP_B = b"\xaa" * 64, b"\xbb" * 64
SEAM_A, SEAM_B = b"\x0a" * 48, b"\x0b" * 48


def snp(**kw: Any) -> Policy:
    return Policy(snp=SnpRules(**kw))


def tdx(**kw: Any) -> Policy:
    return Policy(tdx=TdxRules(**kw))


LOOSER = [
    pytest.param(Policy(allow_debug=True), Policy(), ["allows debug"], id="allow-debug"),
    pytest.param(
        Policy(required_kinds={"nitro": ("nitro.pcr0",), "snp": ("snp.measurement",), "tdx": ("tdx.mr_td",)}),
        Policy(),
        ["does not require ['nitro.pcr1', 'nitro.pcr2']"],
        id="fewer-required-kinds",
    ),
    pytest.param(
        Policy(required_kinds={"nitro": ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2"), "snp": ("snp.measurement",)}),
        Policy(),
        ["does not require ['tdx.mr_td']"],
        id="tee-dropped-from-required-kinds",
    ),
    pytest.param(
        snp(minimum_tcb={"snp": 21}), snp(minimum_tcb={"snp": 22}), ["snp: lower minimum TCB for snp"], id="tcb-lower"
    ),
    pytest.param(snp(), snp(minimum_tcb={"tee": 1}), ["snp: lower minimum TCB for tee"], id="tcb-component-missing"),
    pytest.param(
        snp(minimum_tcb={"snp": 22}, tcb_fields=("reported",)),
        snp(minimum_tcb={"snp": 22}, tcb_fields=("reported", "committed")),
        ["snp: checks fewer TCB fields"],
        id="fewer-tcb-fields",
    ),
    pytest.param(snp(allowed_vmpls=(0, 1)), snp(allowed_vmpls=(0,)), ["snp: allows more VMPLs"], id="vmpls-wider"),
    pytest.param(snp(), snp(allowed_vmpls=(0,)), ["snp: allows more VMPLs"], id="vmpls-any"),
    pytest.param(
        snp(allowed_chip_ids=(CHIP_A, CHIP_B)),
        snp(allowed_chip_ids=(CHIP_A,)),
        ["snp: allows more CHIP_IDs"],
        id="chip-ids-wider",
    ),
    pytest.param(snp(), snp(allowed_chip_ids=(CHIP_A,)), ["snp: allows more CHIP_IDs"], id="chip-ids-any"),
    pytest.param(
        snp(minimum_firmware=(1, 54)), snp(minimum_firmware=(1, 55)), ["snp: lower minimum firmware"], id="fw-lower"
    ),
    pytest.param(
        snp(minimum_firmware=(0, 99)),
        snp(minimum_firmware=(1, 0)),
        ["snp: lower minimum firmware"],
        id="fw-lower-major",
    ),
    pytest.param(snp(), snp(minimum_firmware=(1, 55)), ["snp: lower minimum firmware"], id="fw-none"),
    pytest.param(snp(minimum_build=4), snp(minimum_build=5), ["snp: lower minimum build"], id="build-lower"),
    pytest.param(snp(), snp(minimum_build=5), ["snp: lower minimum build"], id="build-none"),
    pytest.param(tdx(grace_days=31), tdx(grace_days=30), ["tdx: longer grace period"], id="grace-longer"),
    pytest.param(tdx(grace_days=1), tdx(), ["tdx: longer grace period"], id="grace-where-none"),
    pytest.param(
        tdx(advisory_allow=("INTEL-SA-1", "INTEL-SA-2")),
        tdx(advisory_allow=("INTEL-SA-1",)),
        ["tdx: allows more advisories"],
        id="advisories-wider",
    ),
    pytest.param(tdx(), tdx(advisory_allow=("INTEL-SA-1",)), ["tdx: allows more advisories"], id="advisories-any"),
    pytest.param(
        tdx(advisory_deny=("INTEL-SA-1",)),
        tdx(advisory_deny=("INTEL-SA-1", "INTEL-SA-2")),
        ["tdx: denies fewer advisories"],
        id="deny-fewer",
    ),
    pytest.param(
        tdx(require_sept_ve_disable=False), tdx(), ["tdx: SEPT_VE_DISABLE not required"], id="sept-ve-disable-dropped"
    ),
    pytest.param(
        tdx(allowed_mr_seams=(SEAM_A, SEAM_B)),
        tdx(allowed_mr_seams=(SEAM_A,)),
        ["tdx: allows more MRSEAMs"],
        id="mr-seams-wider",
    ),
    pytest.param(tdx(), tdx(allowed_mr_seams=(SEAM_A,)), ["tdx: allows more MRSEAMs"], id="mr-seams-any"),
]


@pytest.mark.parametrize(("candidate", "base", "named"), LOOSER)
def test_a_looser_candidate_is_named(candidate: Policy, base: Policy, named: list[str]) -> None:
    assert weakenings(candidate, base) == named
    assert weakenings(base, candidate) == []


AT_THE_BOUNDARY = [
    pytest.param(snp(minimum_tcb={"snp": 22}), snp(minimum_tcb={"snp": 22}), id="tcb-equal"),
    pytest.param(snp(minimum_tcb={"snp": 23}), snp(minimum_tcb={"snp": 22}), id="tcb-higher"),
    pytest.param(
        snp(minimum_tcb={"snp": 22}, tcb_fields=("reported",)),
        snp(minimum_tcb={"snp": 22}, tcb_fields=("reported",)),
        id="tcb-fields-equal",
    ),
    # Without a minimum TCB the fields checked do not matter: nothing is compared against them.
    pytest.param(snp(tcb_fields=("reported",)), snp(tcb_fields=("reported", "committed")), id="tcb-fields-no-minimum"),
    pytest.param(snp(allowed_vmpls=(0, 1)), snp(allowed_vmpls=(1, 0)), id="vmpls-equal"),
    pytest.param(snp(allowed_vmpls=(0,)), snp(), id="vmpls-base-any"),
    pytest.param(snp(allowed_chip_ids=(CHIP_A,)), snp(allowed_chip_ids=(CHIP_A,)), id="chip-ids-equal"),
    pytest.param(snp(minimum_firmware=(1, 55)), snp(minimum_firmware=(1, 55)), id="fw-equal"),
    pytest.param(snp(minimum_firmware=(2, 0)), snp(minimum_firmware=(1, 55)), id="fw-higher"),
    pytest.param(snp(minimum_build=5), snp(minimum_build=5), id="build-equal"),
    pytest.param(tdx(grace_days=30), tdx(grace_days=30), id="grace-equal"),
    pytest.param(tdx(grace_days=29), tdx(grace_days=30), id="grace-shorter"),
    pytest.param(tdx(advisory_allow=("INTEL-SA-1",)), tdx(advisory_allow=("INTEL-SA-1",)), id="advisories-equal"),
    pytest.param(tdx(allowed_mr_seams=(SEAM_A, SEAM_B)), tdx(allowed_mr_seams=(SEAM_B, SEAM_A)), id="mr-seams-equal"),
    pytest.param(Policy(allow_debug=True), Policy(allow_debug=True), id="debug-both"),
]


@pytest.mark.parametrize(("candidate", "base"), AT_THE_BOUNDARY)
def test_a_candidate_as_strict_as_the_base_is_not_a_weakening(candidate: Policy, base: Policy) -> None:
    assert weakenings(candidate, base) == []


def test_every_weakening_at_once_is_named_in_order() -> None:
    base = Policy(
        snp=SnpRules(
            minimum_tcb={"snp": 22},
            tcb_fields=("reported", "committed"),
            allowed_vmpls=(0,),
            allowed_chip_ids=(CHIP_A,),
            minimum_firmware=(1, 55),
            minimum_build=5,
        ),
        tdx=TdxRules(
            grace_days=30,
            advisory_allow=("INTEL-SA-1",),
            advisory_deny=("INTEL-SA-2",),
            allowed_mr_seams=(SEAM_A,),
        ),
    )
    candidate = Policy(
        allow_debug=True,
        required_kinds={},
        snp=SnpRules(minimum_tcb={"snp": 21}),
        tdx=TdxRules(grace_days=31, require_sept_ve_disable=False),
    )
    assert weakenings(candidate, base) == [
        "allows debug",
        "does not require ['nitro.pcr0', 'nitro.pcr1', 'nitro.pcr2']",
        "does not require ['snp.measurement']",
        "does not require ['tdx.mr_td']",
        "snp: lower minimum TCB for snp",
        "snp: checks fewer TCB fields",
        "snp: allows more VMPLs",
        "snp: allows more CHIP_IDs",
        "snp: lower minimum firmware",
        "snp: lower minimum build",
        "tdx: longer grace period",
        "tdx: allows more advisories",
        "tdx: denies fewer advisories",
        "tdx: SEPT_VE_DISABLE not required",
        "tdx: allows more MRSEAMs",
    ]
    assert weakenings(base, base) == []


@pytest.mark.parametrize(
    "loosened",
    [
        Policy(allow_debug=True),
        Policy(required_kinds={"snp": ("snp.measurement",), "tdx": ("tdx.mr_td",)}),
        replace(Policy(), tdx=TdxRules(require_sept_ve_disable=False)),
    ],
    ids=["debug", "nitro-kinds", "sept-ve-disable"],
)
def test_a_file_policy_may_not_loosen_the_default_built_in(loosened: Policy) -> None:
    with pytest.raises(ConfigError) as error:
        PolicySet({"default": loosened})
    assert error.value.code == "POLICY_LOOSENS_BUILT_IN"
