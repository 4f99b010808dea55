"""verifier.v1.ReferenceValues: the reference-value admin API (thin: convert, call the stores or the shared plan
operations of `refs_admin_ops` in a worker thread of the admin lane, convert back).

Guarded by `interceptors.AdminAuthInterceptor` (auditors may List, History and Plan; admins everything); the
principal's actor (`current_actor()`) is recorded as created_by / revoked_by and in the audit log, the same rows the
CLI writes on the database. Errors are `VerifierError`s mapped to gRPC status by `interceptors.ErrorInterceptor`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import grpc

from ...auth import current_actor
from ...bootstrap import Components
from ...errors import RequestError
from ...impact import workload_report
from ...reference_values.kinds import normalize_value
from ...reference_values.model import STATES, State
from ...storage.workloads import SqlWorkloads
from ...v1 import reference_values_pb2 as rv_pb
from ...v1 import reference_values_pb2_grpc as rv_grpc
from ...v1 import verifier_pb2 as pb
from ...workloads.manifest_model import Manifest, ManifestEntry
from ...workloads.plan import Plan
from . import convert, refs_convert
from .lanes import Runner
from .refs_admin_ops import MAX_MANIFESTS, WorkloadPlanner, received_manifest
from .refs_impact_ops import DEFAULT_LIMIT, impact_json, plan_impact

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
MAX_REASON = 500
MAX_IMPORT = 10_000


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise RequestError("REVOKE_REASON_REQUIRED", "a revocation needs a reason")
    if len(reason) > MAX_REASON:
        raise RequestError("REVOKE_REASON_TOO_LONG", f"the reason has more than {MAX_REASON} characters")
    return reason


def _manifests(files: Sequence[rv_pb.ManifestFile], default_label: str) -> list[Manifest]:
    """RequestError MANIFESTS_REQUIRED / MANIFESTS_TOO_MANY, and those of `received_manifest`."""
    if not files:
        raise RequestError("MANIFESTS_REQUIRED", "a plan needs at least one manifest")
    if len(files) > MAX_MANIFESTS:
        raise RequestError("MANIFESTS_TOO_MANY", f"at most {MAX_MANIFESTS} manifests in one plan")
    return [received_manifest(f.name, f.content, default_label or None) for f in files]


def _plan_fields(plan: Plan, sha256: str, values: bool) -> dict[str, Any]:
    return {
        "plan_json": json.dumps(plan.to_json(), sort_keys=False),
        "lines": plan.lines(values=values),
        "plan_sha256": sha256,
        "changes": not plan.metadata_empty,
    }


class ReferenceValuesServicer(rv_grpc.ReferenceValuesServicer):
    """verifier.v1.ReferenceValues (admin)."""

    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._components = components
        self._store = components.references
        self._workloads = SqlWorkloads(components.database)
        self._clock = components.service.clock
        self._run = run

    async def Add(self, request: pb.AddReferenceValueRequest, context: Context) -> pb.ReferenceValue:  # noqa: N802
        """A labelled value joins the workload of its label (created when missing), as `verifier refs add --label`
        does; a revoked value (kind and value, any label) is refused with REFERENCE_VALUE_REVOKED by the store."""
        value = normalize_value(request.kind, request.value)
        now = self._clock.now()
        expires_at = convert.from_timestamp(request.expires_at) if request.HasField("expires_at") else None
        valid_from = convert.from_timestamp(request.valid_from) if request.HasField("valid_from") else None
        if expires_at is not None and expires_at <= now:
            raise RequestError("REFERENCE_EXPIRES_IN_PAST", "expires_at must be in the future")
        entry = ManifestEntry(request.kind, value, request.label, expires_at, request.version or None, valid_from)

        def add() -> pb.ReferenceValue:
            actor = current_actor()
            if entry.label:
                _, [ref] = self._workloads.add_values(entry.label, [entry], now=now, actor=actor, skip_present=False)
            else:
                ref = self._store.add(
                    entry.kind,
                    entry.value,
                    "",
                    now=now,
                    expires_at=expires_at,
                    valid_from=valid_from,
                    version=entry.version,
                    actor=actor,
                )
            return convert.reference_value(ref, at=now)

        return await self._run(add)

    async def List(  # noqa: N802
        self, request: pb.ListReferenceValuesRequest, context: Context
    ) -> pb.ListReferenceValuesResponse:
        state: State | None = None
        if request.state:
            if request.state not in STATES:
                raise RequestError("REFERENCE_STATE_UNKNOWN", f"state must be one of {', '.join(STATES)}")
            state = request.state
        now = self._clock.now()
        refs = await self._run(
            self._store.list,
            kind=request.kind or None,
            label=request.label or None,
            state=state,
            include_inactive=request.include_inactive,
            at=now,
        )
        return pb.ListReferenceValuesResponse(reference_values=[convert.reference_value(r, at=now) for r in refs])

    async def Revoke(self, request: pb.RevokeReferenceValueRequest, context: Context) -> pb.ReferenceValue:  # noqa: N802
        """Revokes the row and with it its value: every live row with the same kind and value is revoked too (each
        audited); the response is the row named by `id`."""
        if not request.id:
            raise RequestError("REFERENCE_ID_REQUIRED", "the id of the reference value is required")
        reason, now = _reason(request.reason), self._clock.now()
        ref = await self._run(self._store.revoke, request.id, reason, now=now, actor=current_actor())
        return convert.reference_value(ref, at=now)

    async def Reapprove(  # noqa: N802
        self, request: rv_pb.ReferenceValuesReapproveRequest, context: Context
    ) -> rv_pb.ReferenceValuesReapproveResponse:
        value = normalize_value(request.kind, request.value)
        now = self._clock.now()
        expires_at = convert.from_timestamp(request.expires_at) if request.HasField("expires_at") else None
        valid_from = convert.from_timestamp(request.valid_from) if request.HasField("valid_from") else None
        result = await self._run(
            self._store.reapprove,
            request.kind,
            value,
            request.reason,
            now=now,
            actor=current_actor(),
            label=request.label if request.HasField("label") else None,
            expires_at=expires_at,
            valid_from=valid_from,
            version=request.version or None,
        )
        response = rv_pb.ReferenceValuesReapproveResponse(
            kind=result.kind,
            value=result.value.hex(),
            revocations=[refs_convert.revocation_message(r) for r in result.revocations],
        )
        if result.added is not None:
            response.added.CopyFrom(convert.reference_value(result.added, at=now))
        return response

    async def History(  # noqa: N802
        self, request: rv_pb.ReferenceValuesHistoryRequest, context: Context
    ) -> rv_pb.ReferenceValuesHistoryResponse:
        if not (request.id or request.kind or request.label):
            raise RequestError("REFERENCE_HISTORY_UNFILTERED", "history needs an id, a kind or a label")
        rows = await self._run(
            self._store.history, request.id or None, kind=request.kind or None, label=request.label or None
        )
        return rv_pb.ReferenceValuesHistoryResponse(entries=[refs_convert.history_message(e) for e in rows])

    async def Import(  # noqa: N802
        self, request: rv_pb.ReferenceValuesImportRequest, context: Context
    ) -> rv_pb.ReferenceValuesImportResponse:
        """All or nothing: a revoked value among the entries (REFERENCE_VALUE_REVOKED) adds none of them."""
        if len(request.entries) > MAX_IMPORT:
            raise RequestError("REFERENCE_IMPORT_TOO_LARGE", f"at most {MAX_IMPORT} values in one import")
        entries = [refs_convert.entry_from(e) for e in request.entries]
        now = self._clock.now()
        added, skipped = await self._run(self._store.add_missing, entries, now=now, actor=current_actor())
        return rv_pb.ReferenceValuesImportResponse(
            added=[convert.reference_value(r, at=now) for r in added], skipped=skipped
        )

    def _planner(self) -> WorkloadPlanner:
        policies = self._components.service.policies
        return WorkloadPlanner(self._components.database, lambda name: policies.lookup(name) is not None)

    async def Plan(  # noqa: N802
        self, request: rv_pb.ReferenceValuesPlanRequest, context: Context
    ) -> rv_pb.ReferenceValuesPlanResponse:
        manifests = _manifests(request.manifests, request.default_label)
        limit = request.impact_limit or DEFAULT_LIMIT
        now = self._clock.now()

        def plan() -> rv_pb.ReferenceValuesPlanResponse:
            planned = self._planner().plan(manifests, now=now)
            response = rv_pb.ReferenceValuesPlanResponse(**_plan_fields(planned.plan, planned.sha256, request.values))
            if request.impact:
                log.info("impact analysis over up to %d kept items for %s", limit, current_actor())
                service, db = self._components.service, self._components.database
                rows = plan_impact(service, db, planned.plan, manifests, now=now, limit=limit)
                report = impact_json(rows)
                response.impact.CopyFrom(
                    rv_pb.PlanImpact(
                        impact_json=json.dumps(report),
                        report=workload_report(rows),
                        reappraised=report["reappraised"],
                        changed=report["changed"],
                    )
                )
            return response

        return await self._run(plan)

    async def Apply(  # noqa: N802
        self, request: rv_pb.ReferenceValuesApplyRequest, context: Context
    ) -> rv_pb.ReferenceValuesApplyResponse:
        if not request.plan_sha256:
            raise RequestError("PLAN_SHA256_REQUIRED", "apply needs the SHA-256 of the reviewed plan (from Plan)")
        manifests = _manifests(request.manifests, request.default_label)
        now = self._clock.now()

        def apply() -> rv_pb.ReferenceValuesApplyResponse:
            applied = self._planner().apply(manifests, now=now, actor=current_actor(), expect=request.plan_sha256)
            return rv_pb.ReferenceValuesApplyResponse(**_plan_fields(applied.plan, applied.sha256, request.values))

        return await self._run(apply)
