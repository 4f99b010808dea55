"""Reference values in SQL: `ReferenceValueStore` on a `Database`. Revocation marks a row; nothing is deleted."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select, update

from ..errors import NotFoundError, RequestError
from ..reference_values.model import ReferenceValue
from .engine import Database
from .tables import ReferenceValueRow, new_id


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
    )


def _active_at(at: dt.datetime) -> ColumnElement[bool]:
    """Same rule as `ReferenceValue.active_at`: neither revoked nor expired at or before `at`."""
    return and_(
        or_(ReferenceValueRow.revoked_at.is_(None), ReferenceValueRow.revoked_at > at),
        or_(ReferenceValueRow.expires_at.is_(None), ReferenceValueRow.expires_at > at),
    )


class SqlReferenceValueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, kind: str, value: bytes, label: str, *, now: dt.datetime, expires_at: dt.datetime | None = None
    ) -> ReferenceValue:
        if len(kind) > 64:
            raise RequestError("REFERENCE_KIND_UNKNOWN", "reference-value kind longer than 64 characters")
        if len(label) > 200:
            raise RequestError("REFERENCE_LABEL_TOO_LONG", f"label has {len(label)} characters, at most 200")
        row = ReferenceValueRow(
            id=new_id(), kind=kind, value=bytes(value), label=label, created_at=now, expires_at=expires_at
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            session.refresh(row)
            return _to_model(row)

    def list(
        self, *, kind: str | None = None, include_inactive: bool = False, at: dt.datetime
    ) -> builtins.list[ReferenceValue]:
        criteria: builtins.list[ColumnElement[bool]] = []
        if kind is not None:
            criteria.append(ReferenceValueRow.kind == kind)
        if not include_inactive:
            criteria.append(_active_at(at))
        return self._select(*criteria)

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        if not kinds:
            return []
        return self._select(ReferenceValueRow.kind.in_(builtins.list(kinds)), _active_at(at))

    def revoke(self, ref_id: str, reason: str, *, now: dt.datetime) -> ReferenceValue:
        """Mark revoked at `now`. NotFoundError for an unknown id, RequestError if it is already revoked."""
        with self._db.session() as session:
            marked = session.connection().execute(
                update(ReferenceValueRow)
                .where(ReferenceValueRow.id == ref_id, ReferenceValueRow.revoked_at.is_(None))
                .values(revoked_at=now, revoke_reason=reason)
            )
            row = session.get(ReferenceValueRow, ref_id, populate_existing=True)
            if row is None:
                raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
            if marked.rowcount != 1:
                raise RequestError("REFERENCE_VALUE_REVOKED", f"reference value {ref_id} is already revoked")
            return _to_model(row)

    def _select(self, *criteria: ColumnElement[bool]) -> builtins.list[ReferenceValue]:
        query = select(ReferenceValueRow).where(*criteria).order_by(ReferenceValueRow.created_at, ReferenceValueRow.id)
        with self._db.session() as session:
            return [_to_model(row) for row in session.scalars(query)]
