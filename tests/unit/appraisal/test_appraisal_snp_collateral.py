"""appraisal/snp.py on revocation and collateral facts (`SnpFacts`): fail-closed unavailable revocation, the
superseded request CRL (informational, AR4SI 0), and the maximum CRL age of the policy at the appraisal time.

Reports are minted by the fake AMD PKI and verified by the real SnpVerifier (request CRL, a source standing in for
KDS, offline); facts the verifier does not produce from the fakes (an unreadable thisUpdate) are set by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.appraisal.test_snp_appraise_seam import Served, request_files, run, verify, with_facts
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, SnpRules
from verifier.tee.base import CollateralUsed
from verifier.tee.sevsnp.facts import SnpFacts
from verifier.tee.sevsnp.tcb import Product

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)  # 36 h after the fake CRL's default thisUpdate


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


def _policy(rules: SnpRules) -> Policy:
    return Policy(snp=rules)


def test_revocation_unavailable_fails_closed_unless_the_policy_opens_it(pki: FakeAmdPki) -> None:
    offline = verify(pki, collateral=request_files(pki))  # no CRL in the request, none from the (offline) source
    assert offline.facts is not None
    assert (offline.facts.revocation, offline.facts.crl_reason) == ("unavailable", "COLLATERAL_OFFLINE")
    status, findings = run(offline, at=AT)
    assert (status, [f.code for f in findings]) == (Tier.CONTRAINDICATED, ["SNP_CRL_UNAVAILABLE"])
    assert "COLLATERAL_OFFLINE" in findings[0].message and "forbids" in findings[0].message
    assert (findings[0].claim.value, findings[0].actual) == ("hardware", "unavailable")
    opened, findings = run(offline, _policy(SnpRules(crl_fail_open=True)), at=AT)
    assert opened is Tier.WARNING and "allows" in findings[0].message
    # The state alone (no reason recorded) is as closed.
    status, findings = run(with_facts(offline, crl_reason=None), at=AT)
    assert status is Tier.CONTRAINDICATED and "(unavailable)" in findings[0].message
    # An explicit opt-out (`--no-check-crl`) is "off": no finding.
    off = verify(pki, collateral=request_files(pki), check_crl=False)
    assert off.facts is not None and off.facts.revocation == "off"
    assert run(off, at=AT) == (Tier.AFFIRMING, [])


def test_superseded_request_crl_is_informational(pki: FakeAmdPki) -> None:
    older = pki.now - dt.timedelta(days=31)
    verified = verify(
        pki,
        collateral=request_files(pki, crl=pki.crl(number=3, this_update=older)),
        source=Served({"amd.crl": pki.crl(number=4)}),
    )
    assert verified.facts is not None and verified.facts.revocation == "checked"
    status, findings = run(verified, at=AT)
    assert status is Tier.AFFIRMING
    [finding] = findings
    assert (finding.code, finding.value, finding.claim.value) == ("COLLATERAL_SUPERSEDED", 0, "hardware")
    assert finding.expected == "number 4, thisUpdate 2025-05-31T00:00:00Z"
    assert finding.actual == "number 3, thisUpdate 2025-05-01T00:00:00Z"


def test_max_collateral_age(pki: FakeAmdPki) -> None:
    verified = verify(pki, collateral=request_files(pki), source=Served({"amd.crl": pki.crl(number=4)}), at=AT)
    assert verified.facts is not None and verified.facts.crl is not None
    assert verified.facts.crl.issued == "2025-05-31T00:00:00Z"  # 36 h before AT
    status, findings = run(verified, _policy(SnpRules(max_collateral_age_hours=24)), at=AT)
    assert (status, [f.code for f in findings]) == (Tier.CONTRAINDICATED, ["COLLATERAL_TOO_OLD"])
    assert findings[0].claim.value == "hardware"
    assert findings[0].expected == "thisUpdate >= 2025-05-31T12:00:00Z (at most 24 h old)"
    assert findings[0].actual == "thisUpdate 2025-05-31T00:00:00Z (number 4, vendor)"
    # exactly the limit
    assert run(verified, _policy(SnpRules(max_collateral_age_hours=36)), at=AT)[0] is Tier.AFFIRMING
    assert run(verified, at=AT)[0] is Tier.AFFIRMING  # no limit configured


def test_max_collateral_age_is_judged_at_the_appraisal_time_and_fails_closed_on_an_unreadable_date(
    pki: FakeAmdPki,
) -> None:
    """The age is measured at the `at` the appraiser is given (not at the verification time); an aware time in
    another zone is the same instant (the finding says it in UTC); a thisUpdate that does not parse fails closed."""
    verified = verify(pki, collateral=request_files(pki), source=Served({"amd.crl": pki.crl(number=4)}))
    day = _policy(SnpRules(max_collateral_age_hours=24))
    assert run(verified, day, at=pki.now)[0] is Tier.AFFIRMING  # 24 h old when verified
    assert run(verified, day, at=AT)[0] is Tier.CONTRAINDICATED  # 36 h old when appraised
    assert run(verified, _policy(SnpRules(max_collateral_age_hours=48)), at=AT)[0] is Tier.AFFIRMING
    plus_two = AT.astimezone(dt.timezone(dt.timedelta(hours=2)))
    status, findings = run(verified, day, at=plus_two)
    assert status is Tier.CONTRAINDICATED
    assert findings[0].expected == "thisUpdate >= 2025-05-31T12:00:00Z (at most 24 h old)"
    assert verified.facts is not None and verified.facts.crl is not None
    for garbled in ("yesterday", None, 1748649600):
        bad = with_facts(verified, crl=CollateralUsed(**{**verified.facts.crl.to_json(), "issued": garbled}))
        assert run(bad, _policy(SnpRules(max_collateral_age_hours=48)), at=AT)[0] is Tier.CONTRAINDICATED, garbled


def test_the_age_rule_bounds_only_the_crl_that_decided(pki: FakeAmdPki) -> None:
    """Without a deciding CRL (revocation off) there is nothing to bound; old certificates beside a fresh CRL are not
    the CRL's age."""
    off = verify(pki, collateral=request_files(pki), check_crl=False)
    assert [c.item for c in off.collateral] == ["amd.vcek", "amd.cert_chain"]
    assert off.collateral[1].issued < "2025-01-01"  # the ASK was issued a year before
    assert run(off, _policy(SnpRules(max_collateral_age_hours=1)), at=AT)[0] is Tier.AFFIRMING
    fresh = verify(pki, collateral=request_files(pki, crl=pki.crl(this_update=AT - dt.timedelta(hours=1))), at=AT)
    assert [c.item for c in fresh.collateral] == ["amd.vcek", "amd.cert_chain", "amd.crl"]
    assert run(fresh, _policy(SnpRules(max_collateral_age_hours=2)), at=AT)[0] is Tier.AFFIRMING
    assert SnpFacts(revocation="checked").crl is None  # the facts name the deciding CRL, nothing else
