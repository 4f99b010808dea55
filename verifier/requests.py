"""What an appraisal is asked and answers: the request and result types of `verifier.service` and the request's
bounds (step 1 of the pipeline, ../shared/ARCHITECTURE.md). The bounds hold before any parsing: evidence up to
1 MiB, collateral up to 4 MiB in all (the GPUs' included), a nonce of 8..1024 bytes, runtime data up to 4096 bytes,
and a composite request's GPU reports (`GpuEvidence`, verifier.composite) at most `MAX_GPUS` of up to 256 KiB each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .appraisal.model import Appraisal, Finding
from .errors import RequestError
from .evaluation import Component, Evaluation

MAX_EVIDENCE_BYTES = 1024 * 1024
MAX_COLLATERAL_BYTES = 4 * 1024 * 1024
MIN_NONCE, MAX_NONCE, DEFAULT_NONCE = 8, 64, 32
MAX_RUNTIME_DATA = 4096
MAX_GPUS = 8  # an HGX board: eight GPUs behind one CPU TEE
MAX_GPU_EVIDENCE_BYTES = 256 * 1024  # an SPDM GET_MEASUREMENTS request + response is a few KiB


@dataclass(frozen=True)
class GpuEvidence:
    """The attestation report of one GPU the CPU TEE drives (composite evidence, verifier.composite) and its
    collateral files (cert_chain.pem, driver_rim.xml, vbios_rim.xml, OCSP responses)."""

    evidence: bytes
    collateral: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class AppraisalRequest:
    """One piece of evidence of kind `tee` with its collateral files, the challenge nonce and runtime data it
    should bind, the policy it asks for and the caller's request id."""

    tee: str
    evidence: bytes
    collateral: Mapping[str, bytes] = field(default_factory=dict)
    nonce: bytes | None = None
    runtime_data: bytes | None = None
    policy: str | None = None
    request_id: str | None = None
    # Composite evidence: the reports of the GPUs the CPU TEE (`tee` snp or tdx) drives, bound by REPORT_DATA
    # (verifier.appraisal.binding `composite_report_data`); empty for one piece of evidence.
    gpus: tuple[GpuEvidence, ...] = ()


@dataclass(frozen=True)
class AppraisalResult:
    """The appraisal, its signed EAR and the ids it was recorded under."""

    appraisal: Appraisal
    token: str
    token_id: str
    appraisal_id: str
    appraised_at: dt.datetime
    # Set when collateral was unavailable and the appraisal is incomplete (never affirming): its error code.
    incomplete: str | None = None
    # The GPUs' appraisals of a composite request (`gpu0`.., verifier.evaluation.Component); `appraisal.status` is
    # then the worst of the CPU TEE's and theirs (its trust vector and findings are the CPU TEE's own).
    components: tuple[Component, ...] = ()


def check_bounds(request: AppraisalRequest) -> None:
    """Step 1: refuse a request over the bounds (module docstring) before anything parses it. Raises RequestError
    EVIDENCE_EMPTY, EVIDENCE_TOO_LARGE, COLLATERAL_TOO_LARGE, NONCE_SIZE, RUNTIME_DATA_TOO_LARGE, GPU_COUNT_TOO_LARGE,
    GPU_EVIDENCE_EMPTY or GPU_EVIDENCE_TOO_LARGE."""
    if not request.evidence:
        raise RequestError("EVIDENCE_EMPTY", "the request carries no evidence")
    if len(request.evidence) > MAX_EVIDENCE_BYTES:
        raise RequestError("EVIDENCE_TOO_LARGE", f"evidence exceeds {MAX_EVIDENCE_BYTES} bytes")
    _check_gpus(request.gpus)
    collateral = [request.collateral, *(gpu.collateral for gpu in request.gpus)]
    if sum(len(v) for files in collateral for v in files.values()) > MAX_COLLATERAL_BYTES:
        raise RequestError("COLLATERAL_TOO_LARGE", f"collateral exceeds {MAX_COLLATERAL_BYTES} bytes")
    if request.nonce is not None and not MIN_NONCE <= len(request.nonce) <= 1024:
        raise RequestError("NONCE_SIZE", f"nonce must be {MIN_NONCE}..1024 bytes, got {len(request.nonce)}")
    if request.runtime_data is not None and len(request.runtime_data) > MAX_RUNTIME_DATA:
        raise RequestError("RUNTIME_DATA_TOO_LARGE", f"runtime data exceeds {MAX_RUNTIME_DATA} bytes")


def _check_gpus(gpus: tuple[GpuEvidence, ...]) -> None:
    """The GPU reports' bounds (module docstring). Raises RequestError GPU_COUNT_TOO_LARGE, GPU_EVIDENCE_EMPTY or
    GPU_EVIDENCE_TOO_LARGE."""
    if len(gpus) > MAX_GPUS:
        raise RequestError("GPU_COUNT_TOO_LARGE", f"a request carries at most {MAX_GPUS} GPU reports, got {len(gpus)}")
    for index, gpu in enumerate(gpus):
        if not gpu.evidence:
            raise RequestError("GPU_EVIDENCE_EMPTY", f"GPU report {index} is empty")
        if len(gpu.evidence) > MAX_GPU_EVIDENCE_BYTES:
            raise RequestError("GPU_EVIDENCE_TOO_LARGE", f"GPU report {index} exceeds {MAX_GPU_EVIDENCE_BYTES} bytes")


# The token id, the appraisal id, the policy's SHA-256 and the reference-set version of one appraisal.
Ids = tuple[str, str, str, int | None]
# What a recorded appraisal's unit of work returns: the appraisal (with the composite's status), its findings, token.
Recorded = tuple[Appraisal, list[Finding], str]


class Prepared(NamedTuple):
    """An appraisal evaluated (steps 1-8) and not yet recorded: `VerifierService.prepare_inline`, `record_inline`."""

    request: AppraisalRequest
    at: dt.datetime
    evaluation: Evaluation
    ids: Ids
    require_challenge: bool
