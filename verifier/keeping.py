"""Keeping recent evidence for impact analysis: the port the service keeps it through and the short workload
description stored beside it. Keeping is best effort, off the answer path: an appraisal is recorded and answered
whether or not its evidence can be kept."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from .appraisal.model import Appraisal
from .appraisal.scheme import Scheme
from .background import BestEffortWorker
from .errors import VerifierError
from .reference_values.kept import KeepItem
from .requests import AppraisalRequest

log = logging.getLogger("verifier.service")


class EvidenceKeeper(Protocol):
    """Keeps recent evidence for impact analysis (`verifier.storage.kept_evidence.SqlKeptEvidence`)."""

    def keep(
        self,
        *,
        received_at: dt.datetime,
        tee: str,
        evidence: bytes,
        collateral: Mapping[str, bytes],
        policy: str | None,
        status: str,
        appraisal_id: str,
        workload: str,
    ) -> str | None:
        """Keep the evidence and collateral of one appraisal; return the kept item's id, or None when keeping is off or
        the item is over the bounds. Raises UnavailableError (DATABASE_*); the service logs it and goes on."""
        ...


def keep_after(
    kept: EvidenceKeeper,
    background: BestEffortWorker | None,
    request: AppraisalRequest,
    workload: str,
    appraisal: Appraisal,
    appraisal_id: str,
    at: dt.datetime,
) -> None:
    """Keep the evidence of a recorded appraisal: with `background`, queued off the answer's path (a keeper with
    `keep_many` gets every item queued meanwhile at once: one transaction for them), else now. Never raises."""
    if background is None:
        keep_best_effort(kept, request, workload, appraisal, appraisal_id, at)
        return
    if not callable(getattr(kept, "keep_many", None)):
        background.submit(lambda: keep_best_effort(kept, request, workload, appraisal, appraisal_id, at))
        return
    item = KeepItem(
        received_at=at,
        tee=appraisal.tee,
        evidence=request.evidence,
        collateral=request.collateral,
        policy=appraisal.policy_id,
        status=appraisal.status.value,
        appraisal_id=appraisal_id,
        workload=workload,
    )
    background.submit_batched(_keep_batch, (kept, item))


def _keep_batch(entries: list[tuple[Any, KeepItem]]) -> None:
    """The background worker's batch: each keeper's items in one `keep_many`; a VerifierError is logged."""
    groups: dict[int, tuple[Any, list[KeepItem]]] = {}
    for kept, item in entries:
        groups.setdefault(id(kept), (kept, []))[1].append(item)
    for kept, items in groups.values():
        try:
            kept.keep_many(items)
        except VerifierError as exc:
            log.warning("could not keep the evidence of %d appraisals: %s", len(items), exc)


def keep_best_effort(
    kept: EvidenceKeeper,
    request: AppraisalRequest,
    workload: str,
    appraisal: Appraisal,
    appraisal_id: str,
    at: dt.datetime,
) -> None:
    """Keep the request's evidence and collateral with its appraisal's outcome; a VerifierError (the store is
    unavailable) is logged, never raised."""
    try:
        kept.keep(
            received_at=at,
            tee=appraisal.tee,
            evidence=request.evidence,
            collateral=request.collateral,
            policy=appraisal.policy_id,
            status=appraisal.status.value,
            appraisal_id=appraisal_id,
            workload=workload,
        )
    except VerifierError as exc:
        log.warning("could not keep evidence of appraisal %s: %s", appraisal_id, exc)


def workload_description(scheme: Scheme, claims: Mapping[str, Any]) -> str:
    """A short description of the workload: the TEE and a prefix of its main measurement (the scheme's: Nitro
    PCR0, SNP MEASUREMENT, TDX MRTD), else the Nitro module_id."""
    tee, name = scheme.name, scheme.main_measurement
    value: Any = scheme.measurement(claims)
    if isinstance(value, bytes):
        value = value.hex()
    if isinstance(value, str) and value:
        return f"{tee} {name} {value[:16]}"
    module_id = claims.get("module_id")
    if isinstance(module_id, str) and module_id:
        return f"{tee} module {module_id[:150]}"
    return tee
