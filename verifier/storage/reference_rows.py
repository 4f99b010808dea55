"""Reference-value rows in SQL: the audited actions and limits, the row -> model mapping, the SQL predicates of a
row's state at an instant (the same rules as `ReferenceValue.state` / `active_at`) and of a value's revocation,
and the audit details of a row. No change is made here: `reference_changes` writes, `reference_values` is the
store."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_

from ..clock import to_rfc3339
from ..errors import RequestError
from ..reference_values.model import ReferenceValue, State, ValueRevocation
from ..workloads.manifest_model import ManifestEntry
from .tables import ReferenceValueRow, RevokedValueRow
from .text import storable, storable_optional

ROW_ACTIONS = ("ref.add", "ref.revoke", "ref.expire")
REAPPROVE = "ref.reapprove"
ACTIONS = (*ROW_ACTIONS, REAPPROVE)
MAX_LABEL = 200
MAX_VERSION = 64
MAX_REASON = 1000


def _to_model(row: ReferenceValueRow) -> ReferenceValue:
    return ReferenceValue(
        id=row.id,
        kind=row.kind,
        value=bytes(row.value),
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
        version=row.version,
        valid_from=row.valid_from,
        created_by=row.created_by or "",
        revoked_by=row.revoked_by,
    )


def _revoked(at: dt.datetime) -> ColumnElement[bool]:
    return and_(ReferenceValueRow.revoked_at.is_not(None), ReferenceValueRow.revoked_at <= at)


def _expired(at: dt.datetime) -> ColumnElement[bool]:
    return and_(ReferenceValueRow.expires_at.is_not(None), ReferenceValueRow.expires_at <= at)


def _not_yet_valid(at: dt.datetime) -> ColumnElement[bool]:
    return and_(ReferenceValueRow.valid_from.is_not(None), ReferenceValueRow.valid_from > at)


def _live(at: dt.datetime) -> ColumnElement[bool]:
    """Neither revoked nor expired at `at` (active or pending)."""
    return and_(
        or_(ReferenceValueRow.revoked_at.is_(None), ReferenceValueRow.revoked_at > at),
        or_(ReferenceValueRow.expires_at.is_(None), ReferenceValueRow.expires_at > at),
    )


def _active_at(at: dt.datetime) -> ColumnElement[bool]:
    """Same rule as `ReferenceValue.active_at`: valid from at or before `at`, neither revoked nor expired."""
    return and_(_live(at), or_(ReferenceValueRow.valid_from.is_(None), ReferenceValueRow.valid_from <= at))


def _value_revoked(at: dt.datetime) -> ColumnElement[bool]:
    """The row's (kind, value) has a revocation in force at `at` (revoked at or before, not re-approved by then),
    whichever row carried it."""
    return exists().where(
        RevokedValueRow.kind == ReferenceValueRow.kind,
        RevokedValueRow.value == ReferenceValueRow.value,
        RevokedValueRow.revoked_at <= at,
        or_(RevokedValueRow.reapproved_at.is_(None), RevokedValueRow.reapproved_at > at),
    )


def _revocation_model(row: RevokedValueRow) -> ValueRevocation:
    return ValueRevocation(
        id=row.id,
        kind=row.kind,
        value=bytes(row.value),
        ref_id=row.ref_id,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        reason=row.reason,
        reapproved_at=row.reapproved_at,
        reapproved_by=row.reapproved_by,
        reapprove_reason=row.reapprove_reason,
    )


def _state(state: State, at: dt.datetime) -> ColumnElement[bool]:
    """Same precedence as `ReferenceValue.state`: revoked, then expired, then pending."""
    if state == "active":
        return _active_at(at)
    if state == "revoked":
        return _revoked(at)
    if state == "expired":
        return and_(not_(_revoked(at)), _expired(at))
    if state == "pending":
        return and_(_live(at), _not_yet_valid(at))
    raise RequestError("REFERENCE_STATE_UNKNOWN", f"unknown state {state!r}")


def _details(ref: ReferenceValue, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ref.kind, "value": ref.value.hex(), "label": ref.label}
    if ref.version is not None:
        out["version"] = ref.version
    if ref.valid_from is not None:
        out["valid_from"] = to_rfc3339(ref.valid_from)
    if ref.expires_at is not None:
        out["expires_at"] = to_rfc3339(ref.expires_at)
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _storable_entry(entry: ManifestEntry) -> ManifestEntry:
    return ManifestEntry(
        storable(entry.kind),
        bytes(entry.value),
        storable(entry.label),
        entry.expires_at,
        storable_optional(entry.version),
        entry.valid_from,
    )


def value_subject(kind: str, value: bytes) -> str:
    """The audit subject of a change to a value rather than a row (`ref.reapprove`): `kind:hex`."""
    return f"{kind}:{value.hex()}"
