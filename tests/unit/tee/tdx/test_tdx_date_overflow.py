"""Dates at the edge of Python's datetime range in Intel collateral (hostile input, found while splitting
collateral/pcs.py): "0001-01-01T00:00:00+01:00" parses, but converting it to UTC overflows (OverflowError, not
ValueError), as does "9999-12-31T23:59:59-01:00". Before the fix that OverflowError escaped the TCB-info / QE-identity
parser, the collateral ordering and the PCS nextUpdate reader, so a request carrying such a document (signed or not)
was answered INTERNAL instead of a signed negative result; now each is the same malformed-collateral outcome as any
other bad date."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralUnavailableError
from verifier.collateral.ordering import version_of
from verifier.collateral.pcs_items import KIND_QE_IDENTITY, KIND_TCB_INFO, envelope, next_update
from verifier.tee.base import VerifyContext
from verifier.tee.tdx.evidence import TdxVerifier

EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
FIELDS = ["issueDate", "nextUpdate"]


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def _documents(pki: FakeIntelPki, document: str, field: str, value: str) -> dict[str, Any]:
    if document == "tcb_info":
        return {"tcb_info": pki.tcb_info(**{field: value})}
    return {"qe_identity": pki.qe_identity(**{field: value})}


@pytest.mark.parametrize("value", EDGES, ids=["year-1-east", "year-9999-west"])
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("document", ["tcb_info", "qe_identity"])
@pytest.mark.parametrize("signer", ["intel", "stray"])
def test_an_out_of_range_date_in_request_collateral_is_a_verification_failure(
    pki: FakeIntelPki, document: str, field: str, value: str, signer: str
) -> None:
    overrides = _documents(pki, document, field, value)
    if signer == "intel":
        files = pki.collateral_files(**overrides)
    else:
        stray = ec.generate_private_key(ec.SECP256R1())
        files = pki.collateral_signed_by(stray, [pki.tcb_signing, pki.root], **overrides)
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=files)
    verified = TdxVerifier().verify(pki.quote(), ctx)  # before the fix: OverflowError
    assert verified.failure is not None or verified.incomplete is not None
    if verified.failure is not None:
        assert "COLLATERAL" in verified.failure.code or "SIGNATURE" in verified.failure.code, verified.failure


def test_a_tcb_level_date_out_of_range_is_malformed(pki: FakeIntelPki) -> None:
    info = pki.tcb_info()
    info["tcbLevels"][0]["tcbDate"] = EDGES[0]
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(tcb_info=info))
    verified = TdxVerifier().verify(pki.quote(), ctx)
    assert verified.failure is not None and "COLLATERAL" in verified.failure.code, verified.failure


@pytest.mark.parametrize("value", EDGES, ids=["year-1-east", "year-9999-west"])
@pytest.mark.parametrize(("kind", "member"), [(KIND_TCB_INFO, "tcbInfo"), (KIND_QE_IDENTITY, "enclaveIdentity")])
def test_ordering_and_next_update_of_an_out_of_range_date(
    pki: FakeIntelPki, kind: str, member: str, value: str
) -> None:
    document = pki.tcb_info if kind == KIND_TCB_INFO else pki.qe_identity
    body = pki.sign_json(member, document(issueDate=value, nextUpdate=value))
    data = envelope(kind, body, "")
    assert version_of(kind, data) is None  # documented: never raises
    with pytest.raises(CollateralUnavailableError) as info:
        next_update(kind, data)
    assert info.value.code == "COLLATERAL_MALFORMED"
