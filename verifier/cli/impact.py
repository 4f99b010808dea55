"""The candidate reference values of a plan, for `verifier refs plan --impact` (`workload_impact.py`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..reference_values.model import ReferenceValue
from ..workloads.plan import Plan


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
