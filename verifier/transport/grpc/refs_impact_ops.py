"""`refs plan --impact`, written once for the CLI's `--db` path and the Plan RPC: re-appraise the kept evidence
under today's workloads and under the candidate ones (the plan's values, the manifests' TEE and policy) with a
`VerifierService` (verifier.impact), and report per workload which evidence starts or stops matching. On a server
it runs where the kept evidence is, with the server's trust anchors, policies and collateral."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ...errors import RequestError
from ...impact import ImpactRow, impact, impact_by_workload
from ...reference_values.kept import KeptEvidence, KeptEvidenceReader
from ...reference_values.model import ReferenceValue
from ...service import VerifierService
from ...storage.engine import Database
from ...storage.kept_evidence import SqlKeptEvidence
from ...storage.reference_values import SqlReferenceValueStore
from ...storage.workloads import SqlWorkloads
from ...workloads.manifest_model import Manifest
from ...workloads.model import WorkloadMeta
from ...workloads.plan import Plan

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
Progress = Callable[[int, int], None]  # (items re-appraised, items in all)


def candidate_set(plan: Plan, active: Sequence[ReferenceValue], now: dt.datetime) -> list[ReferenceValue]:
    """The values that would be active once `plan` is applied: today's minus expired and revoked, plus added."""
    gone = {r.id for r in plan.expire} | {r.ref.id for r in plan.revoke}
    kept = [r for r in active if r.id not in gone]
    added = [
        ReferenceValue(
            id=f"planned-{i}",
            kind=e.kind,
            value=e.value,
            label=e.label,
            created_at=now,
            expires_at=e.expires_at,
            version=e.version,
            valid_from=e.valid_from,
        )
        for i, e in enumerate(plan.add)
    ]
    return kept + added


def candidate_catalog(manifests: Sequence[Manifest], catalog: Mapping[str, WorkloadMeta]) -> dict[str, WorkloadMeta]:
    """Today's metadata with each workload manifest's TEE and policy (a policy not given keeps the stored one)."""
    out = dict(catalog)
    for m in manifests:
        spec = m.workload
        if spec is None:
            continue
        meta = out.get(spec.name)
        if meta is None:
            out[spec.name] = WorkloadMeta(spec.name, spec.tee, policy=spec.policy)
        else:
            out[spec.name] = dataclasses.replace(
                meta, tee=spec.tee, policy=spec.policy if spec.policy is not None else meta.policy
            )
    return out


class _Counted(list[KeptEvidence]):
    """The kept items, calling `progress(done, total)` as the re-appraisal moves from one to the next."""

    def __init__(self, items: list[KeptEvidence], progress: Progress) -> None:
        super().__init__(items)
        self._progress = progress

    def __iter__(self) -> Iterator[KeptEvidence]:
        total = len(self)
        for done, item in enumerate(super().__iter__()):
            if done:
                self._progress(done, total)
            yield item
        self._progress(total, total)


class _Reporting:
    """A `KeptEvidenceReader` whose items report progress."""

    def __init__(self, inner: KeptEvidenceReader, progress: Progress) -> None:
        self._inner = inner
        self._progress = progress

    def recent(self, limit: int) -> list[KeptEvidence]:
        return _Counted(self._inner.recent(limit), self._progress)


def plan_impact(
    service: VerifierService,
    db: Database,
    plan: Plan,
    manifests: Sequence[Manifest],
    *,
    now: dt.datetime,
    limit: int = DEFAULT_LIMIT,
    progress: Progress | None = None,
) -> list[ImpactRow]:
    """Re-appraise the newest `limit` kept items of `db` under today's values and workloads and under `plan`
    applied (nothing recorded, signed or consumed). RequestError IMPACT_LIMIT_INVALID outside 1..MAX_LIMIT; an item
    that cannot be re-appraised is a row with status "error" (never raised)."""
    if not 0 < limit <= MAX_LIMIT:
        raise RequestError("IMPACT_LIMIT_INVALID", f"the impact limit is 1..{MAX_LIMIT} kept items")
    active = SqlReferenceValueStore(db).list(at=now)
    names = {m.workload.name for m in manifests if m.workload is not None}
    catalog = SqlWorkloads(db).metadata({r.label for r in active} | names)
    kept: KeptEvidenceReader = SqlKeptEvidence(db)
    if progress is not None:
        kept = _Reporting(kept, progress)
    return impact(
        service,
        kept,
        candidate_set(plan, active, now),
        at=now,
        limit=limit,
        current=active,
        catalog=candidate_catalog(manifests, catalog),
        current_catalog=dict(catalog),
    )


def impact_json(rows: Sequence[ImpactRow]) -> dict[str, Any]:
    """The object `refs plan --impact --json` prints under "impact"."""
    return {
        "reappraised": len(rows),
        "changed": sum(1 for r in rows if r.changed),
        "workloads": [w.to_json() for w in impact_by_workload(rows)],
        "rows": [r.to_json() for r in rows],
    }
