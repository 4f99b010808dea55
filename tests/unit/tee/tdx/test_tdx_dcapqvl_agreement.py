"""Our collateral verification + TCB evaluation agree with dcap-qvl 0.7 (test-only reference) on status and advisory
IDs: every shared TDX vector with collateral, and a grid of synthetic platform / QE / TDX module statuses signed by
the fake Intel PKI (dcap_qvl.verify_with_root_ca with the fake root)."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_documents import TdxCollateral, collateral_from_files
from verifier.tee.tdx.quote import parse_quote
from verifier.tee.tdx.tcb import evaluate
from verifier.tee.tdx.verify import verify_quote
from verifier.trust.anchors import TrustAnchors

dcap_qvl = pytest.importorskip("dcap_qvl")

WITH_COLLATERAL = [v for v in manifest_vectors("tdx") if v["what"]["collateral"] != "none"]
SEPT_VE_DISABLE = (1 << 28).to_bytes(8, "little")


def _pem(certs: Any) -> str:
    return "".join(c.public_bytes(Encoding.PEM).decode() for c in certs)


def _theirs(col: TdxCollateral) -> Any:
    assert col.tcb_info and col.qe_identity and col.pck_crl and col.root_ca_crl
    return dcap_qvl.QuoteCollateralV3(
        _pem(col.pck_crl_issuer_chain),
        col.root_ca_crl,
        col.pck_crl,
        _pem(col.tcb_info_issuer_chain),
        col.tcb_info.raw.decode(),
        col.tcb_info.signature,
        _pem(col.qe_identity_issuer_chain),
        col.qe_identity.raw.decode(),
        col.qe_identity.signature,
    )


def _ours(raw_quote: bytes, col: TdxCollateral, anchors: TrustAnchors, at: dt.datetime) -> tuple[str, list[str]]:
    quote = parse_quote(raw_quote)
    leaf_issuer = verify_quote(quote, anchors, at).chain[0].issuer
    checked = verify_collateral(col, anchors, at, pck_issuer=leaf_issuer)
    verified = verify_quote(quote, anchors, at, pck_crl=checked.pck_crl, root_ca_crl=checked.root_ca_crl)
    result = evaluate(
        checked.tcb_info,
        checked.qe_identity,
        verified.pck,
        verified.qe_report,
        tee_tcb_svn=quote.body.tee_tcb_svn,
        mr_signer_seam=quote.body.mr_signer_seam,
        seam_attributes=quote.body.seam_attributes,
        tee_tcb_svn_2=quote.body.tee_tcb_svn_2,
    )
    return result.status, list(result.advisory_ids)


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=[v["id"] for v in WITH_COLLATERAL])
def test_shared_vectors_agree(vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]) -> None:
    folder = vectors_dir / vector["dir"]
    raw_quote = (folder / "evidence.bin").read_bytes()
    collateral_json = (folder / "collateral.json").read_bytes()
    at = dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))
    theirs_collateral = dcap_qvl.QuoteCollateralV3.from_json(collateral_json.decode())
    ours_collateral = collateral_from_files({"collateral.json": collateral_json})
    anchors = TrustAnchors.from_directory(trust_anchors_dir)
    try:
        report = dcap_qvl.verify(raw_quote, theirs_collateral, int(at.timestamp()))
    except ValueError as error:
        with pytest.raises(EvidenceError) as info:
            _ours(raw_quote, ours_collateral, anchors, at)
        expected = {
            "No matching TCB level found": "TDX_TCB_LEVEL_NOT_FOUND",
            "ISV enclave report signature is invalid": "TDX_QUOTE_SIGNATURE_INVALID",
        }
        assert info.value.code == next(code for text, code in expected.items() if text in str(error))
        return
    assert _ours(raw_quote, ours_collateral, anchors, at) == (report.status, list(report.advisory_ids))
    assert report.status == vector["expected"]["tcb_status"]


PLATFORM = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
QE = ("UpToDate", "OutOfDate", "ConfigurationNeeded", "OutOfDateConfigurationNeeded", "Revoked")
MODULE = ("UpToDate", "OutOfDate", "Revoked")


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


@pytest.mark.parametrize(("platform", "qe", "module"), list(itertools.product(PLATFORM, QE, MODULE)))
def test_synthetic_statuses_agree(pki: FakeIntelPki, platform: str, qe: str, module: str) -> None:
    info = pki.tcb_info(status=platform)
    info["tdxModuleIdentities"][0]["tcbLevels"][0] |= {"tcbStatus": module, "advisoryIDs": [f"MOD-{module}"]}
    identity = pki.qe_identity(status=qe)
    identity["tcbLevels"][0]["advisoryIDs"] = ["INTEL-SA-00837", f"QE-{qe[:12]}"]
    col = collateral_from_files(pki.collateral_files(tcb_info=info, qe_identity=identity))
    raw_quote = pki.quote(td_attributes=SEPT_VE_DISABLE)
    ours = _ours(raw_quote, col, pki.anchors(), pki.now)
    try:
        report = dcap_qvl.verify_with_root_ca(
            raw_quote, _theirs(col), pki.root.public_bytes(Encoding.DER), int(pki.now.timestamp())
        )
    except ValueError as error:  # dcap-qvl refuses a Revoked result; we report it and policy rejects it
        assert "Revoked" in str(error) and ours[0] == "Revoked"
        return
    assert ours == (report.status, list(report.advisory_ids))


def test_synthetic_td15_relaunch_agrees(pki: FakeIntelPki) -> None:
    info = pki.tcb_info()
    info["tdxModuleIdentities"][0]["tcbLevels"] = [
        {"tcb": {"isvsvn": 5}, "tcbDate": "2025-01-01T00:00:00Z", "tcbStatus": "UpToDate"},
        {"tcb": {"isvsvn": 2}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": "OutOfDate", "advisoryIDs": ["SA-1"]},
    ]
    col = collateral_from_files(pki.collateral_files(tcb_info=info))
    raw_quote = pki.quote(
        version=5,
        td_attributes=SEPT_VE_DISABLE,
        tee_tcb_svn=bytes([3, 1, 2]) + bytes(13),
        tee_tcb_svn_2=bytes([5, 1, 2]) + bytes(13),
    )
    report = dcap_qvl.verify_with_root_ca(
        raw_quote, _theirs(col), pki.root.public_bytes(Encoding.DER), int(pki.now.timestamp())
    )
    assert _ours(raw_quote, col, pki.anchors(), pki.now) == (report.status, list(report.advisory_ids))
    assert report.status == "TDRelaunchAdvised"
