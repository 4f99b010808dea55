"""TDX TCB status: platform TCB level, TDX module identity, QE identity, and their convergence.

Follows Intel's DCAP Quote Verification Library (QVL) as dcap-qvl 0.7.0 implements it (src/verify.rs
`match_platform_tcb`, `find_tcb_level`, `evaluate_tdx_tcb`, `verify_tdx_module_identity`,
`verify_qe_identity_policy`; src/tcb_info.rs `canonicalize_tcb_levels`, `converge_with_component`,
`check_for_relaunch`) and go-tdx-guest verify.go `getMatchingTcbLevel` / `getMatchingTdxModuleTcbLevel`:

- TCB levels are visited in Intel QVL's canonical order (SGX components, then PCESVN, then TDX components, each
  highest first; a stable sort, so PCS order is kept); the first level whose 16 SGX components and PCESVN are met
  by the PCK certificate and whose TDX components are met by TEE_TCB_SVN matches. With a module version
  (TEE_TCB_SVN[1] > 0) the module SVNs (TDX components 0 and 1) are left to the module identity.
- The QE and TDX module statuses only change the platform status when they are OutOfDate or Revoked.
- A TD 1.5 report's TEE_TCB_SVN_2 (current TCB) must match a level too; OutOfDate at launch but current now
  gives TDRelaunchAdvised (Intel QVL `checkForRelaunch`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from verifier.errors import EvidenceError

from .enclave_report import EnclaveReport
from .pck import PckInfo
from .tcbinfo import IsvLevel, QeIdentity, TcbInfo, TcbLevel

UP_TO_DATE, OUT_OF_DATE, REVOKED = "UpToDate", "OutOfDate", "Revoked"
SW, CONFIG, CONFIG_SW = "SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE_CONFIG = "OutOfDateConfigurationNeeded"
RELAUNCH, RELAUNCH_CONFIG = "TDRelaunchAdvised", "TDRelaunchAdvisedConfigurationNeeded"
MODULE_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, REVOKED})
QE_STATUSES = frozenset({UP_TO_DATE, OUT_OF_DATE, CONFIG, REVOKED, OUT_OF_DATE_CONFIG})


@dataclass(frozen=True)
class TcbResult:
    status: str  # converged: platform (with module) and QE
    tcb_date: datetime.datetime | None  # of the matched platform level, or the module level when older
    advisory_ids: tuple[str, ...]  # platform, then module, then QE advisories, without duplicates
    platform_status: str  # the matched platform level as served
    qe_status: str
    module_status: str | None  # None without a module version (TEE_TCB_SVN[1] == 0)


def converge(platform: str, component: str) -> str:
    """Intel QVL `convergeTcbStatusWithQeTcbStatus` (also applied to the TDX module status)."""
    if component == REVOKED:
        return REVOKED
    if component == OUT_OF_DATE and platform in (UP_TO_DATE, SW):
        return OUT_OF_DATE
    if component == OUT_OF_DATE and platform in (CONFIG, CONFIG_SW):
        return OUT_OF_DATE_CONFIG
    return platform


def check_for_relaunch(launch: str, current: str) -> str:
    """Intel QVL `checkForRelaunch` for TD 1.5: out of date at launch, not any more now."""
    if launch in (OUT_OF_DATE, OUT_OF_DATE_CONFIG) and current in (UP_TO_DATE, SW, CONFIG, CONFIG_SW):
        needs_config = {launch, current} & {CONFIG, OUT_OF_DATE_CONFIG, CONFIG_SW, RELAUNCH_CONFIG}
        return RELAUNCH_CONFIG if needs_config else RELAUNCH
    return launch


def _union(*lists: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for ids in lists for i in ids))


def _status(status: str, allowed: frozenset[str], where: str) -> str:
    if status not in allowed:
        raise EvidenceError(
            "TDX_TCB_STATUS_INVALID",
            f"status {status} is not valid in {where}",
            expected="|".join(sorted(allowed)),
            actual=status,
        )
    return status


def _qe_level(identity: QeIdentity, qe: EnclaveReport) -> IsvLevel:
    """QE identity policy (dcap-qvl `verify_qe_identity_policy`): MRSIGNER, not DEBUG, ISVPRODID, MISCSELECT and
    ATTRIBUTES under their masks, then the first level with isvsvn <= the QE's ISVSVN."""
    attrs = bytes(a & m for a, m in zip(qe.attributes, identity.attributes_mask, strict=True))
    want = bytes(a & m for a, m in zip(identity.attributes, identity.attributes_mask, strict=True))
    checks = (
        ("MRSIGNER", identity.mrsigner.hex(), qe.mrsigner.hex()),
        ("DEBUG", "clear", "set" if qe.debug else "clear"),
        ("ISVPRODID", str(identity.isvprodid), str(qe.isvprodid)),
        (
            "MISCSELECT",
            f"{identity.miscselect & identity.miscselect_mask:08x}",
            f"{qe.miscselect & identity.miscselect_mask:08x}",
        ),
        ("ATTRIBUTES", want.hex(), attrs.hex()),
    )
    for name, expected, actual in checks:
        if expected != actual:
            raise EvidenceError(
                "TDX_QE_IDENTITY_MISMATCH",
                f"QE report {name} does not match the TD_QE identity",
                expected=expected,
                actual=actual,
            )
    for level in identity.tcb_levels:
        if level.isvsvn <= qe.isvsvn:
            _status(level.tcb_status, QE_STATUSES, "the QE identity")
            return level
    raise EvidenceError(
        "TDX_QE_TCB_LEVEL_NOT_FOUND",
        "QE ISVSVN is below every QE identity TCB level",
        expected=f">= {min((lv.isvsvn for lv in identity.tcb_levels), default=0)}",
        actual=str(qe.isvsvn),
    )


def _platform_level(info: TcbInfo, pck: PckInfo, tee_tcb_svn: bytes) -> TcbLevel:
    levels = sorted(info.tcb_levels, key=lambda lv: (lv.sgx_components, lv.pcesvn, lv.tdx_components), reverse=True)
    skip = 2 if tee_tcb_svn[1] > 0 else 0
    for level in levels:
        if level.pcesvn > pck.pcesvn or any(
            w > h for w, h in zip(level.sgx_components, pck.tcb_components, strict=True)
        ):
            continue
        if any(w > h for w, h in list(zip(level.tdx_components, tee_tcb_svn, strict=True))[skip:]):
            continue
        return level
    raise EvidenceError(
        "TDX_TCB_LEVEL_NOT_FOUND",
        "no matching TCB level: the platform is below every TCB level of the TCB info",
        expected="a level met by the PCK TCB and TEE_TCB_SVN",
        actual=f"cpusvn {bytes(pck.tcb_components).hex()} pcesvn {pck.pcesvn} tee_tcb_svn {tee_tcb_svn.hex()}",
    )


def _module_level(info: TcbInfo, tee_tcb_svn: bytes) -> IsvLevel | None:
    """go-tdx-guest `getMatchingTdxModuleTcbLevel`: identity TDX_<TEE_TCB_SVN[1]>, level by TEE_TCB_SVN[0]."""
    if tee_tcb_svn[1] == 0:
        return None
    wanted = f"TDX_{tee_tcb_svn[1]:02X}"
    identity = next((m for m in info.tdx_module_identities if m.id.upper() == wanted), None)
    if identity is None:
        raise EvidenceError(
            "TDX_MODULE_IDENTITY_NOT_FOUND",
            "the TCB info has no identity for the TDX module",
            expected=wanted,
            actual=",".join(m.id for m in info.tdx_module_identities),
        )
    for level in identity.tcb_levels:
        if level.isvsvn <= tee_tcb_svn[0]:
            _status(level.tcb_status, MODULE_STATUSES, f"TDX module identity {wanted}")
            return level
    raise EvidenceError(
        "TDX_MODULE_TCB_LEVEL_NOT_FOUND",
        f"TDX module ISVSVN is below every {wanted} TCB level",
        expected=f">= {min((lv.isvsvn for lv in identity.tcb_levels), default=0)}",
        actual=str(tee_tcb_svn[0]),
    )


def _check_module_identity(info: TcbInfo, tee_tcb_svn: bytes, mr_signer_seam: bytes, seam_attributes: bytes) -> None:
    """MRSIGNERSEAM and SEAMATTRIBUTES (under the mask; no bits outside it) against the module identity, or
    against `tdxModule` without a module version."""
    wanted = f"TDX_{tee_tcb_svn[1]:02X}"
    identity = next((m for m in info.tdx_module_identities if m.id.upper() == wanted), None)
    source = identity if tee_tcb_svn[1] > 0 and identity is not None else info.tdx_module
    if source is None:
        raise EvidenceError("TDX_MODULE_IDENTITY_NOT_FOUND", "the TCB info has no tdxModule", expected="tdxModule")
    attrs_ok = all(
        a & m == e & m and not a & ~m & 0xFF
        for a, e, m in zip(seam_attributes, source.attributes, source.attributes_mask, strict=True)
    )
    if mr_signer_seam != source.mrsigner or not attrs_ok:
        raise EvidenceError(
            "TDX_MODULE_IDENTITY_MISMATCH",
            "MRSIGNERSEAM/SEAMATTRIBUTES do not match the TDX module identity",
            expected=f"{source.mrsigner.hex()} {source.attributes.hex()}/{source.attributes_mask.hex()}",
            actual=f"{mr_signer_seam.hex()} {seam_attributes.hex()}",
        )


def _tdx_tcb(info: TcbInfo, pck: PckInfo, tee_tcb_svn: bytes) -> tuple[TcbLevel, IsvLevel | None, str]:
    """dcap-qvl `evaluate_tdx_tcb`: the platform level converged with the module level."""
    level = _platform_level(info, pck, tee_tcb_svn)
    module = _module_level(info, tee_tcb_svn)
    return level, module, converge(level.tcb_status, module.tcb_status) if module else level.tcb_status


def evaluate(
    tcb_info: TcbInfo,
    qe_identity: QeIdentity,
    pck: PckInfo,
    qe_report: EnclaveReport,
    *,
    tee_tcb_svn: bytes,
    mr_signer_seam: bytes,
    seam_attributes: bytes,
    tee_tcb_svn_2: bytes | None = None,
) -> TcbResult:
    """TCB status of a verified quote against verified collateral (see the module docstring).

    `tee_tcb_svn_2` is TEE_TCB_SVN_2 of a TD 1.5 report (None for TD 1.0)."""
    for name, mine, theirs, code in (
        ("FMSPC", pck.fmspc, tcb_info.fmspc, "TDX_FMSPC_MISMATCH"),
        ("PCE-ID", pck.pce_id, tcb_info.pce_id, "TDX_PCEID_MISMATCH"),
    ):
        if mine.hex().lower() != theirs.hex().lower():
            raise EvidenceError(
                code, f"the PCK certificate's {name} is not the TCB info's", expected=theirs.hex(), actual=mine.hex()
            )
    sizes = (len(tee_tcb_svn), len(pck.tcb_components), 16 if tee_tcb_svn_2 is None else len(tee_tcb_svn_2))
    if sizes != (16, 16, 16):
        raise EvidenceError(
            "TDX_TCB_LEVEL_NOT_FOUND",
            "TEE_TCB_SVN(_2) and the PCK TCB need 16 components",
            expected="16",
            actual="/".join(map(str, sizes)),
        )
    qe = _qe_level(qe_identity, qe_report)
    level, module, platform = _tdx_tcb(tcb_info, pck, tee_tcb_svn)
    _check_module_identity(tcb_info, tee_tcb_svn, mr_signer_seam, seam_attributes)
    status = converge(platform, qe.tcb_status)
    if tee_tcb_svn_2 is not None:
        current = converge(_tdx_tcb(tcb_info, pck, tee_tcb_svn_2)[2], qe.tcb_status)
        status = REVOKED if REVOKED in (status, current) else check_for_relaunch(status, current)
    tcb_date = min(level.tcb_date, module.tcb_date) if module else level.tcb_date
    advisories = _union(level.advisory_ids, module.advisory_ids if module else (), qe.advisory_ids)
    return TcbResult(
        status, tcb_date, advisories, level.tcb_status, qe.tcb_status, module.tcb_status if module else None
    )
