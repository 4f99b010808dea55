"""The typed facts the GPU verifier (`verify.py`) hands to its appraiser (`verifier/appraisal/gpu.py`):
`VerifiedEvidence[SpdmReport, GpuFacts].facts`, so the appraiser compares without any crypto.

Revocation (NVIDIA OCSP, `verifier.trust.ocsp`): "checked" when every device certificate but the leaf and the root
(and every RIM chain certificate but the root) had a verified good response; "unavailable" when one had none (the
policy's `gpu.ocsp` decides: fail closed by default); a revoked certificate is a verification failure
(GPU_CERT_REVOKED), never a fact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from ...errors import EvidenceError
from .fwid import LeafFwid
from .rim_verify import VerifiedRim

RimKind = Literal["driver", "vbios"]
Revocation = Literal["checked", "unavailable"]


@dataclass(frozen=True)
class RimOutcome:
    """One of the two RIMs a report is appraised against.

    `rim_id`: the id NVIDIA's RIM service names it by (None when it cannot be formed, e.g. a Blackwell report with
    no chip name); `rim`: the RIM when its signature and signing chain verified at the appraisal time; `error`: why
    the RIM that was supplied or fetched did not verify; `unavailable`: the collateral code when no RIM could be had
    (with `retry_after` seconds when the source said); `source`: where the RIM came from ("request", or the collateral
    source's name)."""

    kind: RimKind
    rim_id: str | None
    rim: VerifiedRim | None = None
    error: EvidenceError | None = None
    unavailable: str | None = None
    retry_after: float | None = None
    source: str | None = None
    revocation: Revocation | None = None  # the OCSP status of its signing chain, for a RIM that verified
    revocation_detail: str = ""  # why that status is "unavailable"


@dataclass(frozen=True)
class GpuFacts:
    """What verification established besides the report itself (module docstring).

    `chain`: the verified device chain, leaf (FMC LF) first, ending at the pinned root; `architecture`: "hopper" or
    "blackwell" when the report's GPU_INFO names one; `leaf_fwid`: the leaf's FWID; `fwid_checked`: whether the
    report carried an FWID and it equalled the leaf's (535/545-era reports carry none: NVIDIA's verifiers then skip
    the comparison, and so does this one); `revocation_detail`: which certificate lacked a good response, and why."""

    chain: tuple[x509.Certificate, ...]
    architecture: str | None
    leaf_fwid: LeafFwid | None
    fwid_checked: bool
    revocation: Revocation
    revocation_detail: str
    driver: RimOutcome
    vbios: RimOutcome
