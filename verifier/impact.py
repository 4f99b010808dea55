"""Impact of a candidate reference-value set on recent real traffic, before the change is applied.

`impact()` re-appraises kept evidence (read through a `KeptEvidenceReader`, `verifier.reference_values.kept`) with
the same service (trust anchors, policies, collateral source) but with the candidate set in place of the database's
reference values, and reports which workloads would change status. `verifier refs plan --impact` prints
`impact_report(rows)`.

Time, deliberately two instants per item:
- certificates, CRLs and vendor collateral are checked at the item's own `received_at` (a fixed clock), so a
  Nitro document whose short-lived leaf certificate has since expired still verifies as it did then;
- the candidate reference values are taken as active at `at` (default: now), i.e. the set as it would stand
  once the change is applied, whatever its values' validity was when the evidence arrived.

Nothing is recorded, signed or kept, no challenge is consumed and no nonce / runtime-data binding is re-checked
(the original nonce was consumed by the first appraisal; see `VerifierService.reappraise`).

Per workload (issue 10): with `current` (today's values and workload metadata) each item is re-appraised twice,
under today's set and under the candidate, and `Appraisal.workload` (the workload version it matched completely)
says which workload each result names; `impact_by_workload` then reports, per workload, which kept evidence starts
matching it, stops matching it, or changes version or status under it. Without `current` the "before" side is the
status recorded when the evidence arrived (and no workload)."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .appraisal.model import Appraisal
from .clock import to_rfc3339
from .errors import VerifierError
from .reference_values.kept import KeptEvidence, KeptEvidenceReader
from .reference_values.model import ReferenceValue
from .service import AppraisalRequest, VerifierService
from .workloads.model import WorkloadMeta

ERROR_STATUS = "error"  # status_after when the item could not be re-appraised (codes_after says why)


Matched = tuple[str, str]  # (workload name, version); version "" = unversioned


@dataclass(frozen=True)
class ImpactRow:
    evidence_id: str
    received_at: dt.datetime
    tee: str
    workload: str  # the description kept with the evidence (TEE and a measurement prefix)
    status_before: str
    status_after: str
    changed: bool  # the status or the matched workload version differs
    codes_after: tuple[str, ...]
    matched_before: Matched | None = None  # the workload version the result names under today's set
    matched_after: Matched | None = None  # ... under the candidate set
    status_recorded: str = ""  # what the first appraisal said

    def to_json(self) -> dict[str, Any]:
        def matched(m: Matched | None) -> dict[str, str] | None:
            return {"name": m[0], "version": m[1]} if m is not None else None

        return {
            "evidence_id": self.evidence_id,
            "received_at": to_rfc3339(self.received_at),
            "tee": self.tee,
            "workload": self.workload,
            "status_recorded": self.status_recorded,
            "status_before": self.status_before,
            "status_after": self.status_after,
            "changed": self.changed,
            "codes_after": list(self.codes_after),
            "matched_before": matched(self.matched_before),
            "matched_after": matched(self.matched_after),
        }


@dataclass(frozen=True)
class WorkloadImpact:
    """What the candidate changes for one workload: kept evidence that starts matching it, stops matching it, or
    keeps matching it with another version or status."""

    workload: str
    starts: tuple[ImpactRow, ...] = ()
    stops: tuple[ImpactRow, ...] = ()
    changes: tuple[ImpactRow, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "starts_matching": [r.evidence_id for r in self.starts],
            "stops_matching": [r.evidence_id for r in self.stops],
            "changes": [r.evidence_id for r in self.changes],
        }


class CandidateCatalog:
    """A `WorkloadCatalog` over candidate metadata (today's, with the manifests' TEE and policy)."""

    def __init__(self, metadata: Mapping[str, WorkloadMeta]) -> None:
        self._metadata = dict(metadata)

    def metadata(self, names: Iterable[str]) -> dict[str, WorkloadMeta]:
        return {n: self._metadata[n] for n in names if n in self._metadata}


class CandidateReader:
    """A `ReferenceValueReader` over a candidate set, evaluated at one fixed instant whatever it is asked."""

    def __init__(self, candidate: Sequence[ReferenceValue], at: dt.datetime) -> None:
        self._candidate = builtins.list(candidate)
        self._at = at

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        wanted = set(kinds)
        return [r for r in self._candidate if r.kind in wanted and r.active_at(self._at)]


def impact(
    service: VerifierService,
    kept: KeptEvidenceReader,
    candidate: Sequence[ReferenceValue],
    *,
    at: dt.datetime | None = None,
    limit: int = 1000,
    current: Sequence[ReferenceValue] | None = None,
    catalog: Mapping[str, WorkloadMeta] | None = None,
    current_catalog: Mapping[str, WorkloadMeta] | None = None,
) -> builtins.list[ImpactRow]:
    """Re-appraise the newest `limit` kept items against `candidate` (active at `at`, default now); newest first.

    `catalog` / `current_catalog`: the workload metadata of the candidate and of today (None: the service's own).
    With `current`, "before" is a re-appraisal under `current` at the same instant, so only the change itself
    shows; without it, the recorded status. Never raises for one item: an item that cannot be re-appraised (policy
    gone, collateral unavailable) has status "error" and its code."""
    instant = at if at is not None else service.clock.now()
    after_service = _with_catalog(service, catalog)
    before_service = _with_catalog(service, current_catalog)
    after_reader = CandidateReader(candidate, instant)
    before_reader = CandidateReader(current, instant) if current is not None else None
    rows: builtins.list[ImpactRow] = []
    for item in kept.recent(limit):
        status, codes, matched = _reappraise(after_service, item, after_reader)
        if before_reader is not None:
            status_before, _, matched_before = _reappraise(before_service, item, before_reader)
        else:
            status_before, matched_before = item.status, None
        changed = status != status_before or (before_reader is not None and matched != matched_before)
        rows.append(
            ImpactRow(
                item.id,
                item.received_at,
                item.tee,
                item.workload,
                status_before,
                status,
                changed,
                codes,
                matched_before,
                matched,
                item.status,
            )
        )
    return rows


def _with_catalog(service: VerifierService, catalog: Mapping[str, WorkloadMeta] | None) -> VerifierService:
    return service if catalog is None else dataclasses.replace(service, workloads=CandidateCatalog(catalog))


def _reappraise(
    service: VerifierService, item: KeptEvidence, reader: CandidateReader
) -> tuple[str, tuple[str, ...], Matched | None]:
    request = AppraisalRequest(tee=item.tee, evidence=item.evidence, collateral=item.collateral, policy=item.policy)
    try:
        appraisal = service.reappraise(request, at=item.received_at, references=reader)
    except VerifierError as exc:  # e.g. the policy is gone or collateral is unavailable
        return ERROR_STATUS, (exc.code,), None
    return appraisal.status.value, tuple(f.code for f in appraisal.findings), matched_workload(appraisal)


def matched_workload(appraisal: Appraisal) -> Matched | None:
    """(name, version) of the workload version the appraisal names (`Appraisal.workload`), if any."""
    named = appraisal.workload
    if not isinstance(named, Mapping) or not isinstance(named.get("name"), str):
        return None
    version = named.get("version")
    return named["name"], version if isinstance(version, str) else ""


def impact_by_workload(rows: Sequence[ImpactRow]) -> builtins.list[WorkloadImpact]:
    """Per workload (sorted by name; "" = items that name no workload either way), the changed rows."""
    starts: dict[str, builtins.list[ImpactRow]] = {}
    stops: dict[str, builtins.list[ImpactRow]] = {}
    changes: dict[str, builtins.list[ImpactRow]] = {}
    for r in rows:
        if not r.changed:
            continue
        before = r.matched_before[0] if r.matched_before else None
        after = r.matched_after[0] if r.matched_after else None
        if before == after:
            changes.setdefault(before or "", []).append(r)
            continue
        if before is not None:
            stops.setdefault(before, []).append(r)
        if after is not None:
            starts.setdefault(after, []).append(r)
    names = sorted({*starts, *stops, *changes})
    return [
        WorkloadImpact(n, tuple(starts.get(n, [])), tuple(stops.get(n, [])), tuple(changes.get(n, []))) for n in names
    ]


def _version(m: Matched | None) -> str:
    return (f"version {m[1]}" if m[1] else "unversioned") if m is not None else "no workload"


def _evidence(r: ImpactRow) -> str:
    codes = ",".join(r.codes_after) or "-"
    return (
        f"evidence {r.evidence_id} ({r.tee}, {to_rfc3339(r.received_at)}, {r.workload}): "
        f"{_version(r.matched_before)} -> {_version(r.matched_after)}, "
        f"{r.status_before} -> {r.status_after} [{codes}]"
    )


def workload_report(rows: Sequence[ImpactRow]) -> str:
    """Plain text: the summary and transitions of `impact_report`, then per workload which evidence starts or
    stops matching it (+ / -) or changes under it (~)."""
    lines = impact_report(rows, items=False).splitlines()
    for w in impact_by_workload(rows):
        title = f"workload {w.workload}" if w.workload else "no workload before or after"
        lines.append(f"{title}: {len(w.starts)} start matching, {len(w.stops)} stop matching, {len(w.changes)} change")
        lines += [f"  + {_evidence(r)}" for r in w.starts]
        lines += [f"  - {_evidence(r)}" for r in w.stops]
        lines += [f"  ~ {_evidence(r)}" for r in w.changes]
    return "\n".join(lines)


def impact_report(rows: Sequence[ImpactRow], *, items: bool = True) -> str:
    """Plain text: a summary line, the transitions with their counts, then (with `items`) one line per changed
    item."""
    changed = [r for r in rows if r.changed]
    lines = [f"impact: {len(rows)} kept appraisals re-appraised, {len(changed)} would change"]
    transitions = Counter((r.status_before, r.status_after) for r in changed)
    for (before, after), count in sorted(transitions.items()):
        workloads = sorted({r.workload for r in changed if (r.status_before, r.status_after) == (before, after)})
        lines.append(f"  {before} -> {after}: {count} ({len(workloads)} workloads)")
    for r in changed if items else []:
        codes = ",".join(r.codes_after) or "-"
        lines.append(
            f"  {to_rfc3339(r.received_at)}  {r.tee:<5} {r.workload:<40} "
            f"{r.status_before} -> {r.status_after}  [{codes}]  evidence {r.evidence_id}"
        )
    return "\n".join(lines)
