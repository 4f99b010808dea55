"""Keeping recent evidence for impact analysis: the port the service keeps it through and the short workload
description stored beside it. Keeping is best effort, off the answer path: an appraisal is recorded and answered
whether or not its evidence can be kept."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
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

    def keep_many(self, items: Sequence[KeepItem]) -> list[str | None]:
        """Keep the evidence and collateral of each appraisal in `items` (one transaction for them); return each
        kept item's id, or None when keeping is off or the item is over the bounds. Raises UnavailableError
        (DATABASE_*); the service logs it and goes on."""
        ...

    def already_kept(self, evidence: bytes, at: dt.datetime) -> bool:
        """True when `keep_many` would keep nothing new for `evidence` received at `at` (this process kept the same
        bytes recently, or keeping is off), so that nothing need be queued. Never raises."""
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
    """Keep the evidence of a recorded appraisal: with `background`, queued off the answer's path (every item
    queued meanwhile reaches `keep_many` at once: one transaction for them), else now. Evidence already kept is not
    queued at all. Never raises."""
    if kept.already_kept(request.evidence, at):
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
    if background is None:
        _keep_batch([(kept, item)])
    else:
        background.submit_batched(_keep_batch, (kept, item))


def _keep_batch(entries: list[tuple[EvidenceKeeper, KeepItem]]) -> None:
    """Each keeper's items in one `keep_many`; a VerifierError (the store is unavailable) is logged, never raised."""
    groups: dict[int, tuple[EvidenceKeeper, list[KeepItem]]] = {}
    for kept, item in entries:
        groups.setdefault(id(kept), (kept, []))[1].append(item)
    for kept, items in groups.values():
        try:
            kept.keep_many(items)
        except VerifierError as exc:
            ids = ", ".join(item.appraisal_id for item in items[:8])
            log.warning("could not keep the evidence of %d appraisals (%s): %s", len(items), ids, exc)


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
