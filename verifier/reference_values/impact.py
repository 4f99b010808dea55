"""Impact of a candidate reference-value set on recent real traffic, before the change is applied.

`impact()` re-appraises kept evidence (`verifier.storage.kept_evidence`) with the same service (trust anchors,
policies, collateral source) but with the candidate set in place of the database's reference values, and reports
which workloads would change status. `verifier refs plan --impact` prints `impact_report(rows)`.

Time, deliberately two instants per item:
- certificates, CRLs and vendor collateral are checked at the item's own `received_at` (a fixed clock), so a
  Nitro document whose short-lived leaf certificate has since expired still verifies as it did then;
- the candidate reference values are taken as active at `at` (default: now), i.e. the set as it would stand
  once the change is applied, whatever its values' validity was when the evidence arrived.

Nothing is recorded, signed or kept, no challenge is consumed and no nonce / runtime-data binding is re-checked
(the original nonce was consumed by the first appraisal; see `VerifierService.reappraise`)."""

from __future__ import annotations

import builtins
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..clock import to_rfc3339
from ..errors import VerifierError
from ..service import AppraisalRequest, VerifierService
from ..storage.kept_evidence import SqlKeptEvidence
from .model import ReferenceValue

ERROR_STATUS = "error"  # status_after when the item could not be re-appraised (codes_after says why)


@dataclass(frozen=True)
class ImpactRow:
    evidence_id: str
    received_at: dt.datetime
    tee: str
    workload: str
    status_before: str
    status_after: str
    changed: bool
    codes_after: tuple[str, ...]


class CandidateReader:
    """A `ReferenceValueReader` over a candidate set, evaluated at one fixed instant whatever it is asked."""

    def __init__(self, candidate: Sequence[ReferenceValue], at: dt.datetime) -> None:
        self._candidate = builtins.list(candidate)
        self._at = at

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        wanted = set(kinds)
        return [r for r in self._candidate if r.kind in wanted and r.active_at(self._at)]


def impact(service: VerifierService, kept: SqlKeptEvidence, candidate: Sequence[ReferenceValue], *,
           at: dt.datetime | None = None, limit: int = 1000) -> builtins.list[ImpactRow]:
    """Re-appraise the newest `limit` kept items against `candidate` (active at `at`, default now); newest first."""
    reader = CandidateReader(candidate, at if at is not None else service.clock.now())
    rows: builtins.list[ImpactRow] = []
    for item in kept.recent(limit):
        request = AppraisalRequest(tee=item.tee, evidence=item.evidence, collateral=item.collateral,
                                   policy=item.policy)
        try:
            appraisal = service.reappraise(request, at=item.received_at, references=reader)
            status, codes = appraisal.status.value, tuple(f.code for f in appraisal.findings)
        except VerifierError as exc:  # e.g. the policy is gone or collateral is unavailable
            status, codes = ERROR_STATUS, (exc.code,)
        rows.append(ImpactRow(item.id, item.received_at, item.tee, item.workload, item.status, status,
                              status != item.status, codes))
    return rows


def impact_report(rows: Sequence[ImpactRow]) -> str:
    """Plain text: a summary line, the transitions with their counts, then one line per changed item."""
    changed = [r for r in rows if r.changed]
    lines = [f"impact: {len(rows)} kept appraisals re-appraised, {len(changed)} would change"]
    transitions = Counter((r.status_before, r.status_after) for r in changed)
    for (before, after), count in sorted(transitions.items()):
        workloads = sorted({r.workload for r in changed if (r.status_before, r.status_after) == (before, after)})
        lines.append(f"  {before} -> {after}: {count} ({len(workloads)} workloads)")
    for r in changed:
        codes = ",".join(r.codes_after) or "-"
        lines.append(f"  {to_rfc3339(r.received_at)}  {r.tee:<5} {r.workload:<40} "
                     f"{r.status_before} -> {r.status_after}  [{codes}]  evidence {r.evidence_id}")
    return "\n".join(lines)
