"""appraisal/snp.py on revocation and collateral facts: fail-closed unavailable revocation, the superseded request
CRL (informational, AR4SI 0), and the maximum CRL age of the policy."""

from __future__ import annotations

import datetime as dt
from typing import Any

from verifier.appraisal.model import Finding, Tier, combine
from verifier.appraisal.policy import Policy, SnpRules
from verifier.appraisal.snp import appraise_snp
from verifier.reference_values.model import ReferenceValue

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
MEASUREMENT = "11" * 48


def snp_claims() -> dict[str, Any]:
    return {
        "policy": "0x0000000000030000",
        "policy_decoded": {"debug": False, "migrate_ma": False},
        "vmpl": 0,
        "measurement": MEASUREMENT,
        "chip_id": "ab" * 64,
        "current_build_minor_major": [3, 55, 1],
    }


def ref(kind: str, value: str) -> ReferenceValue:
    return ReferenceValue(
        id=kind, kind=kind, value=bytes.fromhex(value), label="x", created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )


def _crl(issued: str, number: int | None = 4) -> dict[str, Any]:
    return {
        "item": "amd.crl",
        "number": number,
        "issued": issued,
        "next_update": "2025-06-08T00:00:00Z",
        "source": "vendor",
    }


def _run(
    details: dict[str, Any], rules: SnpRules | None = None, at: dt.datetime | None = AT
) -> tuple[Tier, list[Finding]]:
    baseline, findings, _ = appraise_snp(
        snp_claims(), details, Policy(snp=rules or SnpRules()), [ref("snp.measurement", MEASUREMENT)], at=at
    )
    return combine(baseline, findings).status, findings


def test_revocation_unavailable_fails_closed_unless_the_policy_opens_it() -> None:
    details = {"revocation": "unavailable", "crl": "unavailable", "crl_reason": "COLLATERAL_OFFLINE"}
    status, findings = _run(details)
    assert (status, [f.code for f in findings]) == (Tier.CONTRAINDICATED, ["SNP_CRL_UNAVAILABLE"])
    assert "COLLATERAL_OFFLINE" in findings[0].message
    assert _run(details, SnpRules(crl_fail_open=True))[0] is Tier.WARNING
    assert _run({"revocation": "unavailable"})[0] is Tier.CONTRAINDICATED  # the new key alone
    assert _run({"crl": "unavailable"})[0] is Tier.CONTRAINDICATED  # the older key alone
    assert _run({"revocation": "off"})[0] is Tier.AFFIRMING  # an explicit opt-out


def test_superseded_request_crl_is_informational() -> None:
    lost = {
        "item": "amd.crl",
        "request": {"number": 3, "issued": "2025-05-01T00:00:00Z"},
        "used": {"number": 4, "issued": "2025-05-31T00:00:00Z"},
    }
    status, findings = _run(
        {"revocation": "checked", "collateral": [_crl("2025-05-31T00:00:00Z")], "collateral_superseded": [lost]}
    )
    assert status is Tier.AFFIRMING
    [finding] = findings
    assert (finding.code, finding.value, finding.claim.value) == ("COLLATERAL_SUPERSEDED", 0, "hardware")
    assert finding.expected == "number 4, thisUpdate 2025-05-31T00:00:00Z"
    assert finding.actual == "number 3, thisUpdate 2025-05-01T00:00:00Z"


def test_max_collateral_age() -> None:
    details = {"revocation": "checked", "collateral": [_crl("2025-05-31T00:00:00Z")]}  # 36 h before AT
    status, findings = _run(details, SnpRules(max_collateral_age_hours=24))
    assert (status, [f.code for f in findings]) == (Tier.CONTRAINDICATED, ["COLLATERAL_TOO_OLD"])
    assert findings[0].claim.value == "hardware"
    assert findings[0].expected == "thisUpdate >= 2025-05-31T12:00:00Z (at most 24 h old)"
    assert findings[0].actual == "thisUpdate 2025-05-31T00:00:00Z (number 4, vendor)"
    assert _run(details, SnpRules(max_collateral_age_hours=36))[0] is Tier.AFFIRMING  # exactly the limit
    assert _run(details)[0] is Tier.AFFIRMING  # no limit configured


def test_max_collateral_age_uses_the_recorded_appraisal_time_and_fails_closed_without_one() -> None:
    details = {
        "revocation": "checked",
        "collateral": [_crl("2025-05-31T00:00:00Z")],
        "appraised_at": "2025-06-01T12:00:00Z",
    }
    assert _run(details, SnpRules(max_collateral_age_hours=24), at=None)[0] is Tier.CONTRAINDICATED
    assert _run(details, SnpRules(max_collateral_age_hours=48), at=None)[0] is Tier.AFFIRMING
    del details["appraised_at"]
    assert _run(details, SnpRules(max_collateral_age_hours=48), at=None)[0] is Tier.CONTRAINDICATED
    garbled = {"revocation": "checked", "collateral": [_crl("yesterday")]}
    assert _run(garbled, SnpRules(max_collateral_age_hours=48))[0] is Tier.CONTRAINDICATED
