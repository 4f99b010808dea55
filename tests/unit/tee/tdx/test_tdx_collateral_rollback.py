"""No collateral rollback (issue 9, item 3): old but genuine collateral sent with the request never beats what the
verifier's source (cache / Intel PCS) has; per item both copies are verified and the newer decides."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.intel_pki import FakeIntelPki
from verifier.appraisal import tdx as tdx_appraisal
from verifier.appraisal.model import Tier, combine
from verifier.appraisal.policy import Policy, TdxRules
from verifier.collateral.base import CollateralSource, OfflineSource
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import CollateralUsed, VerifiedEvidence, VerifyContext
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.tee.tdx.facts import TdxFacts
from verifier.tee.tdx.freshness import Candidate, ItemFacts, Superseded, newer
from verifier.tee.tdx.quote import Quote

MR_TD = b"\x42" * 48
DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


@pytest.fixture(scope="module")
def evidence(pki: FakeIntelPki) -> bytes:
    return pki.quote(mr_td=MR_TD, td_attributes=bytes.fromhex("0000001000000000"))


def _time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(
    pki: FakeIntelPki, evidence: bytes, request: dict[str, bytes], source: CollateralSource | None = None
) -> VerifiedEvidence[Quote, TdxFacts]:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=request, source=source or OfflineSource())
    return TdxVerifier().verify(evidence, ctx)


def appraise(
    pki: FakeIntelPki, verified: VerifiedEvidence[Quote, TdxFacts], policy: Policy | None = None
) -> tuple[Tier, list[Any]]:
    assert verified.failure is None, verified.failure
    refs = [ReferenceValue("tdx.mr_td", "tdx.mr_td", MR_TD, "td", pki.now - DAY)]
    baseline, findings, _ = tdx_appraisal.appraise(verified, policy or Policy(), refs, pki.now)
    return combine(baseline, findings).status, findings


def facts(verified: VerifiedEvidence[Quote, TdxFacts]) -> TdxFacts:
    assert verified.facts is not None
    return verified.facts


def used(verified: VerifiedEvidence[Quote, TdxFacts]) -> dict[str, ItemFacts]:
    return {entry.item: entry for entry in facts(verified).collateral}


def superseded(verified: VerifiedEvidence[Quote, TdxFacts]) -> list[tuple[str, int | None, str, int | None, str]]:
    """Each superseded request item: (item, request number, request issued, used number, used issued)."""
    return [
        (s.used.item, s.request.number, _time(s.request.issued), s.used.number, _time(s.used.issued))
        for s in facts(verified).superseded
    ]


def tcb_files(pki: FakeIntelPki, status: str, number: int, **tcb: Any) -> dict[str, bytes]:
    return pki.collateral_files(tcb_info=pki.tcb_info(status=status, tcbEvaluationDataNumber=number, **tcb))


# --- TCB info ----------------------------------------------------------------------------------------------------


def test_older_request_tcb_info_loses_to_the_verifiers_newer_one(pki: FakeIntelPki, evidence: bytes) -> None:
    """The request says UpToDate at evaluation 17; the cache has 18, after a TCB recovery: OutOfDate decides."""
    request = tcb_files(pki, "UpToDate", 17)
    verified = verify(pki, evidence, request, pki.source(tcb_files(pki, "OutOfDate", 18)))
    assert verified.claims["tcb_status"] == "OutOfDate"
    issued, next_update = _time(pki.now - DAY), _time(pki.now + 29 * DAY)
    tcb_info = ItemFacts("tdx.tcb_info", 18, pki.now - DAY, pki.now + 29 * DAY, "cache")
    assert used(verified)["tdx.tcb_info"] == tcb_info
    service = CollateralUsed("tdx.tcb_info", 18, issued, next_update, "cache")  # what the service reads
    assert service in verified.collateral
    assert facts(verified).superseded == (
        Superseded(ItemFacts("tdx.tcb_info", 17, pki.now - DAY, pki.now + 29 * DAY, "request"), tcb_info),
    )
    assert superseded(verified) == [("tdx.tcb_info", 17, issued, 18, issued)]
    status, findings = appraise(pki, verified)
    assert status is Tier.CONTRAINDICATED
    assert [f.code for f in findings] == ["TDX_TCB_STATUS_NOT_ACCEPTED", "COLLATERAL_SUPERSEDED"]
    informational = findings[1]
    assert informational.value == 0 and informational.tier is Tier.NONE and "tdx.tcb_info" in informational.message
    assert (informational.expected, informational.actual) == (
        f"number 18, issued {issued}",
        f"number 17, issued {issued}",
    )


@pytest.mark.parametrize(("request_status", "source_status"), [("OutOfDate", "UpToDate"), ("UpToDate", "OutOfDate")])
def test_newer_request_tcb_info_is_used(
    pki: FakeIntelPki, evidence: bytes, request_status: str, source_status: str
) -> None:
    verified = verify(pki, evidence, tcb_files(pki, request_status, 18), pki.source(tcb_files(pki, source_status, 17)))
    assert verified.claims["tcb_status"] == request_status
    assert used(verified)["tdx.tcb_info"].source == "request" and used(verified)["tdx.tcb_info"].number == 18
    assert facts(verified).superseded == ()
    status, findings = appraise(pki, verified)
    assert status is (Tier.AFFIRMING if request_status == "UpToDate" else Tier.CONTRAINDICATED)
    assert "COLLATERAL_SUPERSEDED" not in [f.code for f in findings]


def test_same_evaluation_number_then_the_later_issue_date_decides(pki: FakeIntelPki, evidence: bytes) -> None:
    older = tcb_files(pki, "UpToDate", 17, issueDate=_time(pki.now - 2 * DAY))
    newer = tcb_files(pki, "OutOfDate", 17, issueDate=_time(pki.now - HOUR))
    verified = verify(pki, evidence, older, pki.source(newer))
    assert verified.claims["tcb_status"] == "OutOfDate"
    assert superseded(verified)[0][1:3] == (17, _time(pki.now - 2 * DAY))
    verified = verify(pki, evidence, newer, pki.source(older))
    assert verified.claims["tcb_status"] == "OutOfDate" and used(verified)["tdx.tcb_info"].source == "request"


def test_qe_identity_rollback(pki: FakeIntelPki, evidence: bytes) -> None:
    """The fake QE has ISVSVN 4; after the recovery (evaluation 18) only ISVSVN 5 is UpToDate."""
    recovered = pki.qe_identity(
        tcbEvaluationDataNumber=18,
        tcbLevels=[
            {"tcb": {"isvsvn": 5}, "tcbDate": _time(pki.now - 10 * DAY), "tcbStatus": "UpToDate"},
            {
                "tcb": {"isvsvn": 4},
                "tcbDate": _time(pki.now - 100 * DAY),
                "tcbStatus": "OutOfDate",
                "advisoryIDs": ["INTEL-SA-01111"],
            },
        ],
    )
    verified = verify(pki, evidence, pki.collateral_files(), pki.source(pki.collateral_files(qe_identity=recovered)))
    tcb = facts(verified).tcb
    assert tcb is not None and tcb.qe_status == "OutOfDate" and tcb.status == "OutOfDate"
    assert verified.claims["tcb_status"] == "OutOfDate"
    assert [s[0] for s in superseded(verified)] == ["tdx.qe_identity"]


# --- CRLs --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crl", ["pck_crl", "root_ca_crl"])
def test_older_request_crl_cannot_hide_a_revocation(pki: FakeIntelPki, evidence: bytes, crl: str) -> None:
    serial = pki.pck.serial_number if crl == "pck_crl" else pki.pck_ca.serial_number
    mint = pki.pck_crl if crl == "pck_crl" else pki.root_ca_crl
    before = pki.collateral_files(**{f"{crl}.der": mint([], number=1)})
    after = pki.collateral_files(**{f"{crl}.der": mint([serial], number=2)})
    verified = verify(pki, evidence, before, pki.source(after))
    assert verified.failure is not None and verified.failure.code == "TDX_PCK_REVOKED"
    assert superseded(verified) == [(f"tdx.{crl}", 1, _time(pki.now - DAY), 2, _time(pki.now - DAY))]
    newer_request = verify(pki, evidence, after, pki.source(before))  # the request's newer CRL is used
    assert newer_request.failure is not None and newer_request.failure.code == "TDX_PCK_REVOKED"


def test_crl_with_the_same_number_then_the_later_this_update_decides(pki: FakeIntelPki, evidence: bytes) -> None:
    before = pki.collateral_files(**{"pck_crl.der": pki.pck_crl([], this_update=pki.now - 2 * DAY)})
    after = pki.collateral_files(**{"pck_crl.der": pki.pck_crl([pki.pck.serial_number], this_update=pki.now - HOUR)})
    verified = verify(pki, evidence, before, pki.source(after))
    assert verified.failure is not None and verified.failure.code == "TDX_PCK_REVOKED"


# --- availability ------------------------------------------------------------------------------------------------


def test_source_unavailable_the_request_decides(pki: FakeIntelPki, evidence: bytes) -> None:
    verified = verify(pki, evidence, pki.collateral_files(), OfflineSource())
    assert verified.claims["tcb_status"] == "UpToDate"
    expected = [
        ("tdx.tcb_info", "request", 17),
        ("tdx.qe_identity", "request", 17),
        ("tdx.pck_crl", "request", 1),
        ("tdx.root_ca_crl", "request", 1),
    ]
    assert [(e.item, e.source, e.number) for e in facts(verified).collateral] == expected
    assert [(e.item, e.source, e.number) for e in verified.collateral] == expected
    assert verified.revocation == "checked" and facts(verified).superseded == ()
    assert facts(verified).next_update == min(e.next_update for e in facts(verified).collateral)
    assert appraise(pki, verified) == (Tier.AFFIRMING, [])


def test_the_source_is_asked_for_every_item_even_when_the_request_is_complete(
    pki: FakeIntelPki, evidence: bytes
) -> None:
    source = pki.source()
    verify(pki, evidence, pki.collateral_files(), source)
    fmspc = pki.fmspc.hex().upper()
    assert source.fetches == [
        f"intel.tcb_info?fmspc={fmspc}",
        "intel.qe_identity",
        "intel.pck_crl?ca=platform",
        "intel.root_ca_crl",
    ]


def test_items_missing_from_the_request_come_from_the_source(pki: FakeIntelPki, evidence: bytes) -> None:
    newer = tcb_files(pki, "OutOfDate", 18)
    request = {name: newer[name] for name in ("tcb_info.json", "tcb_info_issuer_chain.pem")}
    verified = verify(pki, evidence, request, pki.source(tcb_files(pki, "UpToDate", 17), label="pcs"))
    assert verified.claims["tcb_status"] == "OutOfDate"
    assert {k: v.source for k, v in used(verified).items()} == {
        "tdx.tcb_info": "request",
        "tdx.qe_identity": "vendor",
        "tdx.pck_crl": "vendor",
        "tdx.root_ca_crl": "vendor",
    }


def test_items_missing_from_the_source_come_from_the_request(pki: FakeIntelPki, evidence: bytes) -> None:
    served = pki.collateral_files()
    del served["tcb_info.json"]  # e.g. a 404 for this FMSPC
    verified = verify(pki, evidence, pki.collateral_files(), pki.source(served))
    assert used(verified)["tdx.tcb_info"].source == "request"
    assert used(verified)["tdx.qe_identity"].source == "cache"


def test_nothing_anywhere_is_incomplete(pki: FakeIntelPki, evidence: bytes) -> None:
    verified = verify(pki, evidence, {}, pki.source({}))
    assert facts(verified).collateral_error == verified.incomplete == "COLLATERAL_NOT_FOUND"
    assert verified.revocation == "unavailable" and facts(verified).collateral == () and verified.collateral == ()
    assert facts(verified).tcb is None and verified.claims["tcb_status"] == "unknown"
    offline = verify(pki, evidence, {})
    assert facts(offline).collateral_error == offline.incomplete == "COLLATERAL_OFFLINE"
    assert appraise(pki, verified)[0] is Tier.CONTRAINDICATED


def test_a_source_copy_that_does_not_verify_leaves_the_request_copy(pki: FakeIntelPki, evidence: bytes) -> None:
    later = tcb_files(pki, "OutOfDate", 18, issueDate=_time(pki.now + HOUR))  # not yet valid at the appraisal time
    verified = verify(pki, evidence, pki.collateral_files(), pki.source(later))
    assert verified.failure is None and used(verified)["tdx.tcb_info"].source == "request"
    other = ec.generate_private_key(ec.SECP256R1())
    forged = pki.collateral_files(
        **{
            "tcb_info.json": pki.sign_json(
                "tcbInfo", pki.tcb_info(status="OutOfDate", tcbEvaluationDataNumber=18), other
            )
        }
    )
    verified = verify(pki, evidence, pki.collateral_files(), pki.source(forged))
    assert verified.failure is None and used(verified)["tdx.tcb_info"].source == "request"
    alone = verify(pki, evidence, {}, pki.source(later))  # nothing else: the source's error stands
    assert alone.failure is not None and alone.failure.code == "TDX_COLLATERAL_EXPIRED"


def test_a_request_copy_that_does_not_verify_is_refused_even_with_a_good_source(
    pki: FakeIntelPki, evidence: bytes
) -> None:
    request = pki.collateral_files()
    request["tcb_info.json"] = request["tcb_info.json"].replace(
        b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":99'
    )
    verified = verify(pki, evidence, request, pki.source())
    assert verified.failure is not None and verified.failure.code == "TDX_COLLATERAL_SIGNATURE_INVALID"


# --- policy: minimum evaluation number, maximum age ----------------------------------------------------------------


def test_minimum_tcb_evaluation_data_number(pki: FakeIntelPki, evidence: bytes) -> None:
    policy = Policy(tdx=TdxRules(minimum_tcb_evaluation_data_number=18))
    status, findings = appraise(pki, verify(pki, evidence, tcb_files(pki, "UpToDate", 17)), policy)
    assert status is Tier.CONTRAINDICATED
    [finding] = findings
    assert (finding.code, finding.claim.value, finding.expected, finding.actual) == (
        "TDX_TCB_EVALUATION_NUMBER_BELOW_MINIMUM",
        "hardware",
        ">= 18",
        "17",
    )
    recovered = verify(pki, evidence, tcb_files(pki, "UpToDate", 17), pki.source(tcb_files(pki, "UpToDate", 18)))
    assert appraise(pki, recovered, policy)[0] is Tier.AFFIRMING


def test_max_collateral_age_hours(pki: FakeIntelPki, evidence: bytes) -> None:
    files = tcb_files(pki, "UpToDate", 17, issueDate=_time(pki.now - HOUR))  # the rest was issued a day ago
    verified = verify(pki, evidence, files)
    status, findings = appraise(pki, verified, Policy(tdx=TdxRules(max_collateral_age_hours=12)))
    assert status is Tier.CONTRAINDICATED
    assert [f.code for f in findings] == ["COLLATERAL_TOO_OLD"] * 3
    assert [f.message.split(" ")[0] for f in findings] == ["tdx.qe_identity", "tdx.pck_crl", "tdx.root_ca_crl"]
    assert {(f.claim.value, f.expected, f.actual) for f in findings} == {
        ("hardware", f"issued at or after {_time(pki.now - 12 * HOUR)}", _time(pki.now - DAY))
    }
    assert appraise(pki, verified, Policy(tdx=TdxRules(max_collateral_age_hours=25)))[0] is Tier.AFFIRMING


def test_order_numbers_then_issue_times() -> None:
    t0 = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)

    def cand(number: int | None, issued: dt.datetime, source: str) -> Candidate[str]:
        return Candidate(source, ItemFacts("tdx.pck_crl", number, issued, t0 + 30 * DAY, source))

    assert newer(cand(2, t0, "request"), cand(1, t0 + DAY, "cache"))[0].value == "request"  # the number decides
    chosen, old = newer(cand(1, t0, "request"), cand(1, t0 + DAY, "cache"))
    assert chosen.value == "cache" and old is not None and old.request.issued == t0
    assert newer(cand(None, t0 + DAY, "request"), cand(7, t0, "cache"))[0].value == "request"  # no number: times
    assert newer(cand(3, t0, "request"), cand(3, t0, "cache")) == (cand(3, t0, "cache"), None)  # tie: the verifier's
    assert newer(None, cand(3, t0, "cache"))[0].value == "cache"
