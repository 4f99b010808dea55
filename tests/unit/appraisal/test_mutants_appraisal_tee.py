"""Tests for mutants that survived scripts/mutation.py in the per-TEE appraisal rules (appraisal/references.py,
tdx.py): MRSEAM allow-lists, the EXECUTABLES and HARDWARE baselines, the TDX grace period and the advisory texts.
TDX quotes are minted by the fake Intel PKI, the TDX facts are `TdxFacts` (tee/tdx/facts.py). The SNP cases
(CHIP_ID, GUEST_SVN, TCB and firmware minimums, the AMD CRL facts) are in test_snp_mutants_appraisal.py."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from tests.unit.appraisal.test_appraisal_tdx import AT as TDX_AT
from tests.unit.appraisal.test_appraisal_tdx import quote as tdx_quote
from tests.unit.appraisal.test_appraisal_tdx import tcb as tdx_details
from tests.unit.appraisal.test_appraisal_tdx import verified as tdx_verified
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, WARNING_UNSAFE, Claim, Finding, Tier, combine
from verifier.appraisal.policy import Policy, TdxRules
from verifier.appraisal.references import check_references
from verifier.appraisal.tdx import NO_CLAIM
from verifier.appraisal.tdx import appraise as appraise_tdx
from verifier.reference_values.kinds import normalize_value
from verifier.reference_values.model import ReferenceValue
from verifier.tee.tdx.facts import TdxFacts
from verifier.tee.tdx.freshness import ItemFacts, Superseded
from verifier.tee.tdx.quote import Quote

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(f"{kind}={value}", kind, normalize_value(kind, value), "w", AT - dt.timedelta(days=30))


# --- references.py: check_references, a reference of a kind the verifier cannot compare -------------------------
def test_a_reference_of_an_unknown_kind_is_a_mismatch() -> None:
    unknown = ReferenceValue("u", "snp.not_a_kind", b"\xaa", "w", AT)
    findings, matched = check_references("snp", {"snp.not_a_kind": "aa"}, (), [unknown])
    assert matched == []
    assert [(f.code, f.claim, f.value, f.expected, f.actual) for f in findings] == [
        ("REFERENCE_VALUE_MISMATCH", Claim.EXECUTABLES, CONTRAINDICATED, "a known kind", "aa")
    ]
    assert findings[0].message == "snp.not_a_kind is not a kind this verifier can compare"


# --- tdx.py: appraise ----------------------------------------------------------------------------------------------


def tdx(quote: Quote, facts: TdxFacts, rules: TdxRules | None = None) -> tuple[dict[Claim, int], list[Finding]]:
    baseline, findings, _ = appraise_tdx(
        tdx_verified(quote, facts), Policy(tdx=rules or TdxRules()), [ref("tdx.mr_td", quote.body.mr_td.hex())], TDX_AT
    )
    return baseline, findings


_TCB_INFO = ItemFacts("tdx.tcb_info", 17, TDX_AT - dt.timedelta(days=1), TDX_AT + dt.timedelta(days=29), "cache")


@pytest.mark.parametrize(
    ("facts", "value"),
    [
        pytest.param(tdx_details(), None, id="up-to-date"),
        pytest.param(
            dataclasses.replace(tdx_details(), superseded=(Superseded(_TCB_INFO, _TCB_INFO),)),
            NO_CLAIM,
            id="up-to-date-with-an-informational-finding",
        ),
        pytest.param(tdx_details("SWHardeningNeeded"), WARNING_UNSAFE, id="warning-exactly"),
        pytest.param(tdx_details("OutOfDate"), CONTRAINDICATED, id="contraindicated"),
        pytest.param(TdxFacts(), CONTRAINDICATED, id="no-tcb"),
    ],
)
def test_tdx_hardware_baseline_is_affirming_only_without_a_warning_or_worse(facts: TdxFacts, value: int | None) -> None:
    baseline, findings = tdx(tdx_quote(), facts)
    hardware = [f.value for f in findings if f.claim is Claim.HARDWARE]
    affirmed = value in (None, NO_CLAIM)
    assert hardware == ([] if value is None else [value])
    assert baseline.get(Claim.HARDWARE) == (AFFIRMING if affirmed else None)
    assert combine(baseline, findings).get(Claim.HARDWARE) == (AFFIRMING if affirmed else value)


def test_tdx_allowed_mr_seam_accepts_the_minted_quotes_module() -> None:
    from tests.fakes.intel_pki import FakeIntelPki
    from verifier.tee.tdx.quote import parse_quote

    quote = parse_quote(FakeIntelPki().quote(td_attributes=bytes.fromhex("0000001000000000")))
    seam = quote.body.mr_seam
    _, findings = tdx(quote, tdx_details(), TdxRules(allowed_mr_seams=(seam,)))
    assert findings == []
    _, findings = tdx(quote, tdx_details(), TdxRules(allowed_mr_seams=(b"\x01" * 48,)))
    assert [(f.code, f.actual) for f in findings] == [("TDX_MR_SEAM_NOT_ALLOWED", seam.hex())]


GRACE = 90
EDGE = TDX_AT - dt.timedelta(days=GRACE)


def _rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("status", "date", "grace", "value"),
    [
        pytest.param("OutOfDate", "2025-05-01T00:00:00Z", GRACE, WARNING_UNSAFE, id="recent-within-grace"),
        pytest.param("OutOfDate", "2024-01-01T00:00:00Z", GRACE, CONTRAINDICATED, id="old-beyond-grace"),
        pytest.param("OutOfDate", _rfc3339(EDGE), GRACE, CONTRAINDICATED, id="exactly-at-the-grace-edge"),
        pytest.param(
            "OutOfDate", _rfc3339(EDGE + dt.timedelta(seconds=1)), GRACE, WARNING_UNSAFE, id="one-second-inside"
        ),
        pytest.param("OutOfDate", "2025-05-01T00:00:00Z", None, CONTRAINDICATED, id="no-grace-configured"),
        pytest.param("OutOfDate", None, GRACE, CONTRAINDICATED, id="no-tcb-date"),
        pytest.param("Revoked", "2025-05-01T00:00:00Z", GRACE, CONTRAINDICATED, id="revoked-never-has-grace"),
    ],
)
def test_tdx_grace_period(status: str, date: str | None, grace: int | None, value: int) -> None:
    baseline, findings = tdx(tdx_quote(), tdx_details(status, date=date), TdxRules(grace_days=grace))
    assert [(f.code, f.value) for f in findings] == [("TDX_TCB_STATUS_NOT_ACCEPTED", value)]
    assert combine(baseline, findings).status is Tier.of(value)


@pytest.mark.parametrize(
    ("advisories", "shown"),
    [
        pytest.param(("INTEL-SA-00837", "INTEL-SA-00615"), "(INTEL-SA-00837, INTEL-SA-00615)", id="listed"),
        pytest.param((), "(no advisory IDs)", id="none"),
    ],
)
def test_tdx_warning_status_names_its_advisories(advisories: tuple[str, ...], shown: str) -> None:
    _, findings = tdx(tdx_quote(), tdx_details("SWHardeningNeeded", advisories))
    (finding,) = findings
    assert finding.code == "TDX_TCB_STATUS_WARNING"
    assert finding.message == f"Intel TCB status SWHardeningNeeded: genuine, with known issues {shown}"


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        pytest.param(("INTEL-SA-00615", "INTEL-SA-00657"), "INTEL-SA-00615, INTEL-SA-00657", id="listed"),
        pytest.param((), "none", id="empty-allow-list"),
    ],
)
def test_tdx_advisory_not_allowed_shows_the_allow_list(allow: tuple[str, ...], expected: str) -> None:
    _, findings = tdx(tdx_quote(), tdx_details(advisories=("INTEL-SA-00837",)), TdxRules(advisory_allow=allow))
    assert [(f.code, f.expected, f.actual) for f in findings] == [
        ("TDX_ADVISORY_NOT_ALLOWED", expected, "INTEL-SA-00837")
    ]
