"""Where a GPU report's two RIMs come from, and their verification (`rim_verify.verify_rim`) at the appraisal time.

Order: the request's collateral (`driver_rim.xml`, `vbios_rim.xml`), then the collateral source by the id NVIDIA's
RIM service names the RIM by (`collateral.nvidia_keys.rim_key`: kind "nvidia.rim", param "id"; the cache and
offline mode as for AMD KDS / Intel PCS).
The ids (nv-local-gpu-verifier cc_admin_utils.py `get_driver_rim_file_id`, `get_vbios_rim_file_id`):

- driver: Hopper `NV_GPU_DRIVER_GH100_<driver version>`; Blackwell `NV_GPU_CC_DRIVER_<chip>_<driver version>`, the
  chip from the opaque CHIP_INFO, else the leaf certificate's CN ("GB100");
- VBIOS: `NV_GPU_VBIOS_<PROJECT>_<PROJECT_SKU>_<CHIP_SKU>_<VBIOS version without dots, upper case>`.

A RIM the source delivered that does not parse or whose signature does not verify is reported to the source
(`collateral.base.reject`), so a cache drops it. Nothing here raises for a RIM: its outcome says what happened."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from ...clock import to_rfc3339
from ...collateral.base import CollateralItem, CollateralUnavailableError, reject
from ...collateral.nvidia_keys import rim_key
from ...errors import EvidenceError
from ...trust.chain import VerifiedLinks
from ..base import CollateralUsed, VerifyContext
from . import opaque
from .claims import architecture, chip
from .facts import RimKind, RimOutcome
from .rim_verify import verify_rim
from .spdm import SpdmReport

RIM_FILES: dict[RimKind, str] = {"driver": "driver_rim.xml", "vbios": "vbios_rim.xml"}
CHIP_INFO, PROJECT, PROJECT_SKU, CHIP_SKU = 35, 17, 18, 15
REJECTED = frozenset({"GPU_RIM_MALFORMED", "GPU_RIM_TOO_LARGE", "GPU_RIM_SIGNATURE_INVALID"})  # the bytes alone
NO_ID = "GPU_RIM_ID_UNKNOWN"  # the report does not say enough to name its RIM (an `unavailable` reason, not raised)


def _text(report: SpdmReport, kind: int) -> str:
    value = report.response.opaque.get(kind)
    return opaque.ascii_text(value) if value is not None else ""


def driver_rim_id(report: SpdmReport, chain: Sequence[x509.Certificate]) -> str | None:
    """The driver RIM's id (module docstring); None when the architecture or (Blackwell) the chip is unknown. Never
    raises."""
    version = report.response.opaque.driver_version
    arch = architecture(report)
    if arch == "hopper":
        return f"NV_GPU_DRIVER_GH100_{version}"
    name = _text(report, CHIP_INFO) or chip(chain) or ""
    return f"NV_GPU_CC_DRIVER_{name}_{version}" if arch == "blackwell" and name else None


def vbios_rim_id(report: SpdmReport) -> str | None:
    """The VBIOS RIM's id (module docstring); None when PROJECT, PROJECT_SKU or CHIP_SKU is absent. Never raises."""
    parts = [_text(report, kind) for kind in (PROJECT, PROJECT_SKU, CHIP_SKU)]
    if not all(parts):
        return None
    version = report.response.opaque.vbios_version.replace(".", "").upper()
    return "NV_GPU_VBIOS_" + "_".join([*parts, version])


def _fetch(kind: RimKind, rim_id: str | None, ctx: VerifyContext) -> CollateralItem | RimOutcome:
    try:
        key = rim_key(rim_id or "")
    except ValueError:  # the report names no RIM (or not one NVIDIA's ids can be)
        return RimOutcome(kind, rim_id, unavailable=NO_ID)
    try:
        return ctx.source.fetch(key, at=ctx.at)
    except CollateralUnavailableError as exc:
        return RimOutcome(kind, rim_id, unavailable=exc.code, retry_after=exc.retry_after)


def gather(kind: RimKind, rim_id: str | None, ctx: VerifyContext, links: VerifiedLinks | None = None) -> RimOutcome:
    """The `kind` RIM of a report (module docstring) and whether it verified at `ctx.at` against the "nvidia-rim"
    pins of `ctx.anchors`. Never raises for the RIM's content or its unavailability."""
    data = ctx.collateral.get(RIM_FILES[kind])
    item: CollateralItem | None = None
    if data is None:
        fetched = _fetch(kind, rim_id, ctx)
        if isinstance(fetched, RimOutcome):
            return fetched
        item, data = fetched, fetched.data
    source = item.source if item is not None else "request"
    try:
        rim = verify_rim(data, at=ctx.at, anchors=ctx.anchors, links=links)
    except EvidenceError as exc:
        if item is not None and exc.code in REJECTED:
            reject(ctx.source, item, reason=exc.code)
        return RimOutcome(kind, rim_id, error=exc, source=source)
    return RimOutcome(kind, rim_id, rim=rim, source=source)


def collateral_used(outcome: RimOutcome) -> CollateralUsed | None:
    """The collateral entry of a RIM that verified (its tag id, the window its signing chain is valid in, where it
    came from); None otherwise. Never raises."""
    rim = outcome.rim
    if rim is None:
        return None
    return CollateralUsed(
        item=f"nvidia.rim.{outcome.kind}",
        number=rim.rim.tag_id,
        issued=to_rfc3339(rim.valid_from),
        next_update=to_rfc3339(rim.valid_until),
        source=outcome.source,
    )
