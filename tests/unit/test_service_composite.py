"""Composite evidence through the orchestrator (issue 15 item 4), without a server: the binding rule's edges, GPU
collateral that is unavailable, no GPU scheme, the kept composite replayed by impact analysis, and the bounds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.amd_pki import FakeAmdPki
from tests.integration.composite_helpers import (
    FAKE_GPU,
    MEASUREMENT,
    WorkloadKey,
    fake_gpu_scheme,
    gpu,
    snp_files,
    snp_report,
)
from tests.service_helpers import SettableClock
from verifier import composite
from verifier.appraisal import registry
from verifier.appraisal.binding import composite_report_data, expected_report_data
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, PolicySet
from verifier.errors import RequestError, UnavailableError
from verifier.requests import MAX_GPU_EVIDENCE_BYTES, GpuEvidence
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.tcb import Product

NONCE = b"\x11" * 32


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


@pytest.fixture
def svc(db: Database, pki: FakeAmdPki) -> Iterator[VerifierService]:
    refs = SqlReferenceValueStore(db)
    refs.add("snp.measurement", MEASUREMENT, "inference", now=pki.now - dt.timedelta(days=1), version="1")
    raw = Policy(policy_id="raw", report_data_binding="raw")
    with fake_gpu_scheme():
        yield VerifierService(
            clock=SettableClock(pki.now),
            anchors=pki.anchors(),
            references=refs,
            signer=ResultSigner([ephemeral_key()]),
            challenges=SqlChallengeStore(db),
            check_crl=False,
            policies=PolicySet({"raw": raw}),
            operator_policy=True,
        )


def request(pki: FakeAmdPki, gpus: tuple[GpuEvidence, ...], **kw: Any) -> AppraisalRequest:
    nonce, runtime = kw.pop("nonce", NONCE), kw.pop("runtime_data", None)
    evidence = kw.pop("evidence", None) or snp_report(pki, nonce or b"", runtime, gpus)
    return AppraisalRequest(
        "snp", evidence, snp_files(pki), nonce=nonce, runtime_data=runtime, gpus=gpus, **kw
    )  # fmt: skip


def codes(result: Any) -> list[tuple[str, str]]:
    cpu = [("", f.code) for f in result.appraisal.findings]
    return cpu + [(c.name, f.code) for c in result.components for f in c.appraisal.findings]


def test_with_no_gpus_the_rule_is_the_sha512_rule() -> None:
    assert composite_report_data(NONCE, b"key", []) == expected_report_data(NONCE, b"key", "sha512")
    assert composite_report_data(None, None, [b"g"]) != composite_report_data(None, None, [b"h"])


def test_a_composite_affirms_and_binds_its_key(svc: VerifierService, pki: FakeAmdPki) -> None:
    key = WorkloadKey()
    result = svc.appraise(request(pki, (gpu(NONCE),), runtime_data=key.spki))
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert [c.name for c in result.components] == ["gpu0"] and result.incomplete is None


def test_raw_binding_cannot_bind_gpus(svc: VerifierService, pki: FakeAmdPki) -> None:
    gpus = (gpu(NONCE),)
    result = svc.appraise(request(pki, gpus, evidence=pki.report(report_data=NONCE.ljust(64, b"\0")), policy="raw"))
    assert ("", "COMPOSITE_BINDING_MISMATCH") in codes(result)
    assert result.appraisal.status is Tier.CONTRAINDICATED


def test_without_a_nonce_the_gpus_are_still_bound_to_the_report(svc: VerifierService, pki: FakeAmdPki) -> None:
    gpus = (gpu(b"\x99" * 32),)
    bound = svc.appraise(request(pki, gpus, nonce=None))
    assert bound.appraisal.status is Tier.AFFIRMING, codes(bound)  # no challenge asked: no freshness to check
    other = svc.appraise(request(pki, (gpu(b"\x98" * 32),), nonce=None, evidence=snp_report(pki, b"", None, gpus)))
    assert ("", "COMPOSITE_BINDING_MISMATCH") in codes(other)


def test_a_gpu_that_fails_verification(svc: VerifierService, pki: FakeAmdPki) -> None:
    tampered = GpuEvidence(
        gpu(NONCE).evidence[:-1] + b"\x00", {"cert_chain.pem": gpu(NONCE).collateral["cert_chain.pem"]}
    )
    result = svc.appraise(request(pki, (gpu(NONCE), tampered)))
    assert ("gpu1", "GPU_SIGNATURE_INVALID") in codes(result) and result.appraisal.status is Tier.CONTRAINDICATED
    assert result.components[1].appraisal.trust_vector.to_json() == {"instance-identity": 99}


class Incomplete:
    tee = "gpu"

    def verify(self, evidence: bytes, ctx: VerifyContext) -> VerifiedEvidence:
        return VerifiedEvidence("gpu", evidence, {"nonce": NONCE.hex()}, incomplete="COLLATERAL_OFFLINE")


def test_unavailable_gpu_collateral(svc: VerifierService, pki: FakeAmdPki) -> None:
    registry.unregister("gpu")
    registry.register(dataclasses.replace(FAKE_GPU, verifier=Incomplete()))
    with pytest.raises(UnavailableError) as error:
        svc.appraise(request(pki, (gpu(NONCE),)))
    assert error.value.code == "GPU_COLLATERAL_UNAVAILABLE"
    result = svc.appraise(request(pki, (gpu(NONCE),)), allow_incomplete=True)
    assert result.incomplete == "COLLATERAL_OFFLINE" and ("gpu0", "GPU_COLLATERAL_UNAVAILABLE") in codes(result)
    assert result.appraisal.status is Tier.CONTRAINDICATED


def test_no_gpu_scheme_and_bad_requests(svc: VerifierService, pki: FakeAmdPki) -> None:
    registry.unregister("gpu")
    with pytest.raises(RequestError) as error:
        svc.appraise(request(pki, (gpu(NONCE),)))
    assert error.value.code == "EVIDENCE_KIND_UNSUPPORTED"
    for gpus, code in (
        ((GpuEvidence(b"x" * (MAX_GPU_EVIDENCE_BYTES + 1)),), "GPU_EVIDENCE_TOO_LARGE"),
        ((GpuEvidence(b"x", {"rim.xml": b"r" * 4 * 1024 * 1024}),), "COLLATERAL_TOO_LARGE"),
    ):
        with pytest.raises(RequestError) as bad:
            svc.appraise(request(pki, gpus, evidence=pki.report()))
        assert bad.value.code == code


def test_the_kept_composite_is_replayed_with_its_gpus(svc: VerifierService, pki: FakeAmdPki) -> None:
    gpus = (gpu(NONCE, device=1), gpu(NONCE, device=2, firmware=2))
    original = request(pki, gpus)
    kept = composite.kept_request(original)
    assert kept.gpus == () and {"gpu0/evidence", "gpu1/collateral/cert_chain.pem", "vcek.der"} <= set(kept.collateral)
    assert composite.unpack_kept(kept) == dataclasses.replace(original, collateral=dict(original.collateral))
    replayed = svc.reappraise(kept, at=pki.now, references=svc.references)
    assert replayed.status is Tier.CONTRAINDICATED  # gpu1's firmware is not approved, on replay as at first
    assert composite.unpack_kept(dataclasses.replace(kept, collateral={"gpu1/evidence": b"x"})).gpus == ()


def test_a_leading_gpu_cannot_be_moved_into_the_runtime_data(svc: VerifierService, pki: FakeAmdPki) -> None:
    """The CVM committed runtime data R and GPUs [g0, g1]; a host that resends R || SHA-384(g0) as the runtime data
    with only g1 (dropping g0, e.g. a GPU whose firmware is contraindicated) must not get the same REPORT_DATA: the
    runtime data comes after a GPU count and fixed-length digests, under a tag (binding.py)."""
    g0, g1 = gpu(NONCE), gpu(NONCE)
    runtime = b"R" * 32
    evidence = snp_report(pki, NONCE, runtime, (g0, g1))
    moved = runtime + hashlib.sha384(g0.evidence).digest()
    assert composite_report_data(NONCE, runtime, [g0.evidence, g1.evidence]) != composite_report_data(
        NONCE, moved, [g1.evidence]
    )
    result = svc.appraise(request(pki, (g1,), evidence=evidence, runtime_data=moved))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert ("", "COMPOSITE_BINDING_MISMATCH") in codes(result)
    honest = svc.appraise(request(pki, (g0, g1), evidence=evidence, runtime_data=runtime))
    assert honest.appraisal.status is Tier.AFFIRMING, codes(honest)
