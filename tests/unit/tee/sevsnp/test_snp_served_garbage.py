"""A collateral source (AMD KDS or the cache) serving a VCEK or certificate chain that does not parse: the
appraisal is a signed contraindicated result with the parse error's code, and the bad copy is rejected so the next
request fetches again. Before, the EvidenceError escaped the SNP verifier and the gRPC layer answered INTERNAL
(found while killing issue 16's mutants)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.test_service_snp import DictSource, codes, service
from verifier.appraisal.model import Tier
from verifier.collateral.base import CollateralItem
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


class RejectingSource(DictSource):
    """`DictSource` that also records what the verifier rejects (the cache's `reject`)."""

    def __init__(self, items: dict[str, bytes]) -> None:
        super().__init__(items)
        self.rejected: dict[str, str] = {}

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected[item.key.kind] = reason


@pytest.mark.parametrize("bad", ["amd.vcek", "amd.cert_chain"])
def test_a_served_item_that_does_not_parse_is_a_signed_contraindicated_result(
    db: Database, pki: FakeAmdPki, bad: str
) -> None:
    items = {
        "amd.vcek": pki.vcek.public_bytes(Encoding.DER),
        "amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM),
    }
    items[bad] = b"not a certificate"
    source = RejectingSource(items)
    svc = service(db, pki, collateral_source=source)
    result = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["CERT_MALFORMED"]
    assert result.token  # signed
    assert source.rejected == {bad: "CERT_MALFORMED"}
