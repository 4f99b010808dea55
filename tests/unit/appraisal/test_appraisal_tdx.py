"""TDX appraisal of a typed quote and its TdxFacts: TCB status tiers, advisories, grace period, TD attributes,
MRSEAM, references, and failing closed without them. Quotes are minted by the fake Intel PKI (tests/fakes); the
facts (each TCB status, collateral items) are built directly, as the fakes cannot cheaply produce every status."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.intel_pki import FakeIntelPki
from verifier.appraisal.model import Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy, PolicySet, TdxRules
from verifier.appraisal.tdx import appraise
from verifier.clock import parse_rfc3339
from verifier.errors import ConfigError, EvidenceError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence
from verifier.tee.tdx.claims import claims as claims_of
from verifier.tee.tdx.facts import TdxFacts
from verifier.tee.tdx.freshness import ItemFacts, Superseded
from verifier.tee.tdx.quote import Quote, parse_quote
from verifier.tee.tdx.tcb import TcbResult

AT = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
MR_TD = "aa" * 48
SEPT_VE_DISABLE = bytes.fromhex("0000001000000000")  # TD_ATTRIBUTES bit 28 only
DEBUG = bytes.fromhex("0100000000000000")  # TD_ATTRIBUTES bit 0 (DEBUG) only: SEPT_VE_DISABLE clear


@functools.cache
def pki() -> FakeIntelPki:
    return FakeIntelPki(AT)


def quote(**overrides: Any) -> Quote:
    """A parsed quote minted by the fake Intel PKI: MRTD `MR_TD`, MRSEAM bb.., RTMR0 zero, SEPT_VE_DISABLE set,
    no trailing bytes; `overrides` as FakeIntelPki.quote takes them (e.g. version=5 and mr_servicetd)."""
    fields: dict[str, Any] = {
        "mr_td": bytes.fromhex(MR_TD),
        "mr_seam": b"\xbb" * 48,
        "rtmr0": bytes(48),
        "td_attributes": SEPT_VE_DISABLE,
    }
    return parse_quote(pki().quote(**(fields | overrides)))


def tcb(
    status: str = "UpToDate", advisories: tuple[str, ...] = (), date: str | None = "2025-05-14T00:00:00Z"
) -> TdxFacts:
    """The facts of a TCB evaluation with `status` (platform status as served, QE UpToDate, no module)."""
    tcb_date = parse_rfc3339(date) if date is not None else None
    return TdxFacts(tcb=TcbResult(status, tcb_date, advisories, status, "UpToDate", None))


def verified(q: Quote | None = None, facts: TdxFacts | None = None) -> VerifiedEvidence[Quote, TdxFacts]:
    """What TdxVerifier returns for `q` (default `quote()`) with `facts` (default `tcb()`): no claims are needed."""
    return VerifiedEvidence("tdx", q if q is not None else quote(), {}, facts=facts if facts is not None else tcb())


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(kind, kind, bytes.fromhex(value), "x", AT - dt.timedelta(days=1))


def findings_of(
    q: Quote, facts: TdxFacts, policy: Policy | None = None, refs: list[ReferenceValue] | None = None
) -> tuple[dict[Claim, int], list[Finding]]:
    baseline, findings, _ = appraise(
        verified(q, facts), policy or Policy(), [ref("tdx.mr_td", MR_TD)] if refs is None else refs, AT
    )
    return baseline, findings


def run(
    q: Quote, facts: TdxFacts, policy: Policy | None = None, refs: list[ReferenceValue] | None = None
) -> tuple[Tier, list[str], dict[str, int]]:
    baseline, findings = findings_of(q, facts, policy, refs)
    vector = combine(baseline, findings)
    return vector.status, [f.code for f in findings], vector.to_json()


def test_up_to_date_with_approved_mr_td_affirms() -> None:
    status, codes, vector = run(quote(), tcb())
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
    got, codes, _ = run(quote(), tcb(status, ("INTEL-SA-00837",)))
    assert (got, codes) == (tier, [code])


@pytest.mark.parametrize(
    ("status", "date", "tier"),
    [
        pytest.param("OutOfDate", "2025-05-01T00:00:00Z", Tier.WARNING, id="recent-out-of-date-within-grace"),
        pytest.param("OutOfDate", "2024-01-01T00:00:00Z", Tier.CONTRAINDICATED, id="old-out-of-date"),
        pytest.param("Revoked", "2025-06-01T00:00:00Z", Tier.CONTRAINDICATED, id="revoked-never"),
    ],
)
def test_grace_period_turns_a_recent_out_of_date_into_a_warning_but_never_revoked(
    status: str, date: str, tier: Tier
) -> None:
    assert run(quote(), tcb(status, date=date), Policy(tdx=TdxRules(grace_days=90)))[0] is tier


DENY_615 = Policy(
    tdx=TdxRules(
        accepted_statuses={"UpToDate": "affirming", "SWHardeningNeeded": "affirming"},
        advisory_deny=("INTEL-SA-00615",),
    )
)
ALLOW_837 = Policy(
    tdx=TdxRules(
        accepted_statuses={"SWHardeningNeeded": "affirming", "UpToDate": "affirming"},
        advisory_allow=("INTEL-SA-00837",),
    )
)


@pytest.mark.parametrize(
    ("policy", "advisories", "tier", "codes"),
    [
        pytest.param(
            DENY_615, ("INTEL-SA-00615", "INTEL-SA-00837"), Tier.CONTRAINDICATED, ["TDX_ADVISORY_DENIED"], id="denied"
        ),
        pytest.param(ALLOW_837, ("INTEL-SA-00837",), Tier.AFFIRMING, [], id="allowed"),
        pytest.param(
            ALLOW_837,
            ("INTEL-SA-00837", "INTEL-SA-00960"),
            Tier.CONTRAINDICATED,
            ["TDX_ADVISORY_NOT_ALLOWED"],
            id="not-allowed",
        ),
    ],
)
def test_advisory_lists(policy: Policy, advisories: tuple[str, ...], tier: Tier, codes: list[str]) -> None:
    assert run(quote(), tcb("SWHardeningNeeded", advisories), policy)[:2] == (tier, codes)


def test_debug_sept_ve_mr_seam_and_trailing_data() -> None:
    policy = Policy(tdx=TdxRules(allowed_mr_seams=(bytes.fromhex("cc" * 48),)))
    status, codes, _ = run(quote(td_attributes=DEBUG, trailing=b"\x01" * 39), tcb(), policy)
    assert status is Tier.CONTRAINDICATED
    assert codes == ["TDX_DEBUG_TD", "TDX_SEPT_VE_NOT_DISABLED", "TDX_MR_SEAM_NOT_ALLOWED", "TDX_TRAILING_DATA"]
    _, findings = findings_of(quote(td_attributes=DEBUG, trailing=b"\x01" * 39), tcb(), policy)
    assert [f.actual for f in findings] == [
        f"td_attributes {DEBUG.hex()}",
        f"td_attributes {DEBUG.hex()}",
        "bb" * 48,
        "39 bytes",
    ]


@pytest.mark.parametrize(
    ("td_attributes", "codes"),
    [
        pytest.param(bytes.fromhex("0200001000000000"), ["TDX_DEBUG_TD"], id="tud-bit-1-not-debug"),
        pytest.param(bytes.fromhex("8000001000000000"), ["TDX_DEBUG_TD"], id="tud-bit-7"),
        pytest.param(bytes.fromhex("0001001000000000"), [], id="sec-bit-8-is-not-tud"),
    ],
)
def test_any_td_under_debug_bit_is_a_debug_td(td_attributes: bytes, codes: list[str]) -> None:
    assert run(quote(td_attributes=td_attributes), tcb())[1] == codes
    assert run(quote(td_attributes=td_attributes), tcb(), Policy(allow_debug=True))[1] == []


def test_zero_trailing_bytes_are_padding() -> None:
    assert run(quote(trailing=bytes(39)), tcb())[:2] == (Tier.AFFIRMING, [])


def test_the_typed_quote_decides_not_the_claims() -> None:
    """Claims that contradict the quote (a clean quote's, beside a debug TD's quote) change nothing: the
    appraiser reads the quote."""
    debug = quote(td_attributes=DEBUG, mr_td=b"\x01" * 48)
    lying = VerifiedEvidence("tdx", debug, claims_of(quote(), None), facts=tcb())
    baseline, findings, matched = appraise(lying, Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    assert [f.code for f in findings] == ["TDX_DEBUG_TD", "TDX_SEPT_VE_NOT_DISABLED", "REFERENCE_VALUE_MISMATCH"]
    assert matched == [] and combine(baseline, findings).status is Tier.CONTRAINDICATED


def test_unknown_tcb_is_never_affirming() -> None:
    status, codes, vector = run(quote(), TdxFacts(collateral_error="COLLATERAL_OFFLINE"))
    assert status is Tier.CONTRAINDICATED and codes == ["TDX_TCB_UNKNOWN"]
    assert vector["hardware"] == 96
    _, findings = findings_of(quote(), TdxFacts(collateral_error="COLLATERAL_OFFLINE"))
    assert "(COLLATERAL_OFFLINE)" in findings[0].message
    _, findings = findings_of(quote(), TdxFacts())
    assert "(no collateral)" in findings[0].message


@pytest.mark.parametrize(
    "evidence",
    [
        pytest.param(VerifiedEvidence("tdx", None, {}, facts=tcb()), id="no-quote"),
        pytest.param(VerifiedEvidence("tdx", quote(), {}), id="no-facts"),
        pytest.param(VerifiedEvidence("tdx", quote(), {}, facts={"tcb": {"status": "UpToDate"}}), id="facts-a-dict"),
        pytest.param(VerifiedEvidence("tdx", b"quote", {}, facts=tcb()), id="quote-bytes"),
        pytest.param(
            VerifiedEvidence("tdx", quote(), {}, EvidenceError("TDX_QUOTE_SIGNATURE_INVALID", "x"), facts=tcb()),
            id="verification-failed",
        ),
    ],
)
def test_evidence_without_a_verified_quote_and_facts_fails_closed(evidence: VerifiedEvidence) -> None:
    baseline, findings, matched = appraise(evidence, Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    assert baseline == {} and matched == []
    assert [(f.code, f.claim, f.value) for f in findings] == [("TDX_NOT_APPRAISABLE", Claim.HARDWARE, 96)]
    assert combine(baseline, findings).status is Tier.CONTRAINDICATED


@pytest.mark.parametrize(
    ("refs", "codes", "worst"),
    [
        pytest.param(
            [ref("tdx.mr_td", MR_TD), ref("tdx.rtmr0", "11" * 48), ref("tdx.mr_config_id", "22" * 48)],
            ["REFERENCE_VALUE_MISMATCH", "REFERENCE_VALUE_MISMATCH"],
            {"configuration": 96, "executables": 96},
            id="rtmr0-and-mr-config-id-mismatch",
        ),
        pytest.param([], ["REFERENCE_VALUE_MISSING"], {"executables": 96}, id="mr-td-required"),
    ],
)
def test_references_rtmr_and_config(refs: list[ReferenceValue], codes: list[str], worst: dict[str, int]) -> None:
    _, got, vector = run(quote(mr_config_id=bytes(48)), tcb(), refs=refs)
    assert got == codes
    assert {claim: vector[claim] for claim in worst} == worst


@pytest.mark.parametrize(
    "field", ["rtmr0", "rtmr1", "rtmr2", "rtmr3", "mr_seam", "mr_config_id", "mr_owner", "mr_owner_config"]
)
def test_each_measurement_of_the_quote_is_compared(field: str) -> None:
    q = quote(**{field: b"\x5a" * 48})
    assert run(q, tcb(), refs=[ref("tdx.mr_td", MR_TD), ref(f"tdx.{field}", "5a" * 48)])[:2] == (Tier.AFFIRMING, [])
    _, codes, _ = run(q, tcb(), refs=[ref("tdx.mr_td", MR_TD), ref(f"tdx.{field}", "a5" * 48)])
    assert codes == ["REFERENCE_VALUE_MISMATCH"]


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


def _used(item: str, number: int | None, issued: str) -> ItemFacts:
    return ItemFacts(item, number, parse_rfc3339(issued), parse_rfc3339("2025-07-30T00:00:00Z"), "request")


SUPERSEDED = Superseded(
    request=_used("tdx.tcb_info", 17, "2025-06-01T00:00:00Z"), used=_used("tdx.tcb_info", 18, "2025-06-20T00:00:00Z")
)


def test_superseded_request_collateral_is_informational() -> None:
    facts = dataclasses.replace(tcb(), superseded=(SUPERSEDED,))
    status, codes, vector = run(quote(), facts)
    assert (status, codes) == (Tier.AFFIRMING, ["COLLATERAL_SUPERSEDED"])
    assert vector["hardware"] == 2
    _, findings = findings_of(quote(), facts)
    assert (findings[0].value, findings[0].expected, findings[0].actual) == (
        0,
        "number 18, issued 2025-06-20T00:00:00Z",
        "number 17, issued 2025-06-01T00:00:00Z",
    )
    assert "tdx.tcb_info" in findings[0].message


USED = (_used("tdx.tcb_info", 17, "2025-06-30T20:00:00Z"), _used("tdx.pck_crl", 3, "2025-06-29T00:00:00Z"))


@pytest.mark.parametrize(
    ("rules", "tier", "codes"),
    [
        pytest.param(TdxRules(), Tier.AFFIRMING, [], id="no-minimum-no-maximum-age"),
        pytest.param(
            TdxRules(minimum_tcb_evaluation_data_number=18),
            Tier.CONTRAINDICATED,
            ["TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM"],
            id="below-minimum",
        ),
        pytest.param(TdxRules(minimum_tcb_evaluation_data_number=17), Tier.AFFIRMING, [], id="at-minimum"),
        pytest.param(TdxRules(max_collateral_age_hours=24), Tier.CONTRAINDICATED, ["COLLATERAL_TOO_OLD"], id="too-old"),
        pytest.param(TdxRules(max_collateral_age_hours=48), Tier.AFFIRMING, [], id="young-enough"),
    ],
)
def test_minimum_tcb_evaluation_data_number_and_maximum_collateral_age(
    rules: TdxRules, tier: Tier, codes: list[str]
) -> None:
    status, got, vector = run(quote(), dataclasses.replace(tcb(), collateral=USED), Policy(tdx=rules))
    assert (status, got) == (tier, codes)
    assert vector["hardware"] == (96 if codes else 2)


def test_the_findings_of_minimum_number_and_maximum_age_name_the_item() -> None:
    facts = dataclasses.replace(tcb(), collateral=USED)
    _, findings = findings_of(quote(), facts, Policy(tdx=TdxRules(minimum_tcb_evaluation_data_number=18)))
    assert [(f.code, f.claim.value, f.expected, f.actual) for f in findings] == [
        ("TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM", "hardware", ">= 18", "17")
    ]
    _, findings = findings_of(quote(), facts, Policy(tdx=TdxRules(max_collateral_age_hours=24)))
    assert [(f.code, f.claim.value, f.expected, f.actual) for f in findings] == [
        ("COLLATERAL_TOO_OLD", "hardware", "issued at or after 2025-06-30T00:00:00Z", "2025-06-29T00:00:00Z")
    ]
    assert "tdx.pck_crl" in findings[0].message


def test_a_tcb_info_without_an_evaluation_number_is_below_any_minimum() -> None:
    facts = dataclasses.replace(tcb(), collateral=(_used("tdx.tcb_info", None, "2025-06-30T20:00:00Z"),))
    _, findings = findings_of(quote(), facts, Policy(tdx=TdxRules(minimum_tcb_evaluation_data_number=1)))
    assert [(f.code, f.actual) for f in findings] == [("TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM", "None")]


SERVICE_TD = "5e" * 48


def td15(servicetd: str | None) -> Quote:
    """A TD 1.5 report (v5 quote, body type 3) with MRSERVICETD `servicetd`, or a TD 1.0 one (v4) for None."""
    if servicetd is None:
        return quote(version=4)
    return quote(version=5, body_type=3, mr_servicetd=bytes.fromhex(servicetd))


@pytest.mark.parametrize(
    ("servicetd", "pinned", "codes"),
    [
        pytest.param(SERVICE_TD, None, ["TDX_SERVICE_TD_NOT_APPROVED"], id="bound-not-approved"),
        pytest.param(SERVICE_TD, SERVICE_TD, [], id="bound-approved"),
        pytest.param(SERVICE_TD, "77" * 48, ["REFERENCE_VALUE_MISMATCH"], id="bound-other-approved"),
        pytest.param("00" * 48, None, [], id="none-bound-no-value-needed"),
        pytest.param("00" * 48, "00" * 48, [], id="none-bound-zero-pinned"),
        pytest.param("00" * 48, SERVICE_TD, ["REFERENCE_VALUE_MISMATCH"], id="none-bound-but-pinned"),
        pytest.param("00" * 47 + "01", None, ["TDX_SERVICE_TD_NOT_APPROVED"], id="one-non-zero-byte"),
        pytest.param(None, None, [], id="td10-no-mrservicetd"),
        pytest.param(None, SERVICE_TD, ["CLAIM_MISSING"], id="td10-pinned"),
    ],
)
def test_service_td(servicetd: str | None, pinned: str | None, codes: list[str]) -> None:
    refs = [ref("tdx.mr_td", MR_TD)] + ([ref("tdx.mr_servicetd", pinned)] if pinned else [])
    status, got, vector = run(td15(servicetd), tcb(), refs=refs)
    assert got == codes
    assert status is (Tier.AFFIRMING if not codes else Tier.CONTRAINDICATED)
    if codes:
        assert vector["executables"] == 96


def test_service_td_finding_names_the_value() -> None:
    _, findings, matched = appraise(verified(td15(SERVICE_TD)), Policy(), [ref("tdx.mr_td", MR_TD)], AT)
    (finding,) = findings
    assert (finding.code, finding.actual) == ("TDX_SERVICE_TD_NOT_APPROVED", SERVICE_TD)
    assert "tdx.mr_servicetd" in finding.expected
    assert [r.kind for r in matched] == ["tdx.mr_td"]


def test_service_td_of_a_minted_td15_quote() -> None:
    bound = parse_quote(
        pki().quote(version=5, body_type=3, mr_servicetd=bytes.fromhex(SERVICE_TD), td_attributes=SEPT_VE_DISABLE)
    )
    mr_td = bound.body.mr_td.hex()
    _, codes, _ = run(bound, tcb(), refs=[ref("tdx.mr_td", mr_td)])
    assert codes == ["TDX_SERVICE_TD_NOT_APPROVED"]
    assert run(bound, tcb(), refs=[ref("tdx.mr_td", mr_td), ref("tdx.mr_servicetd", SERVICE_TD)])[1] == []
    td10 = parse_quote(pki().quote(version=4, td_attributes=SEPT_VE_DISABLE))
    assert td10.body.mr_servicetd is None and "mr_servicetd" not in claims_of(td10, None)
    assert run(td10, tcb(), refs=[ref("tdx.mr_td", mr_td), ref("tdx.mr_servicetd", SERVICE_TD)])[1] == ["CLAIM_MISSING"]
