"""`RefsAdmin` over the admin API of `--server`: the ReferenceValues service (and Workloads.ImportVersion), with
the records turned back into the ones the database path returns (verifier.transport.grpc.refs_convert), so the
handlers print the same thing. Plan and impact run on the server, where the data is; manifests travel as the files'
names and bytes and are parsed there by the same loader."""

from __future__ import annotations

import builtins
import datetime as dt
import json
from typing import Any

import grpc

from ..reference_values.model import Reapproval, ReferenceValue, State
from ..storage.audit import AuditEntry
from ..transport.grpc import convert
from ..transport.grpc.refs_convert import (
    entry_message,
    history_from,
    reference_value_from,
    revocation_from,
)
from ..v1 import reference_values_pb2 as rv_pb
from ..v1 import reference_values_pb2_grpc as rv_grpc
from ..v1 import verifier_pb2 as pb
from ..v1 import workloads_pb2 as wl_pb
from ..v1 import workloads_pb2_grpc as wl_grpc
from ..workloads.manifest_model import ManifestEntry
from .common import UsageError
from .refs_db import also_revoked
from .refs_port import ImpactView, ManifestFiles, PlanView
from .remote import CALL_TIMEOUT_SECONDS, LONG_CALL_TIMEOUT_SECONDS, RemoteClock, call


def _times(msg: Any, entry: ManifestEntry) -> Any:
    if entry.valid_from is not None:
        msg.valid_from.CopyFrom(convert.timestamp(entry.valid_from))
    if entry.expires_at is not None:
        msg.expires_at.CopyFrom(convert.timestamp(entry.expires_at))
    return msg


def _files(files: ManifestFiles) -> builtins.list[rv_pb.ManifestFile]:
    """UsageError when a file (parsed here a moment ago) cannot be read again."""
    out = []
    for path in files.paths:
        try:
            out.append(rv_pb.ManifestFile(name=str(path), content=path.read_bytes()))
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return out


def _view(response: Any) -> PlanView:
    impact = None
    if isinstance(response, rv_pb.ReferenceValuesPlanResponse) and response.HasField("impact"):
        impact = ImpactView(json.loads(response.impact.impact_json), response.impact.report)
    return PlanView(
        json.loads(response.plan_json), tuple(response.lines), response.plan_sha256, response.changes, impact
    )


class RemoteRefs:
    """`RefsAdmin` over `channel` (a TLS admin channel, verifier.cli.remote.admin_channel)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._refs = rv_grpc.ReferenceValuesStub(channel)  # type: ignore[no-untyped-call]
        self._workloads = wl_grpc.WorkloadsStub(channel)  # type: ignore[no-untyped-call]
        self._clock = RemoteClock()

    @property
    def now(self) -> dt.datetime:
        return self._clock.now()

    def add(self, entry: ManifestEntry) -> ReferenceValue:
        request = pb.AddReferenceValueRequest(
            kind=entry.kind, value=entry.value.hex(), label=entry.label, version=entry.version or ""
        )
        ref = reference_value_from(call(self._refs.Add, _times(request, entry)))
        self._clock.saw(ref.created_at)
        return ref

    def list(
        self, *, kind: str | None, label: str | None, state: State | None, include_inactive: bool
    ) -> builtins.list[ReferenceValue]:
        request = pb.ListReferenceValuesRequest(
            kind=kind or "", label=label or "", state=state or "", include_inactive=include_inactive
        )
        return [reference_value_from(r) for r in call(self._refs.List, request).reference_values]

    def revoke(self, ref_id: str, reason: str) -> tuple[ReferenceValue, builtins.list[ReferenceValue]]:
        ref = reference_value_from(call(self._refs.Revoke, pb.RevokeReferenceValueRequest(id=ref_id, reason=reason)))
        self._clock.saw(ref.revoked_at)
        return ref, also_revoked(ref, self.list(kind=ref.kind, label=None, state="revoked", include_inactive=False))

    def reapprove(self, kind: str, value: bytes, reason: str, entry: ManifestEntry | None) -> Reapproval:
        request = rv_pb.ReferenceValuesReapproveRequest(kind=kind, value=value.hex(), reason=reason)
        if entry is not None:
            request.label, request.version = entry.label, entry.version or ""
            _times(request, entry)
        response = call(self._refs.Reapprove, request)
        value = bytes.fromhex(response.value)
        result = Reapproval(
            response.kind,
            value,
            tuple(revocation_from(r, response.kind, value) for r in response.revocations),
            reference_value_from(response.added) if response.HasField("added") else None,
        )
        self._clock.saw(*(r.reapproved_at for r in result.revocations))
        self._clock.saw(result.added.created_at if result.added is not None else None)
        return result

    def history(self, ref_id: str | None, *, kind: str | None, label: str | None) -> builtins.list[AuditEntry]:
        request = rv_pb.ReferenceValuesHistoryRequest(id=ref_id or "", kind=kind or "", label=label or "")
        return [history_from(e) for e in call(self._refs.History, request).entries]

    def import_entries(self, entries: builtins.list[ManifestEntry]) -> tuple[int, int]:
        request = rv_pb.ReferenceValuesImportRequest(entries=[entry_message(e) for e in entries])
        response = call(self._refs.Import, request)
        return len(response.added), response.skipped

    def plan(self, files: ManifestFiles, *, values: bool, impact_limit: int | None) -> PlanView:
        request = rv_pb.ReferenceValuesPlanRequest(
            manifests=_files(files),
            default_label=files.label or "",
            values=values,
            impact=impact_limit is not None,
            impact_limit=impact_limit or 0,
        )
        timeout = LONG_CALL_TIMEOUT_SECONDS if impact_limit is not None else CALL_TIMEOUT_SECONDS
        return _view(call(self._refs.Plan, request, timeout=timeout))

    def apply(self, files: ManifestFiles, *, values: bool, expect: str | None) -> PlanView:
        """Without `expect`, the plan of this moment (Plan first, then Apply with its SHA-256)."""
        if expect is None:
            expect = self.plan(files, values=False, impact_limit=None).sha256
        request = rv_pb.ReferenceValuesApplyRequest(
            manifests=_files(files), default_label=files.label or "", values=values, plan_sha256=expect
        )
        return _view(call(self._refs.Apply, request))

    def import_version(
        self, name: str, tee: str, entries: builtins.list[ManifestEntry], *, alternative: bool
    ) -> tuple[int, int]:
        first = entries[0]
        request = wl_pb.WorkloadsImportVersionRequest(
            name=name,
            tee=tee,
            version=first.version or "",
            values=[pb.WorkloadValue(kind=e.kind, value=e.value.hex()) for e in entries],
            alternative=alternative,
        )
        response = call(self._workloads.ImportVersion, _times(request, first))
        return len(response.added), response.already_present
