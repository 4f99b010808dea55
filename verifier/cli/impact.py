"""`verifier refs plan --impact`: re-appraise the kept evidence under the candidate reference values of a plan."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from ..bootstrap import build
from ..reference_values.impact import ImpactRow, impact, impact_report
from ..reference_values.model import ReferenceValue
from ..reference_values.plan import Plan
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..settings import Settings
from ..storage.kept_evidence import SqlKeptEvidence


def candidate_set(plan: Plan, active: Sequence[ReferenceValue], now: dt.datetime) -> list[ReferenceValue]:
    """The values that would be active once `plan` is applied: today's minus expired and revoked, plus added."""
    gone = {r.id for r in plan.expire} | {r.ref.id for r in plan.revoke}
    kept = [r for r in active if r.id not in gone]
    added = [ReferenceValue(id=f"planned-{i}", kind=e.kind, value=e.value, label=e.label, created_at=now,
                            expires_at=e.expires_at, version=e.version, valid_from=e.valid_from)
             for i, e in enumerate(plan.add)]
    return kept + added


def run_impact(settings: Settings, plan: Plan, active: Sequence[ReferenceValue], now: dt.datetime, *,
               limit: int, as_json: bool) -> list[ImpactRow]:
    # Re-appraisal signs nothing; an ephemeral key only satisfies the composition root.
    components = build(settings, signer=ResultSigner([ephemeral_key()], development=True))
    try:
        kept = SqlKeptEvidence(components.database)
        rows = impact(components.service, kept, candidate_set(plan, active, now), at=now, limit=limit)
    finally:
        components.close()
    if as_json:
        print(json.dumps([{"evidence_id": r.evidence_id, "received_at": r.received_at.isoformat(), "tee": r.tee,
                           "workload": r.workload, "status_before": r.status_before, "status_after": r.status_after,
                           "changed": r.changed, "codes_after": list(r.codes_after)} for r in rows], indent=2))
    else:
        print(impact_report(rows))
    return rows
