"""TdxVerifier's typed outcome (tee/tdx/facts.py): `VerifiedEvidence[Quote, TdxFacts]` (no string-keyed details), the
facts the appraiser reads (TCB evaluation, collateral used and superseded, collateral error) and the service's
typed fields (`incomplete`, `retry_after`, `revocation`, `collateral`) on every path: mint, verify, appraise."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fakes.intel_pki import FakeIntelPki
from verifier.appraisal import tdx as tdx_appraisal
from verifier.appraisal.model import Tier, combine
from verifier.appraisal.policy import Policy
from verifier.clock import to_rfc3339
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from verifier.reference_values.model import ReferenceValue
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.tee.tdx.facts import TdxFacts
from verifier.tee.tdx.freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO
from verifier.tee.tdx.quote import Quote
from verifier.tee.tdx.tcb import TcbResult

MR_TD = b"\x42" * 48
SEPT_VE_DISABLE = bytes.fromhex("0000001000000000")
DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


@pytest.fixture(scope="module")
def evidence(pki: FakeIntelPki) -> bytes:
    return pki.quote(mr_td=MR_TD, td_attributes=SEPT_VE_DISABLE)


class _Busy:
    """A collateral source that is rate limited: every fetch is unavailable with a retry-after."""

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        raise CollateralUnavailableError("COLLATERAL_RATE_LIMITED", f"{key.kind}: slow down", retry_after=30.0)


def verify(
    pki: FakeIntelPki, evidence: bytes, request: dict[str, bytes], source: CollateralSource | None = None
) -> VerifiedEvidence[Quote, TdxFacts]:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=request, **({"source": source} if source else {}))
    return TdxVerifier().verify(evidence, ctx)


def appraise(pki: FakeIntelPki, verified: VerifiedEvidence[Quote, TdxFacts]) -> tuple[Tier, list[str]]:
    refs = [ReferenceValue("tdx.mr_td", "tdx.mr_td", MR_TD, "td", pki.now - DAY)]
    baseline, findings, _ = tdx_appraisal.appraise(verified, Policy(), refs, pki.now)
    return combine(baseline, findings).status, [f.code for f in findings]


def test_a_verified_quote_carries_its_quote_and_typed_facts(pki: FakeIntelPki, evidence: bytes) -> None:
    verified = verify(pki, evidence, pki.collateral_files())
    assert verified.failure is None
    assert isinstance(verified.parsed, Quote) and verified.parsed.body.mr_td == MR_TD
    facts = verified.facts
    assert isinstance(facts, TdxFacts) and facts.collateral_error is None
    assert facts.tcb == TcbResult("UpToDate", pki.now - 100 * DAY, (), "UpToDate", "UpToDate", "UpToDate")
    assert [item.item for item in facts.collateral] == [TCB_INFO, QE_IDENTITY, PCK_CRL, ROOT_CA_CRL]
    assert facts.item(TCB_INFO) is facts.collateral[0] and facts.item("tdx.nothing") is None
    assert facts.superseded == () and facts.next_update == min(item.next_update for item in facts.collateral)
    assert (verified.incomplete, verified.retry_after, verified.revocation) == (None, None, "checked")
    assert [used.to_json() for used in verified.collateral] == [item.to_json() for item in facts.collateral]
    assert (verified.claims["tcb_status"], verified.claims["advisory_ids"], verified.claims["tcb_date"]) == (
        "UpToDate",
        [],
        to_rfc3339(pki.now - 100 * DAY),
    )
    assert appraise(pki, verified) == (Tier.AFFIRMING, [])


def test_an_out_of_date_platform_has_its_advisories_in_the_facts(pki: FakeIntelPki, evidence: bytes) -> None:
    verified = verify(pki, evidence, pki.collateral_files(tcb_info=pki.tcb_info(status="OutOfDate")))
    assert verified.facts is not None and verified.facts.tcb is not None
    assert (verified.facts.tcb.status, verified.facts.tcb.advisory_ids) == ("OutOfDate", ("INTEL-SA-01036",))
    assert verified.claims["advisory_ids"] == ["INTEL-SA-01036"]
    assert appraise(pki, verified) == (Tier.CONTRAINDICATED, ["TDX_TCB_STATUS_NOT_ACCEPTED"])


def test_unavailable_collateral_is_incomplete_with_its_retry_after(pki: FakeIntelPki, evidence: bytes) -> None:
    verified = verify(pki, evidence, {}, _Busy())
    assert verified.failure is None
    assert verified.facts == TdxFacts(collateral_error="COLLATERAL_RATE_LIMITED")
    assert (verified.incomplete, verified.retry_after, verified.revocation) == (
        "COLLATERAL_RATE_LIMITED",
        30.0,
        "unavailable",
    )
    assert verified.collateral == () and verified.claims["tcb_status"] == "unknown"
    assert appraise(pki, verified) == (Tier.CONTRAINDICATED, ["TDX_TCB_UNKNOWN"])


@pytest.mark.parametrize(
    ("case", "code"),
    [
        pytest.param("request-collateral-forged", "TDX_COLLATERAL_SIGNATURE_INVALID", id="collateral-fails"),
        pytest.param("pck-revoked", "TDX_PCK_REVOKED", id="quote-fails-after-collateral"),
        pytest.param("fmspc-mismatch", "TDX_FMSPC_MISMATCH", id="tcb-evaluation-fails"),
    ],
)
def test_a_failure_keeps_the_facts_known_by_then(pki: FakeIntelPki, evidence: bytes, case: str, code: str) -> None:
    files = {
        "request-collateral-forged": {
            **pki.collateral_files(),
            "tcb_info.json": pki.collateral_files()["tcb_info.json"].replace(b":17,", b":99,"),
        },
        "pck-revoked": pki.collateral_files(**{"pck_crl.der": pki.pck_crl([pki.pck.serial_number])}),
        "fmspc-mismatch": pki.collateral_files(tcb_info=pki.tcb_info(fmspc="00A06D080000")),
    }[case]
    verified = verify(pki, evidence, files)
    assert verified.failure is not None and verified.failure.code == code
    assert isinstance(verified.parsed, Quote)
    assert verified.facts is not None and verified.facts.tcb is None and verified.incomplete is None
    collateral_checked = case != "request-collateral-forged"
    assert len(verified.facts.collateral) == (4 if collateral_checked else 0)
    assert verified.revocation == ("checked" if collateral_checked else "unavailable")
    assert len(verified.collateral) == len(verified.facts.collateral)


@pytest.mark.parametrize(
    ("evidence", "code", "parsed"),
    [
        pytest.param(b"\x04\x00", "TDX_QUOTE_TRUNCATED", False, id="unparsable"),
        pytest.param(None, "CERT_MALFORMED", True, id="no-pck-chain"),
    ],
)
def test_evidence_that_fails_before_collateral_has_no_facts(
    pki: FakeIntelPki, evidence: bytes | None, code: str, parsed: bool
) -> None:
    raw = evidence if evidence is not None else pki.quote(pck_chain_pem=b"not a chain")
    verified = verify(pki, raw, pki.collateral_files())
    assert verified.failure is not None and verified.failure.code == code
    assert verified.facts is None and verified.collateral == ()
    assert verified.revocation is None and verified.incomplete is None
    assert isinstance(verified.parsed, Quote) is parsed
    baseline, findings, _ = tdx_appraisal.appraise(verified, Policy(), [], pki.now)
    assert baseline == {} and [f.code for f in findings] == ["TDX_NOT_APPRAISABLE"]
