"""`RefsAdmin` on the database of `--db`: the stores, and the plan operations the admin RPCs use too
(verifier.transport.grpc.refs_admin_ops), acting as `cli:<os user>`. `plan --impact` builds the verifier here
(trust anchors, policies and collateral of these settings) and shows its progress on stderr."""

from __future__ import annotations

import builtins
import datetime as dt

from ..auth import current_actor
from ..bootstrap import build_app, build_policies
from ..clock import SystemClock
from ..impact import workload_report
from ..reference_values.model import Reapproval, ReferenceValue, State
from ..results.keys import ephemeral_key
from ..results.signer import ResultSigner
from ..settings import Settings
from ..storage.audit import AuditEntry
from ..storage.engine import Database
from ..storage.reference_values import SqlReferenceValueStore
from ..storage.workloads import SqlWorkloads
from ..transport.grpc.refs_admin_ops import Planned, WorkloadPlanner, import_version
from ..transport.grpc.refs_impact_ops import impact_json, plan_impact
from ..workloads.manifest_model import ManifestEntry
from .output import progress
from .refs_port import ImpactView, ManifestFiles, PlanView


def _view(planned: Planned, values: bool, impact: ImpactView | None = None) -> PlanView:
    plan = planned.plan
    return PlanView(plan.to_json(), tuple(plan.lines(values=values)), planned.sha256, not plan.metadata_empty, impact)


class DatabaseRefs:
    """`RefsAdmin` on `db`; `settings` for the policies a manifest may name and for `plan --impact`."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._store = SqlReferenceValueStore(db)
        self._now = SystemClock().now()

    @property
    def now(self) -> dt.datetime:
        return self._now

    def add(self, entry: ManifestEntry) -> ReferenceValue:
        if entry.label:  # the value joins the workload named by the label, created if missing (one transaction)
            _, [ref] = SqlWorkloads(self._db).add_values(
                entry.label, [entry], now=self._now, actor=current_actor(), skip_present=False
            )
            return ref
        return self._store.add(
            entry.kind,
            entry.value,
            entry.label,
            now=self._now,
            expires_at=entry.expires_at,
            valid_from=entry.valid_from,
            version=entry.version,
            actor=current_actor(),
        )

    def list(
        self, *, kind: str | None, label: str | None, state: State | None, include_inactive: bool
    ) -> builtins.list[ReferenceValue]:
        return self._store.list(kind=kind, label=label, state=state, include_inactive=include_inactive, at=self._now)

    def revoke(self, ref_id: str, reason: str) -> tuple[ReferenceValue, builtins.list[ReferenceValue]]:
        ref = self._store.revoke(ref_id, reason, now=self._now, actor=current_actor())
        return ref, also_revoked(ref, self._store.list(kind=ref.kind, state="revoked", at=self._now))

    def reapprove(self, kind: str, value: bytes, reason: str, entry: ManifestEntry | None) -> Reapproval:
        return self._store.reapprove(
            kind,
            value,
            reason,
            now=self._now,
            actor=current_actor(),
            label=entry.label if entry is not None else None,
            expires_at=entry.expires_at if entry is not None else None,
            valid_from=entry.valid_from if entry is not None else None,
            version=entry.version if entry is not None else None,
        )

    def history(self, ref_id: str | None, *, kind: str | None, label: str | None) -> builtins.list[AuditEntry]:
        return self._store.history(ref_id, kind=kind, label=label)

    def import_entries(self, entries: builtins.list[ManifestEntry]) -> tuple[int, int]:
        added, skipped = self._store.add_missing(entries, now=self._now, actor=current_actor())
        return len(added), skipped

    def _planner(self) -> WorkloadPlanner:
        policies = build_policies(self._settings, self._db)
        return WorkloadPlanner(self._db, lambda name: policies.lookup(name) is not None)

    def plan(self, files: ManifestFiles, *, values: bool, impact_limit: int | None) -> PlanView:
        planned = self._planner().plan(files.manifests, now=self._now)
        if impact_limit is None:
            return _view(planned, values)
        # Re-appraisal signs nothing; an ephemeral key only satisfies the composition root.
        components = build_app(self._settings, signer=ResultSigner([ephemeral_key()], development=True))
        try:
            rows = plan_impact(
                components.service,
                components.database,
                planned.plan,
                files.manifests,
                now=self._now,
                limit=impact_limit,
                progress=lambda done, total: progress(done, total, "impact: kept appraisals re-appraised"),
            )
        finally:
            components.close()
        return _view(planned, values, ImpactView(impact_json(rows), workload_report(rows)))

    def apply(self, files: ManifestFiles, *, values: bool, expect: str | None) -> PlanView:
        applied = self._planner().apply(files.manifests, now=self._now, actor=current_actor(), expect=expect)
        return _view(applied, values)

    def import_version(
        self, name: str, tee: str, entries: builtins.list[ManifestEntry], *, alternative: bool
    ) -> tuple[int, int]:
        added, present = import_version(
            self._db, name, tee, entries, now=self._now, actor=current_actor(), alternative=alternative
        )
        return len(added), present


def also_revoked(ref: ReferenceValue, revoked: builtins.list[ReferenceValue]) -> builtins.list[ReferenceValue]:
    """The rows of `revoked` that the revocation of `ref` revoked with it (same value, same instant)."""
    return [r for r in revoked if r.value == ref.value and r.id != ref.id and r.revoked_at == ref.revoked_at]
