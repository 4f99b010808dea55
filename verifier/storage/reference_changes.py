"""Reference-value changes made inside a caller's transaction (`SqlReferenceValueStore` and `SqlWorkloads` open it,
serialize it with `_serialize_changes` and bump the reference-set version): the lock, the add rule
(`_refuse_revoked`, which every add path goes through), and the add, revoke, expire and re-approve writes, each
appending its audit row in that same transaction."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session, SessionTransaction

from ..clock import to_rfc3339
from ..errors import NotFoundError, RequestError
from ..reference_values.model import ReferenceValue, ValueRevocation
from ..workloads.manifest_model import ManifestEntry
from . import audit
from .reference_rows import (
    MAX_LABEL,
    MAX_VERSION,
    REAPPROVE,
    _details,
    _live,
    _revocation_model,
    _storable_entry,
    _to_model,
    value_subject,
)
from .tables import ReferenceValueRow, RevokedValueRow, new_id
from .text import storable

_PG_CHANGE_LOCK = 0x7EE5A0D2  # serializes every reference-value change (read, check, write) across replicas and CLIs
_LOCK = threading.RLock()  # the same on SQLite, within one process
_LOCK_HELD = "reference_values_lock"


def _serialize_changes(session: Session) -> None:
    """Hold the reference-value change lock until `session`'s transaction ends (taken before the audit lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHANGE_LOCK})
        return
    if session.info.get(_LOCK_HELD):
        return
    _LOCK.acquire()
    session.info[_LOCK_HELD] = True

    def release(sess: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None and sess.info.pop(_LOCK_HELD, None):
            _LOCK.release()

    event.listen(session, "after_transaction_end", release)


def _open_revocations(session: Session, kind: str, value: bytes) -> list[RevokedValueRow]:
    query = (
        select(RevokedValueRow)
        .where(RevokedValueRow.kind == kind, RevokedValueRow.value == value, RevokedValueRow.reapproved_at.is_(None))
        .order_by(RevokedValueRow.revoked_at, RevokedValueRow.id)
    )
    return list(session.scalars(query))


def _refuse_revoked(session: Session, kind: str, value: bytes) -> None:
    """The rule every add path goes through: RequestError REFERENCE_VALUE_REVOKED while the value (kind and value,
    any label) has an open revocation; only `reapprove` closes it."""
    revocations = _open_revocations(session, kind, value)
    if revocations:
        first = revocations[0]
        raise RequestError(
            "REFERENCE_VALUE_REVOKED",
            f"{kind} {value.hex()} was revoked at {to_rfc3339(first.revoked_at)} by {first.revoked_by or 'unknown'} "
            f"({first.reason!r}, row {first.ref_id}); a revoked value is never approved again by adding it: remove "
            f"it, or re-approve it explicitly with `verifier refs reapprove {kind} {value.hex()} --reason TEXT`",
        )


def insert_in(
    session: Session, entry: ManifestEntry, now: dt.datetime, actor: str, source: str | None = None
) -> ReferenceValue:
    """Add one row, audited `ref.add`. RequestError REFERENCE_VALUE_REVOKED (`_refuse_revoked`),
    REFERENCE_KIND_UNKNOWN, REFERENCE_LABEL_TOO_LONG, REFERENCE_VERSION_INVALID, REFERENCE_WINDOW_EMPTY."""
    entry, actor = _storable_entry(entry), storable(actor, 200)
    if len(entry.kind) > 64:
        raise RequestError("REFERENCE_KIND_UNKNOWN", "reference-value kind longer than 64 characters")
    if len(entry.label) > MAX_LABEL:
        raise RequestError("REFERENCE_LABEL_TOO_LONG", f"label has {len(entry.label)} characters, at most 200")
    if entry.version is not None and not 0 < len(entry.version) <= MAX_VERSION:
        raise RequestError("REFERENCE_VERSION_INVALID", f"version must be 1..{MAX_VERSION} characters")
    if entry.valid_from is not None and entry.expires_at is not None and entry.expires_at <= entry.valid_from:
        raise RequestError("REFERENCE_WINDOW_EMPTY", "expires_at is not after valid_from")
    _refuse_revoked(session, entry.kind, entry.value)
    row = ReferenceValueRow(
        id=new_id(),
        kind=entry.kind,
        value=entry.value,
        label=entry.label,
        created_at=now,
        expires_at=entry.expires_at,
        valid_from=entry.valid_from,
        version=entry.version,
        created_by=actor,
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    ref = _to_model(row)
    audit.append(session, at=now, actor=actor, action="ref.add", subject=ref.id, details=_details(ref, source=source))
    return ref


def revoke_in(
    session: Session, ref_id: str, reason: str, now: dt.datetime, actor: str, source: str | None = None
) -> ReferenceValue:
    """Revoke the row and with it its value (`revoke_value_in`)."""
    ref = mark_revoked_in(session, ref_id, reason, now, actor, source=source)
    revoke_value_in(session, ref, now, actor, source=source)
    return ref


def revoke_value_in(
    session: Session, ref: ReferenceValue, now: dt.datetime, actor: str, source: str | None = None
) -> list[ReferenceValue]:
    """`ref` was just revoked: open a revocation of its value unless one is open, and revoke every other live
    row with that kind and value (same reason, audited `via` ref). Returns those rows."""
    reason = ref.revoke_reason or ""
    if not _open_revocations(session, ref.kind, ref.value):
        session.add(
            RevokedValueRow(
                id=new_id(),
                kind=ref.kind,
                value=ref.value,
                ref_id=ref.id,
                revoked_at=now,
                revoked_by=storable(actor, 200),
                reason=reason,
            )
        )
        session.flush()
    others = session.scalars(
        select(ReferenceValueRow.id)
        .where(ReferenceValueRow.kind == ref.kind, ReferenceValueRow.value == ref.value, _live(now))
        .order_by(ReferenceValueRow.created_at, ReferenceValueRow.id)
    ).all()
    return [mark_revoked_in(session, other, reason, now, actor, source=source, via=ref.id) for other in others]


def mark_revoked_in(
    session: Session,
    ref_id: str,
    reason: str,
    now: dt.datetime,
    actor: str,
    source: str | None = None,
    via: str | None = None,
) -> ReferenceValue:
    """Mark one row revoked at `now`, audited `ref.revoke` (its value is `revoke_value_in`'s). NotFoundError
    REFERENCE_VALUE_NOT_FOUND, RequestError REFERENCE_VALUE_REVOKED (already revoked)."""
    ref_id, reason, actor = storable(ref_id), storable(reason), storable(actor, 200)
    marked = session.connection().execute(
        update(ReferenceValueRow)
        .where(ReferenceValueRow.id == ref_id, ReferenceValueRow.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason, revoked_by=actor)
    )
    row = session.get(ReferenceValueRow, ref_id, populate_existing=True)
    if row is None:
        raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
    if marked.rowcount != 1:
        raise RequestError("REFERENCE_VALUE_REVOKED", f"reference value {ref_id} is already revoked")
    ref = _to_model(row)
    audit.append(
        session,
        at=now,
        actor=actor,
        action="ref.revoke",
        subject=ref.id,
        details=_details(ref, reason=reason, source=source, via=via),
    )
    return ref


def expire_in(session: Session, ref_id: str, now: dt.datetime, actor: str, reason: str | None) -> ReferenceValue:
    """`expires_at = now` on a live row, audited `ref.expire`. NotFoundError REFERENCE_VALUE_NOT_FOUND, RequestError
    REFERENCE_VALUE_INACTIVE (revoked or expired)."""
    ref_id = storable(ref_id)
    marked = session.connection().execute(
        update(ReferenceValueRow).where(ReferenceValueRow.id == ref_id, _live(now)).values(expires_at=now)
    )
    row = session.get(ReferenceValueRow, ref_id, populate_existing=True)
    if row is None:
        raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
    if marked.rowcount != 1:
        raise RequestError("REFERENCE_VALUE_INACTIVE", f"reference value {ref_id} is already revoked or expired")
    ref = _to_model(row)
    audit.append(
        session, at=now, actor=actor, action="ref.expire", subject=ref.id, details=_details(ref, reason=reason)
    )
    return ref


def reapprove_in(
    session: Session, kind: str, value: bytes, reason: str, now: dt.datetime, actor: str, label: str | None
) -> tuple[ValueRevocation, ...]:
    """Close the value's open revocations at `now`, audited `ref.reapprove` (`label`: the one the caller adds it
    under, or None); returns them. `kind`, `reason` and `actor` are already storable and checked. RequestError
    REFERENCE_VALUE_NOT_REVOKED, REAPPROVE_BEFORE_REVOCATION (`now` is not after the latest revocation)."""
    revocations = _open_revocations(session, kind, value)
    if not revocations:
        raise RequestError("REFERENCE_VALUE_NOT_REVOKED", f"{kind} {value.hex()} is not revoked")
    latest = max(r.revoked_at for r in revocations)
    if now <= latest:
        raise RequestError(
            "REAPPROVE_BEFORE_REVOCATION",
            f"{kind} {value.hex()} was revoked at {to_rfc3339(latest)}, not before now ({to_rfc3339(now)}); "
            "check this host's clock",
        )
    for row in revocations:
        row.reapproved_at, row.reapproved_by, row.reapprove_reason = now, actor, reason
    session.flush()
    closed = tuple(_revocation_model(r) for r in revocations)
    details: dict[str, Any] = {
        "kind": kind,
        "value": value.hex(),
        "reason": reason,
        "label": label,
        "revocations": [
            {
                "id": r.id,
                "ref_id": r.ref_id,
                "revoked_at": to_rfc3339(r.revoked_at),
                "revoked_by": r.revoked_by,
                "reason": r.reason,
            }
            for r in closed
        ],
    }
    audit.append(
        session,
        at=now,
        actor=actor,
        action=REAPPROVE,
        subject=value_subject(kind, value),
        details={k: v for k, v in details.items() if v is not None},
    )
    return closed
