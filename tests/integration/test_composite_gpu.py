"""Composite evidence end to end over gRPC (issue 15 items 4 and 5): an SEV-SNP report with two GPUs and a TDX quote
with one, on a real server (port 0, the database fixture: SQLite, and PostgreSQL when configured), the fake AMD and
Intel PKIs and the real GPU scheme (tee/gpu/) on the fake NVIDIA device, RIM and OCSP PKIs (composite_helpers
`NvidiaWorld`). The splice attacks (a GPU report of another session; one made for the same nonce on another
machine) are refused, a workload requiring k GPUs does not match with k-1 affirming ones, and the broker releases on
the composite result."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.fakes.nvidia_pki import DEFAULT_NOW
from tests.integration.composite_helpers import MEASUREMENT, NvidiaWorld, WorkloadKey, snp_files, snp_report
from tests.integration.test_grpc_server import error_info, running
from verifier.appraisal.binding import composite_report_data
from verifier.bootstrap import Components, build
from verifier.broker.config import BrokerConfig, ReleaseRule
from verifier.broker.release import Broker, ReleaseRefused
from verifier.client import JwksCache, ResultError, verify_result
from verifier.clock import FixedClock
from verifier.requests import GpuEvidence
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import TrustAnchors
from verifier.v1 import verifier_pb2 as pb

SECRET = b"model-weights-key"
MR_TD = b"\x42" * 48
TD_ATTRIBUTES = bytes.fromhex("0000001000000000")


@dataclass(frozen=True)
class GpuRule(ReleaseRule):
    """A release rule with the GPU count (`ReleaseRule.min_gpus` once verifier/broker/config.py reads it)."""

    min_gpus: int = 0


NVIDIA = NvidiaWorld(DEFAULT_NOW)  # the GPUs of this CVM (devices 0, 1) and of another machine (device 2)
gpu = NVIDIA.gpu


@pytest.fixture(scope="module")
def amd() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA, now=DEFAULT_NOW)


def _build(database_url: str, at: dt.datetime, pins: dict[str, frozenset[str]]) -> Components:
    settings = Settings(
        database_url=database_url,
        development=True,
        offline=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        check_crl=False,
        drain_seconds=0,
    )
    components = build(settings, clock=FixedClock(at))
    components.service.anchors = TrustAnchors(pins={**pins, **NVIDIA.pins})
    return components


@pytest.fixture
def snp(db: Database, database_url: str, amd: FakeAmdPki) -> Iterator[Components]:
    components = _build(database_url, amd.now, amd.pins)
    day = amd.now - dt.timedelta(days=1)
    add = components.references.add
    add("snp.measurement", MEASUREMENT, "inference", now=day, version="1")
    add("snp.min_gpus", b"\x02", "inference", now=day, version="1")  # the CVM plus two affirming GPUs
    yield components
    components.close()


def _pb_gpus(gpus: tuple[GpuEvidence, ...]) -> list[pb.GpuEvidence]:
    return [
        pb.GpuEvidence(
            evidence=g.evidence, collateral=[pb.CollateralFile(name=n, content=c) for n, c in g.collateral.items()]
        )
        for g in gpus
    ]


def _snp_request(
    amd: FakeAmdPki, nonce: bytes, key: WorkloadKey, sent: tuple[GpuEvidence, ...], bound: tuple[GpuEvidence, ...]
) -> pb.AppraiseRequest:
    """An Appraise request carrying `sent`, whose SNP report's REPORT_DATA binds `bound`."""
    return pb.AppraiseRequest(
        kind=pb.EVIDENCE_KIND_SEV_SNP,
        evidence=snp_report(amd, nonce, key.spki, bound),
        collateral=[pb.CollateralFile(name=n, content=c) for n, c in snp_files(amd).items()],
        nonce=nonce,
        runtime_data=key.spki,
        gpus=_pb_gpus(sent),
    )


def _codes(response: pb.AppraiseResponse) -> list[tuple[str, str]]:
    return [(f.component, f.code) for f in response.findings]


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _broker(components: Components, at: dt.datetime, min_gpus: int) -> Broker:
    secret = GpuRule("weights", SECRET, "inference", tees=("snp", "tdx"), min_gpus=min_gpus)
    config = BrokerConfig(verifier="-", jwks_url="-", issuer=components.service.issuer, rules={"weights": secret})
    return Broker(
        config, JwksCache(components.service.jwks), lambda: components.service.create_challenge().nonce, FixedClock(at)
    )


def test_snp_with_two_gpus_affirms_and_the_broker_releases(snp: Components, amd: FakeAmdPki) -> None:
    broker = _broker(snp, amd.now, min_gpus=2)
    nonce, _ = broker.new_challenge("10.0.0.7")
    key = WorkloadKey()
    gpus = (gpu(nonce, device=0), gpu(nonce, device=1))

    async def scenario() -> pb.AppraiseResponse:
        async with running(snp) as r:
            response: pb.AppraiseResponse = await r.verifier.Appraise(_snp_request(amd, nonce, key, gpus, gpus))
            return response

    response = asyncio.run(scenario())
    assert response.status == pb.STATUS_AFFIRMING, _codes(response)
    assert [(c.name, c.tee, c.status) for c in response.components] == [
        ("gpu0", "gpu", pb.STATUS_AFFIRMING),
        ("gpu1", "gpu", pb.STATUS_AFFIRMING),
    ]
    assert response.components[0].evidence_sha384 == hashlib.sha384(gpus[0].evidence).hexdigest()
    assert json.loads(response.components[1].claims_json)["nonce"] == nonce.hex()
    claims = _payload(response.token)
    assert list(claims["submods"]) == ["snp", "gpu0", "gpu1"] and claims["ear_status"] == "affirming"
    assert claims["submods"]["snp"]["ear_verifier_claims"]["workload"]["name"] == "inference"
    assert "snp.min_gpus:inference:" in " ".join(
        claims["submods"]["snp"]["ear_verifier_claims"]["matched_reference_values"]
    )
    assert claims["cnf"]["jwk"]["kty"] == "EC"
    result = verify_result(response.token, snp.service.jwks(), expected_nonce=nonce, now=amd.now, min_gpus=2)
    assert [(c.name, c.status) for c in result.components] == [("gpu0", "affirming"), ("gpu1", "affirming")]
    assert result.components[0].claims["driver_version"] == "550.90.07"
    assert result.components[1].verifier_claims["revocation"] == "checked"
    released = broker.release("weights", response.token, base64.urlsafe_b64encode(nonce).rstrip(b"=").decode())
    assert key.decrypt(released.jwe) == SECRET
    # The appraisal row holds the GPUs too: one appraisal id, one entry per GPU with its report's SHA-384.
    with snp.database.session() as session:
        row = session.scalars(select(AppraisalRow).where(AppraisalRow.id == response.appraisal_id)).one()
    entries = [(f.get("component"), f["code"], f["tier"]) for f in row.findings]
    assert entries == [("gpu0", "COMPONENT_APPRAISED", "affirming"), ("gpu1", "COMPONENT_APPRAISED", "affirming")]
    assert row.findings[1]["actual"] == hashlib.sha384(gpus[1].evidence).hexdigest() and row.status == "affirming"


def test_splice_attacks_are_refused(snp: Components, amd: FakeAmdPki) -> None:
    key = WorkloadKey()
    broker = _broker(snp, amd.now, min_gpus=0)

    async def scenario() -> list[pb.AppraiseResponse]:
        out = []
        async with running(snp) as r:
            old = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
            # 1. a GPU report of another session: signed for the old nonce, bound into this session's REPORT_DATA
            nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
            stale = (gpu(nonce, device=0), gpu(old, device=1))
            out.append(await r.verifier.Appraise(_snp_request(amd, nonce, key, stale, stale)))
            # 2. a GPU report made for this very nonce on another machine: REPORT_DATA commits to this CVM's GPUs
            nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
            mine = (gpu(nonce, device=0), gpu(nonce, device=1))
            spliced = (mine[0], gpu(nonce, device=2))  # a genuine GPU, of another machine
            out.append(await r.verifier.Appraise(_snp_request(amd, nonce, key, spliced, mine)))
            # 3. the same GPUs in another order than REPORT_DATA names them, and one GPU dropped
            nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
            mine = (gpu(nonce, device=0), gpu(nonce, device=1))
            out.append(await r.verifier.Appraise(_snp_request(amd, nonce, key, mine[::-1], mine)))
            out.append(await r.verifier.Appraise(_snp_request(amd, nonce, key, mine[:1], mine)))
        return out

    stale, spliced, reordered, dropped = asyncio.run(scenario())
    assert stale.status == pb.STATUS_CONTRAINDICATED
    assert ("gpu1", "GPU_NONCE_MISMATCH") in _codes(stale) and ("gpu0", "GPU_NONCE_MISMATCH") not in _codes(stale)
    assert [c.status for c in stale.components] == [pb.STATUS_AFFIRMING, pb.STATUS_CONTRAINDICATED]
    assert _payload(stale.token)["submods"]["gpu1"]["ear_status"] == "contraindicated"
    for response in (spliced, reordered):
        assert response.status == pb.STATUS_CONTRAINDICATED
        assert ("", "COMPOSITE_BINDING_MISMATCH") in _codes(response)
        assert _payload(response.token)["submods"]["snp"]["ear_status"] == "contraindicated"
    assert ("", "CHALLENGE_REPLAYED") in _codes(dropped) and ("", "COMPOSITE_BINDING_MISMATCH") in _codes(dropped)
    for response in (stale, spliced, reordered):
        assert "cnf" not in _payload(response.token)  # no key is bound by a composite that does not hold
        with pytest.raises(ResultError) as refused:
            verify_result(response.token, snp.service.jwks(), now=amd.now)
        assert refused.value.code == "TOKEN_STATUS_INSUFFICIENT"
    nonce, _ = broker.new_challenge()
    with pytest.raises(ReleaseRefused):
        broker.release("weights", stale.token, base64.urlsafe_b64encode(nonce).decode())


def test_a_workload_requiring_two_gpus_does_not_match_fewer(snp: Components, amd: FakeAmdPki) -> None:
    key = WorkloadKey()

    async def scenario() -> list[pb.AppraiseResponse]:
        out = []
        async with running(snp) as r:
            for count in (2, 1):
                nonce = (await r.verifier.CreateChallenge(pb.CreateChallengeRequest())).nonce
                gpus = (gpu(nonce, device=0), gpu(nonce, device=1, approved=False))[:count]
                out.append(await r.verifier.Appraise(_snp_request(amd, nonce, key, gpus, gpus)))
        return out

    one_bad, only_one = asyncio.run(scenario())
    assert ("gpu1", "GPU_MEASUREMENT_MISMATCH") in _codes(one_bad)
    for response in (one_bad, only_one):
        assert response.status == pb.STATUS_CONTRAINDICATED
        codes = _codes(response)
        assert ("", "WORKLOAD_GPUS_INSUFFICIENT") in codes and ("", "WORKLOAD_NOT_MATCHED") in codes
        assert "workload" not in _payload(response.token)["submods"]["snp"]["ear_verifier_claims"]
    miss = next(f for f in only_one.findings if f.code == "WORKLOAD_GPUS_INSUFFICIENT")
    assert (miss.expected, miss.actual) == (">= 2 affirming GPUs", "1 of 1 (gpu0)")


def test_tdx_with_one_gpu(db: Database, database_url: str) -> None:
    intel = FakeIntelPki(now=DEFAULT_NOW)
    components = _build(database_url, intel.now, intel.pins)
    day = intel.now - dt.timedelta(days=1)
    components.references.add("tdx.mr_td", MR_TD, "td-inference", now=day, version="2")
    components.references.add("tdx.min_gpus", b"\x01", "td-inference", now=day, version="2")
    broker = _broker(components, intel.now, min_gpus=1)
    broker.config.rules["weights"] = GpuRule("weights", SECRET, "td-inference", tees=("tdx",), min_gpus=1)
    key = WorkloadKey()

    nonce, _ = broker.new_challenge()

    async def scenario() -> pb.AppraiseResponse:
        async with running(components) as r:
            gpus = (gpu(nonce, device=2),)
            report_data = composite_report_data(nonce, key.spki, [g.evidence for g in gpus])
            request = pb.AppraiseRequest(
                kind=pb.EVIDENCE_KIND_TDX,
                evidence=intel.quote(version=5, mr_td=MR_TD, td_attributes=TD_ATTRIBUTES, report_data=report_data),
                collateral=[pb.CollateralFile(name=n, content=c) for n, c in intel.collateral_files().items()],
                nonce=nonce,
                runtime_data=key.spki,
                gpus=_pb_gpus(gpus),
            )
            response: pb.AppraiseResponse = await r.verifier.Appraise(request)
            return response

    try:
        response = asyncio.run(scenario())
        assert response.status == pb.STATUS_AFFIRMING, _codes(response)
        assert list(_payload(response.token)["submods"]) == ["tdx", "gpu0"]
        result = verify_result(response.token, components.service.jwks(), now=intel.now, min_gpus=1)
        assert result.tee == "tdx" and result.workload is not None and result.workload["name"] == "td-inference"
        with pytest.raises(ResultError) as too_few:
            verify_result(response.token, components.service.jwks(), now=intel.now, min_gpus=2)
        assert too_few.value.code == "TOKEN_GPUS_INSUFFICIENT"
        released = broker.release("weights", response.token, base64.urlsafe_b64encode(nonce).decode())
        assert key.decrypt(released.jwe) == SECRET
    finally:
        components.close()


def test_malformed_composite_requests(snp: Components, amd: FakeAmdPki) -> None:
    nonce = b"\x01" * 32
    key = WorkloadKey()
    nine = (gpu(nonce),) * 9
    empty = pb.AppraiseRequest(
        kind=pb.EVIDENCE_KIND_SEV_SNP, evidence=amd.report(), gpus=[pb.GpuEvidence(evidence=b"")]
    )
    nitro = pb.AppraiseRequest(kind=pb.EVIDENCE_KIND_NITRO, evidence=b"\x84", gpus=_pb_gpus(nine[:1]))

    async def scenario() -> list[str]:
        reasons = []
        async with running(snp) as r:
            for request in (_snp_request(amd, nonce, key, nine, nine), empty, nitro):
                with pytest.raises(Exception) as error:
                    await r.verifier.Appraise(request)
                reasons.append(error_info(error.value).reason)  # type: ignore[arg-type]
        return reasons

    assert asyncio.run(scenario()) == ["GPU_COUNT_TOO_LARGE", "GPU_EVIDENCE_EMPTY", "COMPOSITE_TEE_UNSUPPORTED"]
