"""The port of `verifier workloads` (`WorkloadsAdmin`): the workload catalog on the database (`--db`, with the
local `--policy-file` for the policy names it checks) or on a server (`--server`: verifier.v1.Workloads, the
server's own policies). Both return the stores' records, so the handlers print the same output either way."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import grpc

from ..auth import current_actor
from ..bootstrap import build_policies
from ..clock import SystemClock
from ..errors import RequestError
from ..reference_values.model import ReferenceValue
from ..settings import Settings
from ..storage.engine import Database
from ..storage.workload_records import StoredVersion, WorkloadRecord
from ..storage.workloads import SqlWorkloads
from ..transport.grpc import convert
from ..transport.grpc.refs_convert import versions_from, workload_record_from
from ..v1 import verifier_pb2 as pb
from ..v1 import workloads_pb2 as wl_pb
from ..v1 import workloads_pb2_grpc as wl_grpc
from ..workloads.manifest_model import ManifestEntry
from .admin_port import open_port
from .common import UsageError
from .remote import RemoteClock, call

Added = tuple[WorkloadRecord, list[StoredVersion], list[ReferenceValue]]


class WorkloadsAdmin(Protocol):
    """The workload catalog, wherever it is. Every method raises the store's or the server's `VerifierError`
    (WORKLOAD_NOT_FOUND, WORKLOAD_EXISTS, POLICY_UNKNOWN, ...; remotely also ADMIN_* and UNAVAILABLE)."""

    @property
    def now(self) -> dt.datetime:
        """The instant states are shown at."""
        ...

    def create(self, name: str, tee: str, policy: str | None) -> WorkloadRecord: ...

    def records(self, *, review_only: bool) -> list[WorkloadRecord]: ...

    def show(self, name: str) -> tuple[WorkloadRecord, list[StoredVersion]]: ...

    def add_version(self, name: str, version: str, entries: list[ManifestEntry]) -> Added:
        """(the workload, its version `version`, the rows added)."""
        ...

    def set_policy(self, name: str, policy: str | None, version: str | None) -> WorkloadRecord: ...

    def revoke(self, name: str, reason: str) -> WorkloadRecord: ...

    def revoke_version(self, name: str, version: str, reason: str) -> WorkloadRecord: ...

    def confirm(self, name: str) -> tuple[str | None, WorkloadRecord]:
        """(why it was marked for review, the workload confirmed)."""
        ...


class DatabaseWorkloads:
    """`WorkloadsAdmin` on `db`, acting as `cli:<os user>`; policy names are checked against `settings`."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db, self._settings = db, settings
        self._workloads = SqlWorkloads(db)
        self._now = SystemClock().now()

    @property
    def now(self) -> dt.datetime:
        return self._now

    def _check_policy(self, name: str | None) -> None:
        """RequestError POLICY_UNKNOWN unless `name` is a policy this verifier knows (as `policy show` resolves it)."""
        if name is not None and build_policies(self._settings, self._db).lookup(name) is None:
            raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {name!r} (`verifier policy list`)")

    def create(self, name: str, tee: str, policy: str | None) -> WorkloadRecord:
        self._check_policy(policy)
        self._workloads.create(name, tee, now=self._now, actor=current_actor(), policy=policy)
        return self._workloads.record(name)

    def records(self, *, review_only: bool) -> list[WorkloadRecord]:
        return self._workloads.records(review_only=review_only)

    def show(self, name: str) -> tuple[WorkloadRecord, list[StoredVersion]]:
        return self._workloads.record(name), self._workloads.versions(name)

    def add_version(self, name: str, version: str, entries: list[ManifestEntry]) -> Added:
        _, added = self._workloads.add_values(name, entries, now=self._now, actor=current_actor(), new_version=True)
        versions = [v for v in self._workloads.versions(name) if v.version == version]
        return self._workloads.record(name), versions, added

    def set_policy(self, name: str, policy: str | None, version: str | None) -> WorkloadRecord:
        self._check_policy(policy)
        if version is not None:
            self._workloads.set_version_policy(name, version, policy, now=self._now, actor=current_actor())
        else:
            self._workloads.set_policy(name, policy, now=self._now, actor=current_actor())
        return self._workloads.record(name)

    def revoke(self, name: str, reason: str) -> WorkloadRecord:
        self._workloads.revoke(name, reason, now=self._now, actor=current_actor())
        return self._workloads.record(name)

    def revoke_version(self, name: str, version: str, reason: str) -> WorkloadRecord:
        self._workloads.revoke_version(name, version, reason, now=self._now, actor=current_actor())
        return self._workloads.record(name)

    def confirm(self, name: str) -> tuple[str | None, WorkloadRecord]:
        before = self._workloads.record(name)
        self._workloads.confirm_review(name, now=self._now, actor=current_actor())
        return before.review_reason, self._workloads.record(name)


class RemoteWorkloads:
    """`WorkloadsAdmin` over `channel` (verifier.v1.Workloads)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = wl_grpc.WorkloadsStub(channel)  # type: ignore[no-untyped-call]
        self._clock = RemoteClock()

    @property
    def now(self) -> dt.datetime:
        return self._clock.now()

    def _record(self, workload: pb.Workload) -> WorkloadRecord:
        record = workload_record_from(workload)
        self._clock.saw(record.created_at, record.meta.revoked_at)
        return record

    def create(self, name: str, tee: str, policy: str | None) -> WorkloadRecord:
        request = pb.CreateWorkloadRequest(name=name, tee=tee, policy=policy or "")
        return self._record(call(self._stub.Create, request))

    def records(self, *, review_only: bool) -> list[WorkloadRecord]:
        response = call(self._stub.List, pb.ListWorkloadsRequest(review_only=review_only))
        return [workload_record_from(w) for w in response.workloads]

    def show(self, name: str) -> tuple[WorkloadRecord, list[StoredVersion]]:
        workload = call(self._stub.Get, pb.GetWorkloadRequest(name=name))
        return workload_record_from(workload), versions_from(workload)

    def add_version(self, name: str, version: str, entries: list[ManifestEntry]) -> Added:
        """The rows added are the version's live ones: a version that had live rows is refused
        (WORKLOAD_VERSION_EXISTS)."""
        first = entries[0]
        request = pb.AddWorkloadVersionRequest(
            name=name, version=version, values=[pb.WorkloadValue(kind=e.kind, value=e.value.hex()) for e in entries]
        )
        if first.valid_from is not None:
            request.valid_from.CopyFrom(convert.timestamp(first.valid_from))
        if first.expires_at is not None:
            request.expires_at.CopyFrom(convert.timestamp(first.expires_at))
        workload = call(self._stub.AddVersion, request)
        versions = versions_from(workload)
        self._clock.saw(*(r.created_at for v in versions for r in v.values))
        now = self._clock.now()
        added = [r for v in versions for r in v.values if r.state(now) in ("active", "pending")]
        return self._record(workload), versions, added

    def set_policy(self, name: str, policy: str | None, version: str | None) -> WorkloadRecord:
        request = wl_pb.WorkloadsSetPolicyRequest(name=name, policy=policy or "")
        if version is not None:
            request.version = version
        return workload_record_from(call(self._stub.SetPolicy, request).workload)

    def revoke(self, name: str, reason: str) -> WorkloadRecord:
        return self._record(call(self._stub.Revoke, pb.RevokeWorkloadRequest(name=name, reason=reason)))

    def revoke_version(self, name: str, version: str, reason: str) -> WorkloadRecord:
        request = pb.RevokeWorkloadVersionRequest(name=name, version=version, reason=reason)
        workload = call(self._stub.RevokeVersion, request)
        self._clock.saw(*(v.revocation.revoked_at for v in versions_from(workload) if v.revocation is not None))
        return self._record(workload)

    def confirm(self, name: str) -> tuple[str | None, WorkloadRecord]:
        response = call(self._stub.Confirm, wl_pb.WorkloadsConfirmRequest(name=name))
        return response.review_reason or None, workload_record_from(response.workload)


@contextmanager
def workloads_port(args: argparse.Namespace, base: Settings) -> Iterator[WorkloadsAdmin]:
    """The `WorkloadsAdmin` the flags name. Raises UsageError for `--policy-file` with `--server` (the server's own
    policies apply there), and what `open_port` raises."""
    policy_file = getattr(args, "policy_file", None)
    if getattr(args, "server", None) is not None and policy_file is not None:
        raise UsageError("--policy-file is local: with --server the server's own policies apply")

    def local(db: Database, settings: Settings) -> WorkloadsAdmin:
        return DatabaseWorkloads(db, settings.with_overrides(policy_file=policy_file))

    with open_port(args, base, local=local, remote=RemoteWorkloads) as port:
        yield port
