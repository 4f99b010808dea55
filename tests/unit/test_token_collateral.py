"""Issue 9 items 3 and 4: the signed result says which vendor collateral decided and whether revocation was
checked (`collateral`, `revocation` in the submodule's `ear_verifier_claims`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.service_helpers import make_harness
from tests.unit.test_service_snp import _chain_source, files, service
from verifier.appraisal.model import Tier
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


def _submod(token: str, tee: str) -> dict[str, Any]:
    body = token.split(".")[1]
    payload: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    submod: dict[str, Any] = payload["submods"][tee]
    return submod


def test_snp_token_names_the_crl_that_decided(db: Database, pki: FakeAmdPki) -> None:
    source = _chain_source(pki, pki.crl(number=7))
    svc = service(db, pki, check_crl=True, collateral_source=source)
    result = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": pki.crl(number=3)})
    )
    assert result.appraisal.status is Tier.AFFIRMING, [f.code for f in result.appraisal.findings]
    submod = _submod(result.token, "snp")
    assert submod["ear_verifier_claims"]["revocation"] == "checked"
    crls = [c for c in submod["ear_verifier_claims"]["collateral"] if c["item"] == "amd.crl"]
    assert len(crls) == 1 and crls[0]["number"] == 7 and crls[0]["source"] == "vendor"
    assert {"issued", "next_update"} <= set(crls[0])
    assert [f["code"] for f in submod["ear_verifier_claims"]["findings"]] == ["COLLATERAL_SUPERSEDED"]


def test_snp_token_says_when_revocation_was_not_checked(db: Database, pki: FakeAmdPki) -> None:
    off = service(db, pki, check_crl=False).appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki))
    )
    assert _submod(off.token, "snp")["ear_verifier_claims"]["revocation"] == "off"
    unavailable = service(db, pki, check_crl=True).appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki))
    )
    assert _submod(unavailable.token, "snp")["ear_verifier_claims"]["revocation"] == "unavailable"
    assert unavailable.appraisal.status is Tier.CONTRAINDICATED  # fail closed by default


def test_nitro_token_says_revocation_does_not_apply(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert _submod(result.token, "nitro")["ear_verifier_claims"]["revocation"] == "not-applicable"
