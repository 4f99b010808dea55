"""Reference values in SQL: `ReferenceValueStore` on a `Database`. Nothing is ever deleted: a value is revoked
(with who and why) or expired (`expires_at`), and every change appends a row to the hash-chained audit log and
bumps the reference-set version in the same transaction as the change itself."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, select, text, update
from sqlalchemy.orm import Session

from ..clock import to_rfc3339
from ..errors import NotFoundError, RequestError
from ..reference_values.manifest import Manifest, ManifestEntry
from ..reference_values.model import ReferenceValue, State
from ..reference_values.plan import Plan, compute_plan
from . import audit
from .audit import AuditEntry
from .engine import Database
from .tables import AuditRow, ReferenceValueRow, new_id

ACTIONS = ("ref.add", "ref.revoke", "ref.expire")
MAX_LABEL = 200
MAX_VERSION = 64
_PG_APPLY_LOCK = 0x7EE5A0D2  # serializes `apply` (read, plan, write) across replicas and CLIs


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


class SqlReferenceValueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- changes: each one audited and versioned in its own transaction --------------------------------------

    def add(
        self,
        kind: str,
        value: bytes,
        label: str,
        *,
        now: dt.datetime,
        expires_at: dt.datetime | None = None,
        valid_from: dt.datetime | None = None,
        version: str | None = None,
        actor: str = "",
    ) -> ReferenceValue:
        with self._db.session() as session:
            ref = self._insert(session, ManifestEntry(kind, value, label, expires_at, version, valid_from), now, actor)
            audit.bump_reference_set(session, now)
            return ref

    def revoke(self, ref_id: str, reason: str, *, now: dt.datetime, actor: str = "") -> ReferenceValue:
        """Mark revoked at `now`. NotFoundError for an unknown id, RequestError if it is already revoked."""
        with self._db.session() as session:
            ref = self._revoke(session, ref_id, reason, now, actor)
            audit.bump_reference_set(session, now)
            return ref

    def expire(self, ref_id: str, *, now: dt.datetime, actor: str = "", reason: str | None = None) -> ReferenceValue:
        """End a live value's validity now (`expires_at = now`). RequestError if it is revoked or already expired."""
        with self._db.session() as session:
            ref = self._expire(session, ref_id, now, actor, reason)
            audit.bump_reference_set(session, now)
            return ref

    def plan(self, manifests: Sequence[Manifest], *, now: dt.datetime) -> Plan:
        with self._db.session() as session:
            rows = [_to_model(r) for r in session.scalars(select(ReferenceValueRow))]
        return compute_plan(manifests, rows, now)

    def apply(self, manifests: Sequence[Manifest], *, now: dt.datetime, actor: str = "") -> Plan:
        """Plan against the rows read in this transaction and apply exactly that plan in it: all or nothing.
        One reference-set version bump for the whole plan (none when it is empty)."""
        with self._db.session() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_APPLY_LOCK})
            rows = [_to_model(r) for r in session.scalars(select(ReferenceValueRow))]
            plan = compute_plan(manifests, rows, now)
            sources = ", ".join(plan.sources)
            for rv in plan.revoke:
                self._revoke(session, rv.ref.id, rv.reason, now, actor, source=sources)
            for ref in plan.expire:
                self._expire(session, ref.id, now, actor, f"not in the manifests ({sources})"[:1000])
            for entry in plan.add:
                self._insert(session, entry, now, actor, source=sources)
            if not plan.empty:
                audit.bump_reference_set(session, now)
            return plan

    def _insert(self, session: Session, entry: ManifestEntry, now: dt.datetime, actor: str,
                source: str | None = None) -> ReferenceValue:
        if len(entry.kind) > 64:
            raise RequestError("REFERENCE_KIND_UNKNOWN", "reference-value kind longer than 64 characters")
        if len(entry.label) > MAX_LABEL:
            raise RequestError("REFERENCE_LABEL_TOO_LONG", f"label has {len(entry.label)} characters, at most 200")
        if entry.version is not None and not 0 < len(entry.version) <= MAX_VERSION:
            raise RequestError("REFERENCE_VERSION_INVALID", f"version must be 1..{MAX_VERSION} characters")
        if entry.valid_from is not None and entry.expires_at is not None and entry.expires_at <= entry.valid_from:
            raise RequestError("REFERENCE_WINDOW_EMPTY", "expires_at is not after valid_from")
        row = ReferenceValueRow(
            id=new_id(), kind=entry.kind, value=bytes(entry.value), label=entry.label, created_at=now,
            expires_at=entry.expires_at, valid_from=entry.valid_from, version=entry.version,
            created_by=actor[:200],
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        ref = _to_model(row)
        audit.append(session, at=now, actor=actor, action="ref.add", subject=ref.id,
                     details=_details(ref, source=source))
        return ref

    def _revoke(self, session: Session, ref_id: str, reason: str, now: dt.datetime, actor: str,
                source: str | None = None) -> ReferenceValue:
        marked = session.connection().execute(
            update(ReferenceValueRow)
            .where(ReferenceValueRow.id == ref_id, ReferenceValueRow.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason, revoked_by=actor[:200])
        )
        row = session.get(ReferenceValueRow, ref_id, populate_existing=True)
        if row is None:
            raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
        if marked.rowcount != 1:
            raise RequestError("REFERENCE_VALUE_REVOKED", f"reference value {ref_id} is already revoked")
        ref = _to_model(row)
        audit.append(session, at=now, actor=actor, action="ref.revoke", subject=ref.id,
                     details=_details(ref, reason=reason, source=source))
        return ref

    def _expire(self, session: Session, ref_id: str, now: dt.datetime, actor: str,
                reason: str | None) -> ReferenceValue:
        marked = session.connection().execute(
            update(ReferenceValueRow).where(ReferenceValueRow.id == ref_id, _live(now)).values(expires_at=now)
        )
        row = session.get(ReferenceValueRow, ref_id, populate_existing=True)
        if row is None:
            raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
        if marked.rowcount != 1:
            raise RequestError("REFERENCE_VALUE_INACTIVE", f"reference value {ref_id} is already revoked or expired")
        ref = _to_model(row)
        audit.append(session, at=now, actor=actor, action="ref.expire", subject=ref.id,
                     details=_details(ref, reason=reason))
        return ref

    # --- reads -------------------------------------------------------------------------------------------------

    def list(
        self,
        *,
        kind: str | None = None,
        label: str | None = None,
        state: State | None = None,
        include_inactive: bool = False,
        at: dt.datetime,
    ) -> builtins.list[ReferenceValue]:
        """Active values by default; `state` selects one state; `include_inactive` every state."""
        criteria: builtins.list[ColumnElement[bool]] = []
        if kind is not None:
            criteria.append(ReferenceValueRow.kind == kind)
        if label is not None:
            criteria.append(ReferenceValueRow.label == label)
        if state is not None:
            criteria.append(_state(state, at))
        elif not include_inactive:
            criteria.append(_active_at(at))
        return self._select(*criteria)

    def get(self, ref_id: str) -> ReferenceValue:
        with self._db.session() as session:
            row = session.get(ReferenceValueRow, ref_id)
            if row is None:
                raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
            return _to_model(row)

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        if not kinds:
            return []
        return self._select(ReferenceValueRow.kind.in_(builtins.list(kinds)), _active_at(at))

    def history(
        self, ref_id: str | None = None, *, kind: str | None = None, label: str | None = None
    ) -> builtins.list[AuditEntry]:
        """The audit rows (ref.add, ref.revoke, ref.expire) of one value, or of every value with this kind and/or
        label, oldest first. NotFoundError for an unknown id."""
        with self._db.session() as session:
            if ref_id is not None:
                if session.get(ReferenceValueRow, ref_id) is None:
                    raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
                subjects = select(ReferenceValueRow.id).where(ReferenceValueRow.id == ref_id)
            else:
                criteria: builtins.list[ColumnElement[bool]] = []
                if kind is not None:
                    criteria.append(ReferenceValueRow.kind == kind)
                if label is not None:
                    criteria.append(ReferenceValueRow.label == label)
                subjects = select(ReferenceValueRow.id).where(*criteria)
            query = (
                select(AuditRow)
                .where(AuditRow.action.in_(ACTIONS), AuditRow.subject.in_(subjects))
                .order_by(AuditRow.seq)
            )
            return [
                AuditEntry(r.seq, r.at, r.actor, r.action, r.subject, dict(r.details), r.prev_hash, r.hash)
                for r in session.scalars(query)
            ]

    def _select(self, *criteria: ColumnElement[bool]) -> builtins.list[ReferenceValue]:
        query = select(ReferenceValueRow).where(*criteria).order_by(ReferenceValueRow.created_at, ReferenceValueRow.id)
        with self._db.session() as session:
            return [_to_model(row) for row in session.scalars(query)]
