"""`verifier refs plan --impact`: re-appraise the kept evidence under today's workloads and under the candidate
ones (the plan's values, the manifests' TEE and policy), and report per workload which evidence starts or stops
matching (verifier.impact)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..bootstrap import build_app
from ..impact import ImpactRow, impact, impact_by_workload, workload_report
from ..reference_values.model import ReferenceValue
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..settings import Settings
from ..storage.kept_evidence import SqlKeptEvidence
from ..workloads.manifest_model import Manifest
from ..workloads.model import WorkloadMeta
from ..workloads.plan import Plan
from .common import print_json
from .impact import candidate_set


@dataclass(frozen=True)
class ImpactReport:
    rows: tuple[ImpactRow, ...]

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.rows)


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


def run_workload_impact(
    settings: Settings,
    plan: Plan,
    manifests: Sequence[Manifest],
    active: Sequence[ReferenceValue],
    catalog: Mapping[str, WorkloadMeta],
    now: dt.datetime,
    *,
    limit: int,
    as_json: bool,
    plan_json: dict[str, Any],
) -> ImpactReport:
    """Print the report (text, or one JSON object {"plan", "impact": {"reappraised", "changed", "workloads",
    "rows"}}) and return it."""
    # Re-appraisal signs nothing; an ephemeral key only satisfies the composition root.
    components = build_app(settings, signer=ResultSigner([ephemeral_key()], development=True))
    try:
        kept = SqlKeptEvidence(components.database)
        rows = impact(
            components.service,
            kept,
            candidate_set(plan, active, now),
            at=now,
            limit=limit,
            current=active,
            catalog=candidate_catalog(manifests, catalog),
            current_catalog=dict(catalog),
        )
    finally:
        components.close()
    if as_json:
        print_json(
            {
                "plan": plan_json,
                "impact": {
                    "reappraised": len(rows),
                    "changed": sum(1 for r in rows if r.changed),
                    "workloads": [w.to_json() for w in impact_by_workload(rows)],
                    "rows": [r.to_json() for r in rows],
                },
            }
        )
    else:
        print(workload_report(rows))
    return ImpactReport(tuple(rows))
