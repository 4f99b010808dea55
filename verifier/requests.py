"""What an appraisal is asked and answers: the request and result types of `verifier.service` and the request's
bounds (step 1 of the pipeline, ../shared/ARCHITECTURE.md). The bounds hold before any parsing: evidence up to
1 MiB, collateral up to 4 MiB in all, a nonce of 8..1024 bytes, runtime data up to 4096 bytes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from .appraisal.model import Appraisal
from .errors import RequestError

MAX_EVIDENCE_BYTES = 1024 * 1024
MAX_COLLATERAL_BYTES = 4 * 1024 * 1024
MIN_NONCE, MAX_NONCE, DEFAULT_NONCE = 8, 64, 32
MAX_RUNTIME_DATA = 4096


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


def check_bounds(request: AppraisalRequest) -> None:
    """Step 1: refuse a request over the bounds (module docstring) before anything parses it. Raises RequestError
    EVIDENCE_EMPTY, EVIDENCE_TOO_LARGE, COLLATERAL_TOO_LARGE, NONCE_SIZE or RUNTIME_DATA_TOO_LARGE."""
    if not request.evidence:
        raise RequestError("EVIDENCE_EMPTY", "the request carries no evidence")
    if len(request.evidence) > MAX_EVIDENCE_BYTES:
        raise RequestError("EVIDENCE_TOO_LARGE", f"evidence exceeds {MAX_EVIDENCE_BYTES} bytes")
    if sum(len(v) for v in request.collateral.values()) > MAX_COLLATERAL_BYTES:
        raise RequestError("COLLATERAL_TOO_LARGE", f"collateral exceeds {MAX_COLLATERAL_BYTES} bytes")
    if request.nonce is not None and not MIN_NONCE <= len(request.nonce) <= 1024:
        raise RequestError("NONCE_SIZE", f"nonce must be {MIN_NONCE}..1024 bytes, got {len(request.nonce)}")
    if request.runtime_data is not None and len(request.runtime_data) > MAX_RUNTIME_DATA:
        raise RequestError("RUNTIME_DATA_TOO_LARGE", f"runtime data exceeds {MAX_RUNTIME_DATA} bytes")
