"""verifier.v1.Workloads: the workload admin API (thin: convert, call `SqlWorkloads` in a worker thread, convert).

Guarded by `interceptors.AdminAuthInterceptor` like ReferenceValues: auditors may List and Get, admins everything;
the principal's actor is recorded as created_by / revoked_by and in the audit log (the rows `verifier workloads`
writes on the database). Errors are `VerifierError`s mapped to gRPC status by `interceptors.ErrorInterceptor`."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import grpc

from ...appraisal.policy import PolicySet
from ...auth import current_actor
from ...bootstrap import Components
from ...errors import RequestError
from ...reference_values.kinds import normalize_value
from ...storage.workload_records import StoredVersion, WorkloadRecord, check_policy_name
from ...storage.workloads import SqlWorkloads
from ...v1 import verifier_pb2 as pb
from ...v1 import workloads_pb2 as wl_pb
from ...v1 import workloads_pb2_grpc as wl_grpc
from ...workloads.manifest_model import ManifestEntry
from . import convert, refs_convert
from .lanes import Runner
from .refs_admin_ops import import_version

Context = grpc.aio.ServicerContext[Any, Any]
MAX_VERSION_VALUES = 64  # values in one AddVersion (Nitro has 32 PCRs; TDX a dozen kinds, some with alternatives)
MAX_REASON = 500


def _version(version: StoredVersion, at: dt.datetime, workload_revoked: bool) -> pb.WorkloadVersion:
    msg = pb.WorkloadVersion(
        version=version.version,
        state=version.state(at, workload_revoked),
        reference_values=[convert.reference_value(r, at=at) for r in version.values],
    )
    if version.revocation is not None:
        msg.revoked_at.CopyFrom(convert.timestamp(version.revocation.revoked_at))
        msg.revoked_by, msg.revoke_reason = version.revocation.revoked_by, version.revocation.reason
    return msg


def workload_message(
    record: WorkloadRecord, at: dt.datetime, versions: list[StoredVersion] | None = None
) -> pb.Workload:
    meta = record.meta
    msg = pb.Workload(
        id=meta.id,
        name=meta.name,
        tee=meta.tee,
        policy=meta.policy or "",
        state="active" if meta.live_at(at) else "revoked",
        created_at=convert.timestamp(record.created_at),
        created_by=record.created_by,
        revoked_by=record.revoked_by or "",
        revoke_reason=record.revoke_reason or "",
        review=meta.review,
        review_reason=record.review_reason or "",
        revoked_versions=sorted(meta.revoked_versions),
        versions=[_version(v, at, not meta.live_at(at)) for v in versions or []],
    )
    if meta.revoked_at is not None:
        msg.revoked_at.CopyFrom(convert.timestamp(meta.revoked_at))
    refs_convert.set_version_policies(msg, meta)
    return msg


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise RequestError("REVOKE_REASON_REQUIRED", "a revocation needs a reason")
    if len(reason) > MAX_REASON:
        raise RequestError("REVOKE_REASON_TOO_LONG", f"the reason has more than {MAX_REASON} characters")
    return reason


class WorkloadsServicer(wl_grpc.WorkloadsServicer):
    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._run = run
        self._database = components.database
        self._workloads = SqlWorkloads(components.database)
        self._policies: PolicySet = components.service.policies
        self._clock = components.service.clock

    def _known_policy(self, name: str) -> str | None:
        """None for "" (the default); RequestError WORKLOAD_POLICY_INVALID / POLICY_UNKNOWN."""
        if not name:
            return None
        policy = check_policy_name(name)
        assert policy is not None
        if self._policies.lookup(policy) is None:
            raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {policy!r} (`verifier policy list`)")
        return policy

    def _view(self, name: str, at: dt.datetime, only: str | None = None, all_versions: bool = False) -> pb.Workload:
        record = self._workloads.record(name)
        versions = None
        if all_versions or only is not None:
            versions = [v for v in self._workloads.versions(name) if all_versions or v.version == only]
        return workload_message(record, at, versions)

    async def Create(self, request: pb.CreateWorkloadRequest, context: Context) -> pb.Workload:  # noqa: N802
        now = self._clock.now()

        def create() -> pb.Workload:
            policy = self._known_policy(request.policy)
            meta = self._workloads.create(request.name, request.tee, now=now, actor=current_actor(), policy=policy)
            return self._view(meta.name, now)

        return await self._run(create)

    async def AddVersion(self, request: pb.AddWorkloadVersionRequest, context: Context) -> pb.Workload:  # noqa: N802
        if not request.version:
            raise RequestError("WORKLOAD_VERSION_REQUIRED", "a workload version needs a version")
        if not request.values:
            raise RequestError("WORKLOAD_VERSION_EMPTY", "a workload version needs at least one value")
        if len(request.values) > MAX_VERSION_VALUES:
            raise RequestError("WORKLOAD_VERSION_TOO_LARGE", f"at most {MAX_VERSION_VALUES} values in one version")
        now = self._clock.now()
        expires_at = convert.from_timestamp(request.expires_at) if request.HasField("expires_at") else None
        valid_from = convert.from_timestamp(request.valid_from) if request.HasField("valid_from") else None
        if expires_at is not None and expires_at <= now:
            raise RequestError("REFERENCE_EXPIRES_IN_PAST", "expires_at must be in the future")
        if expires_at is not None and valid_from is not None and expires_at <= valid_from:
            raise RequestError("REFERENCE_WINDOW_EMPTY", "expires_at is not after valid_from")
        entries = [
            ManifestEntry(
                v.kind, normalize_value(v.kind, v.value), request.name, expires_at, request.version, valid_from
            )
            for v in request.values
        ]

        def add() -> pb.Workload:
            meta, _ = self._workloads.add_values(
                request.name, entries, now=now, actor=current_actor(), tee=request.tee or None, new_version=True
            )
            return self._view(meta.name, now, only=request.version)

        return await self._run(add)

    async def List(self, request: pb.ListWorkloadsRequest, context: Context) -> pb.ListWorkloadsResponse:  # noqa: N802
        now = self._clock.now()
        records = await self._run(self._workloads.records, review_only=request.review_only)
        return pb.ListWorkloadsResponse(workloads=[workload_message(r, now) for r in records])

    async def Get(self, request: pb.GetWorkloadRequest, context: Context) -> pb.Workload:  # noqa: N802
        now = self._clock.now()
        return await self._run(self._view, request.name, now, None, True)

    async def RevokeVersion(self, request: pb.RevokeWorkloadVersionRequest, context: Context) -> pb.Workload:  # noqa: N802
        reason, now = _reason(request.reason), self._clock.now()

        def revoke() -> pb.Workload:
            meta = self._workloads.revoke_version(request.name, request.version, reason, now=now, actor=current_actor())
            return self._view(meta.name, now, only=request.version)

        return await self._run(revoke)

    async def Revoke(self, request: pb.RevokeWorkloadRequest, context: Context) -> pb.Workload:  # noqa: N802
        reason, now = _reason(request.reason), self._clock.now()

        def revoke() -> pb.Workload:
            meta = self._workloads.revoke(request.name, reason, now=now, actor=current_actor())
            return self._view(meta.name, now)

        return await self._run(revoke)

    async def SetPolicy(  # noqa: N802
        self, request: wl_pb.WorkloadsSetPolicyRequest, context: Context
    ) -> wl_pb.WorkloadsSetPolicyResponse:
        now = self._clock.now()
        version = request.version if request.HasField("version") else None

        def set_policy() -> wl_pb.WorkloadsSetPolicyResponse:
            policy, actor = self._known_policy(request.policy), current_actor()
            if version is not None:
                self._workloads.set_version_policy(request.name, version, policy, now=now, actor=actor)
            else:
                self._workloads.set_policy(request.name, policy, now=now, actor=actor)
            return wl_pb.WorkloadsSetPolicyResponse(workload=self._view(request.name, now))

        return await self._run(set_policy)

    async def Confirm(self, request: wl_pb.WorkloadsConfirmRequest, context: Context) -> wl_pb.WorkloadsConfirmResponse:  # noqa: N802
        now = self._clock.now()

        def confirm() -> wl_pb.WorkloadsConfirmResponse:
            before = self._workloads.record(request.name)
            self._workloads.confirm_review(request.name, now=now, actor=current_actor())
            return wl_pb.WorkloadsConfirmResponse(
                workload=self._view(request.name, now), review_reason=before.review_reason or ""
            )

        return await self._run(confirm)

    async def ImportVersion(  # noqa: N802
        self, request: wl_pb.WorkloadsImportVersionRequest, context: Context
    ) -> wl_pb.WorkloadsImportVersionResponse:
        if not request.values:
            raise RequestError("WORKLOAD_VERSION_EMPTY", "a workload version needs at least one value")
        if len(request.values) > MAX_VERSION_VALUES:
            raise RequestError("WORKLOAD_VERSION_TOO_LARGE", f"at most {MAX_VERSION_VALUES} values in one version")
        now = self._clock.now()
        expires_at = convert.from_timestamp(request.expires_at) if request.HasField("expires_at") else None
        valid_from = convert.from_timestamp(request.valid_from) if request.HasField("valid_from") else None
        if expires_at is not None and valid_from is not None and expires_at <= valid_from:
            raise RequestError("REFERENCE_WINDOW_EMPTY", "expires_at is not after valid_from")
        version = request.version or None
        entries = [
            ManifestEntry(v.kind, normalize_value(v.kind, v.value), request.name, expires_at, version, valid_from)
            for v in request.values
        ]
        db = self._database
        added, present = await self._run(
            import_version,
            db,
            request.name,
            request.tee,
            entries,
            now=now,
            actor=current_actor(),
            alternative=request.alternative,
        )
        return wl_pb.WorkloadsImportVersionResponse(
            added=[convert.reference_value(r, at=now) for r in added], already_present=present
        )
