"""Intel TDX end to end: the CLI on every real vector, negative cases through the orchestrator with the fake Intel
PKI (each with its own code), Intel PCS through the shared cache (one fetch for concurrent appraisals), gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import manifest_vectors, vector_ids
from tests.fakes.intel_pki import FakeIntelPki
from tests.fakes.kds_server import FakeKds, Reply
from tests.integration.test_cli import Cli
from tests.service_helpers import SettableClock
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, PolicySet, TdxRules
from verifier.bootstrap import build
from verifier.clock import FixedClock, parse_rfc3339
from verifier.collateral.cache import CachedSource
from verifier.collateral.pcs import IntelPcs
from verifier.collateral.routing import RoutingSource
from verifier.errors import UnavailableError
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.settings import Settings
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.collateral import SqlCollateralCache
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

EXPECTED_FAILURE = {
    "tdx-v5-dcapqvl-outdated": "TDX_TCB_LEVEL_NOT_FOUND",
    "tdx-v4-gotdxguest-spr-e4": "TDX_TCB_LEVEL_NOT_FOUND",
    "tdx-v4-gotdxguest-spr-e4-body-tampered": "TDX_QUOTE_SIGNATURE_INVALID",
}
FIELDS = (
    "mr_td",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "mr_seam",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "report_data",
    "tee_tcb_svn",
    "td_attributes",
    "xfam",
    "fmspc",
)
MR_TD = b"\x42" * 48


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_OFFLINE", "1")
    runner = Cli(database_url, capsys)
    assert runner("db", "upgrade")[0] == 0
    return runner


@pytest.mark.parametrize("vector", manifest_vectors("tdx"), ids=vector_ids("tdx"))
def test_every_tdx_vector_through_the_cli(cli: Cli, vector: dict[str, Any], vectors_dir: Path) -> None:
    folder = vectors_dir / vector["dir"]
    args = [
        "verify",
        "--tee",
        "tdx",
        "--evidence",
        str(folder / "evidence.bin"),
        "--collateral",
        str(folder),
        "--at",
        vector["verify_at"],
        "--json",
    ]
    code, result = cli.json(*args)
    for name in FIELDS:
        assert result["claims"][name] == vector["facts"][name], name
    if vector["id"] in EXPECTED_FAILURE:
        assert code == 2
        assert result["findings"][0]["code"] == EXPECTED_FAILURE[vector["id"]]
        return
    cli("refs", "add", "tdx.mr_td", vector["facts"]["mr_td"], "--label", vector["id"])
    code, result = cli.json(*args)
    if "collateral.json" not in vector["files"]:  # signature and PCK chain only: TCB unknown, exit 3
        assert code == 3 and result["incomplete"] == "COLLATERAL_OFFLINE"
        assert result["claims"]["tcb_status"] == "unknown"
        assert result["status"] != "affirming"
        assert [f["code"] for f in result["findings"]] == ["TDX_TCB_UNKNOWN"]
        return
    assert code == 0, result["findings"]
    assert result["claims"]["tcb_status"] == vector["expected"]["tcb_status"] == "UpToDate"
    assert result["claims"]["advisory_ids"] == vector["expected"]["advisory_ids"]


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def service(db: Database, pki: FakeIntelPki, **kw: Any) -> VerifierService:
    refs = SqlReferenceValueStore(db)
    refs.add("tdx.mr_td", MR_TD, "td-image", now=pki.now - dt.timedelta(days=1))
    return VerifierService(
        clock=SettableClock(pki.now),
        anchors=pki.anchors(),
        references=refs,
        signer=ResultSigner([ephemeral_key()]),
        challenges=SqlChallengeStore(db),
        **kw,
    )


def appraise(svc: VerifierService, evidence: bytes, files: dict[str, bytes], **kw: Any) -> Any:
    return svc.appraise(AppraisalRequest(tee="tdx", evidence=evidence, collateral=files, **kw))


def codes(result: Any) -> list[str]:
    return [f.code for f in result.appraisal.findings]


def quote(pki: FakeIntelPki, **kw: Any) -> bytes:
    return pki.quote(mr_td=MR_TD, td_attributes=bytes.fromhex("0000001000000000"), **kw)


def test_fake_platform_affirms_and_binds_the_nonce(db: Database, pki: FakeIntelPki) -> None:
    svc = service(db, pki)
    challenge = svc.create_challenge()
    key = b"-----BEGIN PUBLIC KEY-----..."
    evidence = quote(pki, version=5, report_data=hashlib.sha512(challenge.nonce + key).digest())
    result = svc.appraise(
        AppraisalRequest(
            tee="tdx", evidence=evidence, collateral=pki.collateral_files(), nonce=challenge.nonce, runtime_data=key
        ),
        require_challenge=True,
    )
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert result.appraisal.claims["tcb_status"] == "UpToDate"
    other = svc.appraise(
        AppraisalRequest(
            tee="tdx", evidence=evidence, collateral=pki.collateral_files(), nonce=b"\x00" * 32, runtime_data=key
        )
    )
    assert codes(other) == ["REPORT_DATA_MISMATCH"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"bad_signature": True}, "TDX_QUOTE_SIGNATURE_INVALID"),
        ({"bad_qe_report_signature": True}, "TDX_QE_REPORT_SIGNATURE_INVALID"),
        ({"unbound_report_data": True}, "TDX_QE_REPORT_DATA_MISMATCH"),
    ],
)
def test_broken_quotes(db: Database, pki: FakeIntelPki, overrides: dict[str, Any], code: str) -> None:
    result = appraise(service(db, pki), quote(pki, **overrides), pki.collateral_files())
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == [code]


def test_foreign_root_and_revoked_pck(db: Database, pki: FakeIntelPki) -> None:
    svc = service(db, pki)
    foreign = pki.foreign()
    assert codes(appraise(svc, quote(foreign), foreign.collateral_files()))[0] == "CHAIN_ROOT_UNTRUSTED"
    revoked = pki.collateral_files(**{"pck_crl.der": pki.pck_crl([pki.pck.serial_number])})
    assert codes(appraise(svc, quote(pki), revoked)) == ["TDX_PCK_REVOKED"]


def test_tampered_and_expired_collateral(db: Database, pki: FakeIntelPki) -> None:
    svc = service(db, pki)
    files = pki.collateral_files()
    files["tcb_info.json"] = files["tcb_info.json"].replace(
        b'"tcbEvaluationDataNumber":17', b'"tcbEvaluationDataNumber":18'
    )
    assert codes(appraise(svc, quote(pki), files)) == ["TDX_COLLATERAL_SIGNATURE_INVALID"]
    svc.clock.at = pki.now + dt.timedelta(days=30)  # type: ignore[attr-defined]
    assert codes(appraise(svc, quote(pki), pki.collateral_files()))[0] == "TDX_COLLATERAL_EXPIRED"


def test_fmspc_mismatch_debug_and_status_policy(db: Database, pki: FakeIntelPki) -> None:
    svc = service(
        db,
        pki,
        policies=PolicySet(
            {
                "swh-ok": Policy(
                    policy_id="swh-ok",
                    tdx=TdxRules(accepted_statuses={"UpToDate": "affirming", "SWHardeningNeeded": "affirming"}),
                )
            }
        ),
    )
    other = pki.collateral_files(tcb_info=pki.tcb_info(fmspc="00A06D080000"))
    assert codes(appraise(svc, quote(pki), other)) == ["TDX_FMSPC_MISMATCH"]
    debug = appraise(
        svc, pki.quote(mr_td=MR_TD, td_attributes=bytes.fromhex("0100001000000000")), pki.collateral_files()
    )
    assert codes(debug) == ["TDX_DEBUG_TD"]
    swh = pki.collateral_files(tcb_info=pki.tcb_info(status="SWHardeningNeeded"))
    warned = appraise(svc, quote(pki), swh)
    assert warned.appraisal.status is Tier.WARNING and codes(warned) == ["TDX_TCB_STATUS_WARNING"]
    # A request cannot accept more than its workload's policy; a workload appraised under swh-ok can.
    assert (
        svc.appraise(AppraisalRequest(tee="tdx", evidence=quote(pki), collateral=swh, policy="swh-ok")).appraisal.status
        is Tier.WARNING
    )
    assert (
        dataclasses.replace(svc, default_policy="swh-ok")
        .appraise(AppraisalRequest(tee="tdx", evidence=quote(pki), collateral=swh))
        .appraisal.status
        is Tier.AFFIRMING
    )
    outdated = pki.collateral_files(tcb_info=pki.tcb_info(status="OutOfDate"))
    assert codes(appraise(svc, quote(pki), outdated)) == ["TDX_TCB_STATUS_NOT_ACCEPTED"]


def test_offline_without_collateral_is_unavailable_for_the_server(db: Database, pki: FakeIntelPki) -> None:
    with pytest.raises(UnavailableError) as info:
        appraise(service(db, pki), quote(pki), {})
    assert info.value.code == "COLLATERAL_OFFLINE"


def test_pcs_through_the_cache_fetches_each_item_once(db: Database, pki: FakeIntelPki) -> None:
    files = pki.collateral_files()
    chain = urllib.parse.quote(files["tcb_info_issuer_chain.pem"].decode())
    crl_chain = urllib.parse.quote(files["pck_crl_issuer_chain.pem"].decode())
    fmspc = pki.fmspc.hex().upper()
    with FakeKds() as pcs:
        pcs.serve(
            f"/tdx/certification/v4/tcb?fmspc={fmspc}",
            Reply(body=files["tcb_info.json"], headers={"TCB-Info-Issuer-Chain": chain}),
        )
        pcs.serve(
            "/tdx/certification/v4/qe/identity",
            Reply(body=files["qe_identity.json"], headers={"SGX-Enclave-Identity-Issuer-Chain": chain}),
        )
        pcs.serve(
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
            Reply(body=files["pck_crl.der"], headers={"SGX-PCK-CRL-Issuer-Chain": crl_chain}),
        )
        pcs.serve("/root.der", Reply(body=files["root_ca_crl.der"]))
        source = CachedSource(
            RoutingSource({"intel": IntelPcs(pcs.url, root_ca_crl_url=pcs.url + "/root.der")}), SqlCollateralCache(db)
        )
        svc = service(db, pki, collateral_source=source)
        evidence = quote(pki)
        results: list[Any] = []
        barrier = threading.Barrier(6)

        def run() -> None:
            barrier.wait()
            results.append(appraise(svc, evidence, {}))

        threads = [threading.Thread(target=run) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.appraisal.status for r in results] == [Tier.AFFIRMING] * 6, [codes(r) for r in results]
        for path in (
            "/tdx/certification/v4/tcb",
            "/tdx/certification/v4/qe/identity",
            "/sgx/certification/v4/pckcrl",
            "/root.der",
        ):
            assert pcs.count(path) == 1, path


def test_tdx_over_grpc(db: Database, database_url: str, vectors_dir: Path) -> None:
    vector = next(v for v in manifest_vectors("tdx") if v["id"] == "tdx-v5-gotdxguest-sample")
    folder = vectors_dir / vector["dir"]
    at = parse_rfc3339(vector["verify_at"])
    components = build(
        Settings(
            database_url=database_url, development=True, offline=True, listen="127.0.0.1:0", http_listen="127.0.0.1:0"
        ),
        clock=FixedClock(at),
    )
    components.references.add("tdx.mr_td", bytes.fromhex(vector["facts"]["mr_td"]), "gcp", now=at)
    collateral = [
        pb.CollateralFile(name=p.name, content=p.read_bytes())
        for p in sorted(folder.iterdir())
        if p.name != "evidence.bin"
    ]

    async def run() -> pb.AppraiseResponse:
        server = VerifierServer(components)
        port, _ = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                return await pb_grpc.VerifierStub(channel).Appraise(
                    pb.AppraiseRequest(
                        kind=pb.EVIDENCE_KIND_TDX,
                        evidence=(folder / "evidence.bin").read_bytes(),
                        collateral=collateral,
                    )
                )
        finally:
            await server.stop(0)

    response = asyncio.run(run())
    components.close()
    assert response.status == pb.STATUS_AFFIRMING, [f.code for f in response.findings]
    assert response.claims["tcb_status"] == "UpToDate"
    assert response.claims["mr_td"] == vector["facts"]["mr_td"]


def _serve(pcs: FakeKds, pki: FakeIntelPki, files: dict[str, bytes]) -> None:
    chain = urllib.parse.quote(files["tcb_info_issuer_chain.pem"].decode())
    crl_chain = urllib.parse.quote(files["pck_crl_issuer_chain.pem"].decode())
    pcs.serve(
        f"/tdx/certification/v4/tcb?fmspc={pki.fmspc.hex().upper()}",
        Reply(body=files["tcb_info.json"], headers={"TCB-Info-Issuer-Chain": chain}),
    )
    pcs.serve(
        "/tdx/certification/v4/qe/identity",
        Reply(body=files["qe_identity.json"], headers={"SGX-Enclave-Identity-Issuer-Chain": chain}),
    )
    pcs.serve(
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        Reply(body=files["pck_crl.der"], headers={"SGX-PCK-CRL-Issuer-Chain": crl_chain}),
    )
    pcs.serve("/root.der", Reply(body=files["root_ca_crl.der"]))


def test_old_request_collateral_does_not_beat_the_cached_collateral(db: Database, pki: FakeIntelPki) -> None:
    """Issue 9 item 3: the request carries a genuine TCB info from before a TCB recovery (evaluation 17, UpToDate);
    Intel PCS (through the shared cache) has evaluation 18, where this platform is OutOfDate."""
    recovered = pki.collateral_files(tcb_info=pki.tcb_info(status="OutOfDate", tcbEvaluationDataNumber=18))
    with FakeKds() as pcs:
        _serve(pcs, pki, recovered)
        source = CachedSource(
            RoutingSource({"intel": IntelPcs(pcs.url, root_ca_crl_url=pcs.url + "/root.der")}), SqlCollateralCache(db)
        )
        svc = service(db, pki, collateral_source=source)
        first = appraise(svc, quote(pki), pki.collateral_files())
        assert first.appraisal.status is Tier.CONTRAINDICATED
        assert codes(first) == ["TDX_TCB_STATUS_NOT_ACCEPTED", "COLLATERAL_SUPERSEDED"]
        assert first.appraisal.claims["tcb_status"] == "OutOfDate"
        again = appraise(svc, quote(pki), pki.collateral_files())  # served from the cache now
        assert codes(again) == codes(first)
        newer = pki.collateral_files(tcb_info=pki.tcb_info(status="UpToDate", tcbEvaluationDataNumber=19))
        assert appraise(svc, quote(pki), newer).appraisal.status is Tier.AFFIRMING  # newer request: it decides
        for path in (
            "/tdx/certification/v4/tcb",
            "/tdx/certification/v4/qe/identity",
            "/sgx/certification/v4/pckcrl",
            "/root.der",
        ):
            assert pcs.count(path) == 1, path
