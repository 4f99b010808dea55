"""A non-zero reserved byte in a TCB_VERSION field of an SNP report (ABI spec pub. 56860, "TCB_VERSION Structure";
Milan/Genoa bytes 2..5, Turin 4..6) is a signed "no" with SNP_RESERVED_NONZERO, never an escaped error.

Before the parser checked them, REPORTED_TCB reached decode_tcb outside any handler when the VCEK had to come from
the collateral source (KDS), and the request failed with gRPC INTERNAL; the other three fields were not checked."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.unit.test_service_snp import DictSource, files, service
from verifier.appraisal.model import Tier
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product

CASES = [(Product.GENOA, 2), (Product.MILAN, 5), (Product.TURIN, 6), (Product.TURIN, 4)]
FIELDS = ("reported_tcb", "current_tcb", "committed_tcb", "launch_tcb")


@pytest.mark.parametrize(("product", "index"), CASES, ids=[f"{p.value}-{i}" for p, i in CASES])
def test_reserved_tcb_byte_is_contraindicated(db: Database, product: Product, index: int) -> None:
    pki = FakeAmdPki(product)
    source = DictSource(
        {
            "amd.vcek": pki.vcek.public_bytes(Encoding.DER),
            "amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM),
        }
    )
    svc = service(db, pki, collateral_source=source)
    assert svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report())).appraisal.status is Tier.AFFIRMING
    for field in FIELDS:
        tcb = bytearray(pki.tcb())
        tcb[index] = 0x01
        evidence = pki.report(**{field: bytes(tcb)})
        for collateral in ({}, files(pki)):  # the VCEK from the source (crashed before), or from the request
            result = svc.appraise(AppraisalRequest(tee="snp", evidence=evidence, collateral=collateral))
            assert result.appraisal.status is Tier.CONTRAINDICATED
            findings = result.appraisal.findings
            assert [f.code for f in findings] == ["SNP_RESERVED_NONZERO"], (field, collateral.keys())
            assert field.upper() in findings[0].message and findings[0].expected and findings[0].actual
