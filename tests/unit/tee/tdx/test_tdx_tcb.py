"""TDX TCB status: real vectors, level matching, TDX module identity, QE identity and Intel's convergence rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_documents import collateral_from_files
from verifier.tee.tdx.enclave_report import parse_enclave_report
from verifier.tee.tdx.pck import pck_chain, pck_info
from verifier.tee.tdx.quote import parse_quote
from verifier.tee.tdx.tcb import TcbResult, check_for_relaunch, converge, evaluate
from verifier.tee.tdx.tcbinfo import STATUSES, parse_qe_identity, parse_tcb_info
from verifier.trust.anchors import TrustAnchors

WITH_COLLATERAL = [v for v in manifest_vectors("tdx") if v["what"]["collateral"] != "none"]
SVN = bytes([3, 1, 2]) + bytes(13)  # FakeIntelPki's TEE_TCB_SVN: module ISVSVN 3, TDX_01
MODULE = {"mrsigner": "00" * 48, "attributes": "00" * 8, "attributesMask": "FF" * 8}


def _real(vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]) -> TcbResult:
    folder = vectors_dir / vector["dir"]
    quote = parse_quote((folder / "evidence.bin").read_bytes())
    chain = pck_chain(quote.pck_chain_pem)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    at = dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))
    checked = verify_collateral(
        collateral_from_files(files), TrustAnchors.from_directory(trust_anchors_dir), at, pck_issuer=chain[0].issuer
    )
    return evaluate(
        checked.tcb_info,
        checked.qe_identity,
        pck_info(chain[0]),
        parse_enclave_report(quote.qe_report),
        tee_tcb_svn=quote.body.tee_tcb_svn,
        mr_signer_seam=quote.body.mr_signer_seam,
        seam_attributes=quote.body.seam_attributes,
        tee_tcb_svn_2=quote.body.tee_tcb_svn_2,
    )


@pytest.mark.parametrize("vector", WITH_COLLATERAL, ids=[v["id"] for v in WITH_COLLATERAL])
def test_real_vectors(vectors_dir: Path, trust_anchors_dir: Path, vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    if expected.get("tcb_status"):
        result = _real(vectors_dir, trust_anchors_dir, vector)
        assert result.status == expected["tcb_status"] == "UpToDate"
        assert list(result.advisory_ids) == expected["advisory_ids"] == []
        assert result.module_status == "UpToDate" and result.tcb_date is not None
    else:  # no-match vectors, and the tampered one (its body is rejected earlier, by the quote signature)
        with pytest.raises(EvidenceError) as info:
            _real(vectors_dir, trust_anchors_dir, vector)
        assert info.value.code == "TDX_TCB_LEVEL_NOT_FOUND"


# --- synthetic -------------------------------------------------------------------------------------------------

PKI = FakeIntelPki()


def _run(
    tcb: dict[str, Any] | None = None,
    qe: dict[str, Any] | None = None,
    *,
    pck: Any = None,
    svn: bytes = SVN,
    svn2: bytes | None = None,
    signer: bytes = bytes(48),
    attrs: bytes = bytes(8),
    **qe_fields: Any,
) -> TcbResult:
    report = parse_enclave_report(PKI.qe_report(bytes(64), **qe_fields))
    return evaluate(
        parse_tcb_info(tcb or PKI.tcb_info()),
        parse_qe_identity(qe or PKI.qe_identity()),
        pck or pck_info(PKI.pck),
        report,
        tee_tcb_svn=svn,
        mr_signer_seam=signer,
        seam_attributes=attrs,
        tee_tcb_svn_2=svn2,
    )


def _code(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(EvidenceError) as info:
        _run(*args, **kwargs)
    return info.value.code


def _module(*levels: tuple[int, str], ident: str = "TDX_01", **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": ident,
            **MODULE,
            **extra,
            "tcbLevels": [
                {
                    "tcb": {"isvsvn": svn},
                    "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": status,
                    **({"advisoryIDs": ["INTEL-SA-MOD"]} if status != "UpToDate" else {}),
                }
                for svn, status in levels
            ],
        }
    ]


@pytest.mark.parametrize("status", sorted(STATUSES))
def test_every_platform_status(status: str) -> None:
    result = _run(PKI.tcb_info(status=status))
    assert (result.status, result.platform_status, result.qe_status, result.module_status) == (
        status,
        status,
        "UpToDate",
        "UpToDate",
    )
    assert result.advisory_ids == (() if status == "UpToDate" else ("INTEL-SA-01036",))


def test_lower_platform_level_and_fmspc_case() -> None:
    lower = dataclasses.replace(
        pck_info(PKI.pck), tcb_components=tuple(max(c - 1, 0) for c in PKI.tcb_components), pcesvn=PKI.pcesvn - 1
    )
    result = _run(PKI.tcb_info(fmspc=PKI.fmspc.hex().lower()), pck=lower)
    assert (result.status, result.advisory_ids) == ("OutOfDate", ("INTEL-SA-00837",))
    assert _run(PKI.tcb_info(fmspc=PKI.fmspc.hex().upper())).status == "UpToDate"
    below = dataclasses.replace(lower, pcesvn=0, tcb_components=(0,) * 16)
    assert _code(pck=below) == "TDX_TCB_LEVEL_NOT_FOUND"
    assert _code(svn=bytes(16)) == "TDX_TCB_LEVEL_NOT_FOUND"
    assert _code(PKI.tcb_info(fmspc="00806F050000")) == "TDX_FMSPC_MISMATCH"
    assert _code(PKI.tcb_info(pceId="0100")) == "TDX_PCEID_MISMATCH"


def test_levels_are_matched_in_intel_canonical_order() -> None:
    info = PKI.tcb_info(status="SWHardeningNeeded")
    info["tcbLevels"] = info["tcbLevels"][::-1]  # the OutOfDate level first, as served
    assert _run(info).status == "SWHardeningNeeded"


@pytest.mark.parametrize(("platform", "component", "expected"), [
    ("UpToDate", "OutOfDate", "OutOfDate"), ("SWHardeningNeeded", "OutOfDate", "OutOfDate"),
    ("ConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
    ("ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
    ("OutOfDateConfigurationNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"),
    ("ConfigurationNeeded", "Revoked", "Revoked"), ("UpToDate", "Revoked", "Revoked"),
    ("UpToDate", "ConfigurationNeeded", "UpToDate"), ("SWHardeningNeeded", "UpToDate", "SWHardeningNeeded"),
    ("Revoked", "UpToDate", "Revoked"),
])  # fmt: skip
def test_convergence_table(platform: str, component: str, expected: str) -> None:
    assert converge(platform, component) == expected


def test_qe_status_converges_and_advisories_unite() -> None:
    result = _run(PKI.tcb_info(status="ConfigurationNeeded"), PKI.qe_identity(isvsvn=5), isvsvn=4)
    assert (result.status, result.qe_status) == ("OutOfDateConfigurationNeeded", "OutOfDate")
    assert result.advisory_ids == ("INTEL-SA-01036", "INTEL-SA-00837")
    assert _run(qe=PKI.qe_identity(status="Revoked")).status == "Revoked"
    assert _run(qe=PKI.qe_identity(status="ConfigurationNeeded")).status == "UpToDate"
    assert _code(qe=PKI.qe_identity(isvsvn=9), isvsvn=4) == "TDX_QE_TCB_LEVEL_NOT_FOUND"
    assert _code(qe=PKI.qe_identity(status="SWHardeningNeeded")) == "TDX_TCB_STATUS_INVALID"


@pytest.mark.parametrize("field", [
    {"mrsigner": b"\x01" * 32}, {"isvprodid": 1}, {"miscselect": 1}, {"attributes": b"\x13" + bytes(15)},
])  # fmt: skip
def test_qe_identity_mismatch(field: dict[str, Any]) -> None:
    assert _code(**field) == "TDX_QE_IDENTITY_MISMATCH"


def test_qe_attributes_outside_the_mask_are_ignored() -> None:
    assert _run(attributes=b"\x11" + bytes(7) + b"\xff" * 8).status == "UpToDate"


def test_module_identity() -> None:
    out_of_date = PKI.tcb_info(tdxModuleIdentities=_module((5, "UpToDate"), (2, "OutOfDate")))
    result = _run(out_of_date)
    assert (result.status, result.module_status, result.advisory_ids) == ("OutOfDate", "OutOfDate", ("INTEL-SA-MOD",))
    assert result.tcb_date == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # the module level is older
    assert _run(PKI.tcb_info(tdxModuleIdentities=_module((3, "Revoked")))).status == "Revoked"
    assert _code(PKI.tcb_info(tdxModuleIdentities=_module((4, "UpToDate")))) == "TDX_MODULE_TCB_LEVEL_NOT_FOUND"
    assert (
        _code(PKI.tcb_info(tdxModuleIdentities=_module((3, "UpToDate"), ident="TDX_03")))
        == "TDX_MODULE_IDENTITY_NOT_FOUND"
    )
    assert _run(PKI.tcb_info(tdxModuleIdentities=_module((3, "UpToDate"), ident="tdx_01"))).status == "UpToDate"
    assert _code(signer=b"\x01" * 48) == "TDX_MODULE_IDENTITY_MISMATCH"
    assert _code(attrs=b"\x01" + bytes(7)) == "TDX_MODULE_IDENTITY_MISMATCH"
    masked = PKI.tcb_info(tdxModuleIdentities=_module((3, "UpToDate"), attributesMask="00" * 8))
    assert _code(masked, attrs=b"\x01" + bytes(7)) == "TDX_MODULE_IDENTITY_MISMATCH"  # no bits outside the mask


def test_no_module_version_uses_tdx_module() -> None:
    svn = bytes([3, 0, 2]) + bytes(13)
    result = _run(svn=svn)
    assert (result.status, result.module_status) == ("UpToDate", None)
    assert _code(svn=svn, signer=b"\x01" * 48) == "TDX_MODULE_IDENTITY_MISMATCH"
    info = PKI.tcb_info()
    del info["tdxModule"]
    assert _code(info, svn=svn) == "TDX_MODULE_IDENTITY_NOT_FOUND"


def test_td15_relaunch_advised() -> None:
    info = PKI.tcb_info(tdxModuleIdentities=_module((5, "UpToDate"), (2, "OutOfDate")))
    current = bytes([5, 1, 2]) + bytes(13)
    assert _run(info, svn=SVN, svn2=current).status == "TDRelaunchAdvised"
    assert _run(info, svn=SVN, svn2=SVN).status == "OutOfDate"
    assert _run(info, svn=current, svn2=current).status == "UpToDate"
    assert check_for_relaunch("OutOfDateConfigurationNeeded", "UpToDate") == "TDRelaunchAdvisedConfigurationNeeded"
    assert check_for_relaunch("UpToDate", "OutOfDate") == "UpToDate"


@pytest.mark.parametrize("change", [
    {"tcbLevels": [{"tcb": {"sgxtcbcomponents": [{"svn": 1}] * 15, "pcesvn": 1,
                            "tdxtcbcomponents": [{"svn": 1}] * 16}, "tcbDate": "2024-01-01T00:00:00Z",
                    "tcbStatus": "UpToDate"}]},
    {"tcbLevels": [{"tcb": {}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": "UpToDate"}] * 300},
    {"tcbLevels": "none"}, {"fmspc": "B0C06F"}, {"fmspc": 5}, {"version": "3"}, {"version": True},
    {"issueDate": "yesterday"}, {"issueDate": "2025-01-01T00:00:00"}, {"tdxModule": {"mrsigner": "00"}},
])  # fmt: skip
def test_parse_tcb_info_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(EvidenceError) as info:
        parse_tcb_info(PKI.tcb_info(**change))
    assert info.value.code == "TDX_COLLATERAL_MALFORMED"


def test_parse_rejects_unknown_status_and_bad_qe_identity() -> None:
    info = PKI.tcb_info()
    info["tcbLevels"][0]["tcbStatus"] = "Fine"
    for bad in (
        lambda: parse_tcb_info(info),
        lambda: parse_qe_identity(PKI.qe_identity(mrsigner="00")),
        lambda: parse_qe_identity(PKI.qe_identity(tcbLevels=[{"tcb": {"isvsvn": -1}}])),
        lambda: parse_qe_identity([]),
    ):  # type: ignore[arg-type]
        with pytest.raises(EvidenceError) as error:
            bad()
        assert error.value.code == "TDX_COLLATERAL_MALFORMED"
