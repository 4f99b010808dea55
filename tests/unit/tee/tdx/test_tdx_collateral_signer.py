"""TCB info and QE identity are signed by the Intel SGX TCB Signing certificate issued by the pinned root, nothing
else: a platform whose PCK key was extracted must not sign "UpToDate" for itself (issue 9, item 2)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError
from verifier.tee.base import VerifyContext
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_documents import collateral_from_files
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.tee.tdx.pck import pck_chain
from verifier.tee.tdx.quote import parse_quote
from verifier.trust.anchors import TrustAnchors

SIGNER_INVALID = "TDX_COLLATERAL_SIGNER_INVALID"


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def _verify(pki: FakeIntelPki, files: dict[str, bytes]) -> None:
    verify_collateral(collateral_from_files(files), pki.anchors(), pki.now, pck_issuer=pki.pck.issuer)


def _refused(pki: FakeIntelPki, files: dict[str, bytes]) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        _verify(pki, files)
    return info.value


def _forgeries(pki: FakeIntelPki) -> dict[str, tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]]:
    lookalike, lookalike_key = pki.issue("Intel SGX TCB Signing", issuer=(pki.ca_name, pki.pck_ca_key))
    ca_signer, ca_signer_key = pki.issue("Intel SGX TCB Signing", ca=0)
    sgx_signer, sgx_signer_key = pki.issue("Intel SGX TCB Signing", sgx=pki.sgx_extension())
    other_cn, other_cn_key = pki.issue("Intel SGX PCK Certificate")
    return {
        "pck-leaf": (pki.pck_key, [pki.pck, pki.pck_ca, pki.root]),
        "pck-leaf-short-chain": (pki.pck_key, [pki.pck, pki.root]),
        "pck-ca": (pki.pck_ca_key, [pki.pck_ca, pki.root]),
        "tcb-signing-cn-under-pck-ca": (lookalike_key, [lookalike, pki.pck_ca, pki.root]),
        "tcb-signing-cn-under-pck-ca-short-chain": (lookalike_key, [lookalike, pki.root]),
        "root-alone": (pki.root_key, [pki.root]),
        "ca-with-the-right-cn": (ca_signer_key, [ca_signer, pki.root]),
        "sgx-extension-with-the-right-cn": (sgx_signer_key, [sgx_signer, pki.root]),
        "other-cn-under-root": (other_cn_key, [other_cn, pki.root]),
    }


FORGERIES = [
    "pck-leaf",
    "pck-leaf-short-chain",
    "pck-ca",
    "tcb-signing-cn-under-pck-ca",
    "tcb-signing-cn-under-pck-ca-short-chain",
    "root-alone",
    "ca-with-the-right-cn",
    "sgx-extension-with-the-right-cn",
    "other-cn-under-root",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_collateral_not_signed_by_the_tcb_signing_certificate_is_refused(pki: FakeIntelPki, forgery: str) -> None:
    key, chain = _forgeries(pki)[forgery]
    error = _refused(pki, pki.collateral_signed_by(key, chain))
    assert error.code == SIGNER_INVALID, (error.code, error.message)
    assert error.expected.startswith("[Intel SGX TCB Signing, pinned Intel SGX Root CA]") and error.actual


@pytest.mark.parametrize("member", ["tcb_info", "qe_identity"])
def test_one_forged_member_is_enough_to_refuse(pki: FakeIntelPki, member: str) -> None:
    forged = pki.collateral_signed_by(pki.pck_key, [pki.pck, pki.pck_ca, pki.root])
    genuine = pki.collateral_files()
    files = genuine | {
        f"{member}.json": forged[f"{member}.json"],
        f"{member}_issuer_chain.pem": forged[f"{member}_issuer_chain.pem"],
    }
    error = _refused(pki, files)
    assert error.code == SIGNER_INVALID
    assert ("TCB info" if member == "tcb_info" else "QE identity") in error.message


def test_a_pck_signed_up_to_date_is_contraindicated_through_the_verifier() -> None:
    pki = FakeIntelPki()  # the genuine collateral says OutOfDate; the platform's own PCK key says UpToDate
    forged = pki.collateral_signed_by(pki.pck_key, [pki.pck, pki.pck_ca, pki.root])
    quote = pki.quote()
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=forged)
    result = TdxVerifier().verify(quote, ctx)
    assert result.failure is not None and result.failure.code == SIGNER_INVALID
    assert result.claims.get("tcb_status") in (None, "unknown")
    genuine = pki.collateral_files(tcb_info=pki.tcb_info(status="OutOfDate"))
    honest = TdxVerifier().verify(quote, VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=genuine))
    assert honest.failure is None and honest.claims["tcb_status"] == "OutOfDate"


def test_genuine_fake_collateral_still_verifies(pki: FakeIntelPki) -> None:
    _verify(pki, pki.collateral_files())
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.root])
    files = pki.collateral_signed_by(pki.tcb_key, [pki.tcb_signing])  # the root from the pinned anchor files
    verify_collateral(collateral_from_files(files), anchors, pki.now, pck_issuer=pki.pck.issuer)


def test_tcb_signing_certificate_revoked_by_the_root_ca_crl(pki: FakeIntelPki) -> None:
    files = pki.collateral_files(**{"root_ca_crl.der": pki.root_ca_crl([pki.tcb_signing.serial_number])})
    error = _refused(pki, files)
    assert error.code == "TDX_COLLATERAL_SIGNER_REVOKED"
    assert error.actual == f"serial {pki.tcb_signing.serial_number:x}"


WITH_COLLATERAL = [v for v in manifest_vectors("tdx") if v["what"]["collateral"] != "none"]


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=[v["id"] for v in WITH_COLLATERAL])
def test_real_vectors_are_signed_by_the_tcb_signing_certificate(
    vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]
) -> None:
    folder = vectors_dir / vector["dir"]
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "collateral.json"}
    issuer = pck_chain(parse_quote(files["evidence.bin"]).pck_chain_pem)[0].issuer
    at = dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))
    checked = verify_collateral(
        collateral_from_files(files), TrustAnchors.from_directory(trust_anchors_dir), at, pck_issuer=issuer
    )
    assert checked.tcb_info.id == "TDX"
