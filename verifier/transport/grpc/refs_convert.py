"""proto <-> domain for the reference-value and workload admin messages, both ways: the servicers build messages
from the stores' records, the CLI's gRPC ports (verifier.cli.refs_grpc, workloads_grpc) turn them back into the
same records, so that a command prints the same thing whether it read the database or a server.

`Workload.version_policies` is read and written only when the generated `Workload` message has that field (it is
added to verifier.proto separately); without it a remote workload shows no version policies."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ...errors import RequestError
from ...reference_values.kinds import normalize_value
from ...reference_values.model import ReferenceValue, ValueRevocation
from ...storage.audit import AuditEntry
from ...storage.workload_records import StoredVersion, VersionRevocation, WorkloadRecord
from ...v1 import reference_values_pb2 as rv_pb
from ...v1 import verifier_pb2 as pb
from ...workloads.manifest_model import ManifestEntry
from ...workloads.model import WorkloadMeta
from . import convert

HAS_VERSION_POLICIES = "version_policies" in pb.Workload.DESCRIPTOR.fields_by_name


def _time(msg: Any, field: str) -> dt.datetime | None:
    return getattr(msg, field).ToDatetime(tzinfo=dt.UTC) if msg.HasField(field) else None


def _set_time(msg: Any, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        getattr(msg, field).CopyFrom(convert.timestamp(value))


def reference_value_from(msg: pb.ReferenceValue) -> ReferenceValue:
    """The record a `ReferenceValue` message describes (the client side of `convert.reference_value`)."""
    created = _time(msg, "created_at")
    return ReferenceValue(
        id=msg.id,
        kind=msg.kind,
        value=bytes.fromhex(msg.value),
        label=msg.label,
        created_at=created if created is not None else dt.datetime.fromtimestamp(0, dt.UTC),
        expires_at=_time(msg, "expires_at"),
        revoked_at=_time(msg, "revoked_at"),
        revoke_reason=msg.revoke_reason or None,
        version=msg.version or None,
        valid_from=_time(msg, "valid_from"),
        created_by=msg.created_by,
        revoked_by=msg.revoked_by or None,
    )


def revocation_message(rv: ValueRevocation) -> rv_pb.ReferenceValueRevocation:
    msg = rv_pb.ReferenceValueRevocation(
        id=rv.id,
        reference_value_id=rv.ref_id,
        revoked_at=convert.timestamp(rv.revoked_at),
        revoked_by=rv.revoked_by,
        reason=rv.reason,
        reapproved_by=rv.reapproved_by or "",
        reapprove_reason=rv.reapprove_reason or "",
    )
    _set_time(msg, "reapproved_at", rv.reapproved_at)
    return msg


def revocation_from(msg: rv_pb.ReferenceValueRevocation, kind: str, value: bytes) -> ValueRevocation:
    revoked = _time(msg, "revoked_at")
    return ValueRevocation(
        id=msg.id,
        kind=kind,
        value=value,
        ref_id=msg.reference_value_id,
        revoked_at=revoked if revoked is not None else dt.datetime.fromtimestamp(0, dt.UTC),
        revoked_by=msg.revoked_by,
        reason=msg.reason,
        reapproved_at=_time(msg, "reapproved_at"),
        reapproved_by=msg.reapproved_by or None,
        reapprove_reason=msg.reapprove_reason or None,
    )


def history_message(entry: AuditEntry) -> rv_pb.ReferenceValueHistoryEntry:
    return rv_pb.ReferenceValueHistoryEntry(
        seq=entry.seq,
        at=convert.timestamp(entry.at),
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details_json=json.dumps(entry.details, default=str),
    )


def history_from(msg: rv_pb.ReferenceValueHistoryEntry) -> AuditEntry:
    """An audit row as a History response carries it (without its chain hashes)."""
    at = _time(msg, "at")
    details = json.loads(msg.details_json) if msg.details_json else {}
    return AuditEntry(
        msg.seq,
        at if at is not None else dt.datetime.fromtimestamp(0, dt.UTC),
        msg.actor,
        msg.action,
        msg.subject,
        details if isinstance(details, dict) else {},
        "",
        "",
    )


def entry_message(entry: ManifestEntry) -> rv_pb.ReferenceValueEntry:
    msg = rv_pb.ReferenceValueEntry(
        kind=entry.kind, value=entry.value.hex(), label=entry.label, version=entry.version or ""
    )
    _set_time(msg, "valid_from", entry.valid_from)
    _set_time(msg, "expires_at", entry.expires_at)
    return msg


def entry_from(msg: rv_pb.ReferenceValueEntry) -> ManifestEntry:
    """RequestError: the value's REFERENCE_KIND_UNKNOWN / _NOT_HEX / _LENGTH, TIMESTAMP_INVALID,
    REFERENCE_WINDOW_EMPTY."""
    valid_from = convert.from_timestamp(msg.valid_from) if msg.HasField("valid_from") else None
    expires_at = convert.from_timestamp(msg.expires_at) if msg.HasField("expires_at") else None
    if valid_from is not None and expires_at is not None and expires_at <= valid_from:
        raise RequestError("REFERENCE_WINDOW_EMPTY", "expires_at is not after valid_from")
    value = normalize_value(msg.kind, msg.value)
    return ManifestEntry(msg.kind, value, msg.label, expires_at, msg.version or None, valid_from)


def set_version_policies(msg: pb.Workload, meta: WorkloadMeta) -> None:
    """Copy the workload's version policies into `msg` when the message has the field."""
    if HAS_VERSION_POLICIES:
        getattr(msg, "version_policies").update(dict(meta.version_policies))  # noqa: B009 (field may be absent)


def workload_record_from(msg: pb.Workload) -> WorkloadRecord:
    """The record a `Workload` message describes (its versions: `versions_from`)."""
    revoked_at = _time(msg, "revoked_at")
    policies = dict(getattr(msg, "version_policies")) if HAS_VERSION_POLICIES else {}  # noqa: B009
    meta = WorkloadMeta(
        msg.name,
        msg.tee,
        id=msg.id,
        policy=msg.policy or None,
        revoked_at=revoked_at,
        revoked_versions=frozenset(msg.revoked_versions),
        review=msg.review,
        version_policies=policies,
    )
    created = _time(msg, "created_at")
    return WorkloadRecord(
        meta,
        created if created is not None else dt.datetime.fromtimestamp(0, dt.UTC),
        msg.created_by,
        revoked_by=msg.revoked_by or None,
        revoke_reason=msg.revoke_reason or None,
        review_reason=msg.review_reason or None,
    )


def versions_from(msg: pb.Workload) -> list[StoredVersion]:
    out = []
    for v in msg.versions:
        revoked = _time(v, "revoked_at")
        revocation = VersionRevocation(v.version, revoked, v.revoked_by, v.revoke_reason) if revoked else None
        out.append(StoredVersion(v.version, tuple(reference_value_from(r) for r in v.reference_values), revocation))
    return out
