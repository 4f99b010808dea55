"""TDX appraisal on claim dicts: TCB status tiers, advisories, grace period, TD attributes, MRSEAM, references."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal.model import Tier, combine
from verifier.appraisal.policy import Policy, PolicySet, TdxRules
from verifier.appraisal.tdx import appraise_tdx
from verifier.errors import ConfigError
from verifier.reference_values.model import ReferenceValue

AT = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
MR_TD = "aa" * 48


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mr_td": MR_TD,
        "mr_seam": "bb" * 48,
        "rtmr0": "00" * 48,
        "debug": False,
        "sept_ve_disable": True,
        "td_attributes": "0000001000000000",
        "trailing_nonzero": False,
    }
    base.update(overrides)
    return base


def tcb(
    status: str = "UpToDate", advisories: tuple[str, ...] = (), date: str = "2025-05-14T00:00:00Z"
) -> dict[str, Any]:
    return {"tcb": {"status": status, "advisory_ids": list(advisories), "tcb_date": date}}


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(kind, kind, bytes.fromhex(value), "x", AT - dt.timedelta(days=1))


def run(
    c: dict[str, Any], details: dict[str, Any], policy: Policy | None = None, refs: list[ReferenceValue] | None = None
) -> tuple[Tier, list[str], dict[str, int]]:
    baseline, findings, _ = appraise_tdx(
        c, details, policy or Policy(), [ref("tdx.mr_td", MR_TD)] if refs is None else refs, AT
    )
    vector = combine(baseline, findings)
    return vector.status, [f.code for f in findings], vector.to_json()


def test_up_to_date_with_approved_mr_td_affirms() -> None:
    status, codes, vector = run(claims(), tcb())
    assert (status, codes) == (Tier.AFFIRMING, [])
    assert vector == {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2, "runtime-opaque": 2}


@pytest.mark.parametrize(
    ("status", "tier", "code"),
    [
        ("SWHardeningNeeded", Tier.WARNING, "TDX_TCB_STATUS_WARNING"),
        ("ConfigurationNeeded", Tier.CONTRAINDICATED, "TDX_TCB_STATUS_NOT_ACCEPTED"),
        ("OutOfDate", Tier.CONTRAINDICATED, "TDX_TCB_STATUS_NOT_ACCEPTED"),
        ("OutOfDateConfigurationNeeded", Tier.CONTRAINDICATED, "TDX_TCB_STATUS_NOT_ACCEPTED"),
        ("Revoked", Tier.CONTRAINDICATED, "TDX_TCB_STATUS_NOT_ACCEPTED"),
    ],
)
def test_default_status_tiers(status: str, tier: Tier, code: str) -> None:
    got, codes, _ = run(claims(), tcb(status, ("INTEL-SA-00837",)))
    assert (got, codes) == (tier, [code])


def test_grace_period_turns_a_recent_out_of_date_into_a_warning_but_never_revoked() -> None:
    policy = Policy(tdx=TdxRules(grace_days=90))
    assert run(claims(), tcb("OutOfDate", date="2025-05-01T00:00:00Z"), policy)[0] is Tier.WARNING
    assert run(claims(), tcb("OutOfDate", date="2024-01-01T00:00:00Z"), policy)[0] is Tier.CONTRAINDICATED
    assert run(claims(), tcb("Revoked", date="2025-06-01T00:00:00Z"), policy)[0] is Tier.CONTRAINDICATED


def test_advisory_lists() -> None:
    deny = Policy(
        tdx=TdxRules(
            accepted_statuses={"UpToDate": "affirming", "SWHardeningNeeded": "affirming"},
            advisory_deny=("INTEL-SA-00615",),
        )
    )
    _, codes, _ = run(claims(), tcb("SWHardeningNeeded", ("INTEL-SA-00615", "INTEL-SA-00837")), deny)
    assert codes == ["TDX_ADVISORY_DENIED"]
    allow = Policy(
        tdx=TdxRules(
            accepted_statuses={"SWHardeningNeeded": "affirming", "UpToDate": "affirming"},
            advisory_allow=("INTEL-SA-00837",),
        )
    )
    assert run(claims(), tcb("SWHardeningNeeded", ("INTEL-SA-00837",)), allow)[0] is Tier.AFFIRMING
    _, codes, _ = run(claims(), tcb("SWHardeningNeeded", ("INTEL-SA-00837", "INTEL-SA-00960")), allow)
    assert codes == ["TDX_ADVISORY_NOT_ALLOWED"]


def test_debug_sept_ve_mr_seam_and_trailing_data() -> None:
    policy = Policy(tdx=TdxRules(allowed_mr_seams=(bytes.fromhex("cc" * 48),)))
    status, codes, _ = run(
        claims(debug=True, sept_ve_disable=False, trailing_nonzero=True, trailing_bytes=39), tcb(), policy
    )
    assert status is Tier.CONTRAINDICATED
    assert codes == ["TDX_DEBUG_TD", "TDX_SEPT_VE_NOT_DISABLED", "TDX_MR_SEAM_NOT_ALLOWED", "TDX_TRAILING_DATA"]


def test_unknown_tcb_is_never_affirming() -> None:
    status, codes, vector = run(claims(), {"tcb": None, "collateral_error": "COLLATERAL_OFFLINE"})
    assert status is Tier.CONTRAINDICATED and codes == ["TDX_TCB_UNKNOWN"]
    assert vector["hardware"] == 96


def test_references_rtmr_and_config() -> None:
    refs = [ref("tdx.mr_td", MR_TD), ref("tdx.rtmr0", "11" * 48), ref("tdx.mr_config_id", "22" * 48)]
    c = claims(mr_config_id="00" * 48)
    _, codes, vector = run(c, tcb(), refs=refs)
    assert codes == ["REFERENCE_VALUE_MISMATCH", "REFERENCE_VALUE_MISMATCH"]
    assert vector["configuration"] == 96 and vector["executables"] == 96
    assert run(claims(), tcb(), refs=[])[1] == ["REFERENCE_VALUE_MISSING"]


def test_tdx_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(
        json.dumps(
            {
                "policies": [
                    {
                        "id": "tdx-prod",
                        "tdx": {
                            "accepted_statuses": {
                                "UpToDate": "affirming",
                                "SWHardeningNeeded": "warning",
                                "OutOfDate": "warning",
                            },
                            "advisory_deny": ["INTEL-SA-00615"],
                            "grace_days": 30,
                            "allowed_mr_seams": ["cc" * 48],
                        },
                    }
                ]
            }
        )
    )
    rules = PolicySet.from_file(path).get("tdx-prod").tdx
    assert rules.grace_days == 30 and rules.require_sept_ve_disable
    for bad in (
        {"accepted_statuses": {"OutOfDate": "affirming"}},
        {"accepted_statuses": {"Revoked": "warning"}},
        {"require_sept_ve_disable": False},
        {"bogus": 1},
    ):
        path.write_text(json.dumps({"policies": [{"id": "x", "tdx": bad}]}))
        with pytest.raises(ConfigError):
            PolicySet.from_file(path)


def _used(item: str, number: int | None, issued: str) -> dict[str, Any]:
    return {
        "item": item,
        "number": number,
        "issued": issued,
        "next_update": "2025-07-30T00:00:00Z",
        "source": "request",
    }


def test_superseded_request_collateral_is_informational() -> None:
    old = {
        "item": "tdx.tcb_info",
        "request": {"number": 17, "issued": "2025-06-01T00:00:00Z"},
        "used": {"number": 18, "issued": "2025-06-20T00:00:00Z"},
    }
    status, codes, vector = run(claims(), tcb() | {"collateral_superseded": [old]})
    assert (status, codes) == (Tier.AFFIRMING, ["COLLATERAL_SUPERSEDED"])
    assert vector["hardware"] == 2
    _, findings, _ = appraise_tdx(
        claims(), tcb() | {"collateral_superseded": [old]}, Policy(), [ref("tdx.mr_td", MR_TD)], AT
    )
    assert (findings[0].value, findings[0].expected, findings[0].actual) == (
        0,
        "number 18, issued 2025-06-20T00:00:00Z",
        "number 17, issued 2025-06-01T00:00:00Z",
    )


def test_minimum_tcb_evaluation_data_number_and_maximum_collateral_age() -> None:
    used = [_used("tdx.tcb_info", 17, "2025-06-30T20:00:00Z"), _used("tdx.pck_crl", 3, "2025-06-29T00:00:00Z")]
    details = tcb() | {"collateral": used}
    assert run(claims(), details)[:2] == (Tier.AFFIRMING, [])
    minimum = Policy(tdx=TdxRules(minimum_tcb_evaluation_data_number=18))
    status, codes, vector = run(claims(), details, minimum)
    assert (status, codes, vector["hardware"]) == (
        Tier.CONTRAINDICATED,
        ["TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM"],
        96,
    )
    assert run(claims(), details, Policy(tdx=TdxRules(minimum_tcb_evaluation_data_number=17)))[1] == []
    aged = Policy(tdx=TdxRules(max_collateral_age_hours=24))
    _, findings, _ = appraise_tdx(claims(), details, aged, [ref("tdx.mr_td", MR_TD)], AT)
    assert [(f.code, f.claim.value, f.expected, f.actual) for f in findings] == [
        ("COLLATERAL_TOO_OLD", "hardware", "issued at or after 2025-06-30T00:00:00Z", "2025-06-29T00:00:00Z")
    ]
    assert "tdx.pck_crl" in findings[0].message
    assert run(claims(), details, Policy(tdx=TdxRules(max_collateral_age_hours=48)))[1] == []


SERVICE_TD = "5e" * 48


@pytest.mark.parametrize(
    ("servicetd", "pinned", "codes"),
    [
        (SERVICE_TD, None, ["TDX_SERVICE_TD_NOT_APPROVED"]),  # a bound service TD nobody approved
        (SERVICE_TD, SERVICE_TD, []),
        (SERVICE_TD, "77" * 48, ["REFERENCE_VALUE_MISMATCH"]),
        ("00" * 48, None, []),  # no service TD bound: no value needed
        ("00" * 48, "00" * 48, []),
        ("00" * 48, SERVICE_TD, ["REFERENCE_VALUE_MISMATCH"]),  # pinned: must match
        (None, None, []),  # TD 1.0 report (v4 quote): no MRSERVICETD
        (None, SERVICE_TD, ["CLAIM_MISSING"]),
    ],
)
def test_service_td(servicetd: str | None, pinned: str | None, codes: list[str]) -> None:
    c = claims() if servicetd is None else claims(mr_servicetd=servicetd)
    refs = [ref("tdx.mr_td", MR_TD)] + ([ref("tdx.mr_servicetd", pinned)] if pinned else [])
    status, got, vector = run(c, tcb(), refs=refs)
    assert got == codes
    assert status is (Tier.AFFIRMING if not codes else Tier.CONTRAINDICATED)
    if codes:
        assert vector["executables"] == 96


def test_service_td_finding_names_the_value() -> None:
    _, findings, matched = appraise_tdx(claims(mr_servicetd=SERVICE_TD), tcb(), Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    (finding,) = findings
    assert (finding.code, finding.actual) == ("TDX_SERVICE_TD_NOT_APPROVED", SERVICE_TD)
    assert "tdx.mr_servicetd" in finding.expected
    assert [r.kind for r in matched] == ["tdx.mr_td"]


def test_service_td_of_a_minted_td15_quote() -> None:
    from tests.fakes.intel_pki import FakeIntelPki
    from verifier.tee.tdx.claims import claims as tdx_claims
    from verifier.tee.tdx.quote import parse_quote

    pki = FakeIntelPki()
    bound = tdx_claims(
        parse_quote(
            pki.quote(
                version=5,
                body_type=3,
                mr_servicetd=bytes.fromhex(SERVICE_TD),
                td_attributes=bytes.fromhex("0000001000000000"),
            )
        ),
        None,
    )
    mr_td = str(bound["mr_td"])
    _, codes, _ = run(bound, tcb(), refs=[ref("tdx.mr_td", mr_td)])
    assert codes == ["TDX_SERVICE_TD_NOT_APPROVED"]
    assert run(bound, tcb(), refs=[ref("tdx.mr_td", mr_td), ref("tdx.mr_servicetd", SERVICE_TD)])[1] == []
    td10 = tdx_claims(parse_quote(pki.quote(version=4, td_attributes=bytes.fromhex("0000001000000000"))), None)
    assert "mr_servicetd" not in td10
    assert run(td10, tcb(), refs=[ref("tdx.mr_td", mr_td), ref("tdx.mr_servicetd", SERVICE_TD)])[1] == ["CLAIM_MISSING"]
