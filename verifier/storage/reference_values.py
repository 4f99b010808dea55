"""Reference values in SQL: `ReferenceValueStore` on a `Database`. Nothing is ever deleted: a row is revoked
(with who and why) or expired (`expires_at`), and every change appends a row to the hash-chained audit log and
bumps the reference-set version in the same transaction as the change itself.

Revocation is per value (kind and value), not per row. Revoking a row opens a revocation of its value
(`revoked_values`) and revokes every other live row with that kind and value, each audited. While a revocation is
open, `_refuse_revoked` (the one implementation of the rule, which every add path goes through: `add`,
`add_missing`, `apply`, `plan`, `reapprove --label`) refuses the value with REFERENCE_VALUE_REVOKED, and `active`
never returns a row of a value with a revocation in force at the appraisal time, whichever row carried it. Only
`reapprove` (explicit, with a reason, audited as `ref.reapprove`) closes it.

Text from the admin API (labels, versions, reasons, actors, ids and filters) goes through `text.storable`
(U+0000 -> U+2400), which PostgreSQL can store. Every change runs serialized with the others (a PostgreSQL
advisory lock shared by replicas and CLIs; a process lock on SQLite), so a value cannot be added while it is being
revoked and leave a live row behind.

This module is the store (its transactions); the writes inside a transaction, the lock and the add rule are in
`reference_changes`, the row mapping, SQL predicates and limits in `reference_rows` (re-exported here)."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, not_, or_, select
from sqlalchemy.orm import Session

from ..errors import NotFoundError, RequestError
from ..reference_values.model import Reapproval, ReferenceValue, State, ValueRevocation
from ..workloads.manifest_model import Manifest, ManifestEntry
from ..workloads.plan import Plan, compute_plan
from . import audit
from .audit import AuditEntry
from .engine import Database
from .reference_changes import (
    _refuse_revoked,
    _serialize_changes,
    expire_in,
    insert_in,
    mark_revoked_in,
    reapprove_in,
    revoke_in,
    revoke_value_in,
)
from .reference_rows import (
    ACTIONS,
    MAX_LABEL,
    MAX_REASON,
    MAX_VERSION,
    REAPPROVE,
    ROW_ACTIONS,
    _active_at,
    _live,
    _revocation_model,
    _state,
    _storable_entry,
    _to_model,
    _value_revoked,
    value_subject,
)
from .tables import AuditRow, ReferenceValueRow, RevokedValueRow
from .text import storable

__all__ = [
    "ACTIONS",
    "MAX_LABEL",
    "MAX_REASON",
    "MAX_VERSION",
    "REAPPROVE",
    "ROW_ACTIONS",
    "SqlReferenceValueStore",
    "_refuse_revoked",
    "_serialize_changes",
    "_to_model",
    "value_subject",
]


class SqlReferenceValueStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- changes: each one serialized, audited and versioned in its own transaction ---------------------------

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
        """Add one row. RequestError REFERENCE_VALUE_REVOKED if the value is revoked (any label), or for an invalid
        label / version / window."""
        with self._db.session() as session:
            _serialize_changes(session)
            ref = self._insert(session, ManifestEntry(kind, value, label, expires_at, version, valid_from), now, actor)
            audit.bump_reference_set(session, now)
            return ref

    def add_missing(
        self, entries: Sequence[ManifestEntry], *, now: dt.datetime, actor: str = ""
    ) -> tuple[builtins.list[ReferenceValue], int]:
        """Add the entries that no live row has yet (same kind, value and label), all or nothing in one transaction
        (`refs import`, `import-nitro`, `compute snp --add`); returns the added rows and how many were skipped.
        Raises like `add`, e.g. REFERENCE_VALUE_REVOKED, and then adds nothing."""
        with self._db.session() as session:
            _serialize_changes(session)
            present = {
                (r.kind, bytes(r.value), r.label) for r in session.scalars(select(ReferenceValueRow).where(_live(now)))
            }
            added: builtins.list[ReferenceValue] = []
            skipped = 0
            for entry in map(_storable_entry, entries):
                key = (entry.kind, entry.value, entry.label)
                if key in present:
                    skipped += 1
                    continue
                added.append(self._insert(session, entry, now, actor))
                present.add(key)
            if added:
                audit.bump_reference_set(session, now)
            return added, skipped

    def revoke(self, ref_id: str, reason: str, *, now: dt.datetime, actor: str = "") -> ReferenceValue:
        """Mark revoked at `now`, and with it the value: every other live row with this kind and value is revoked
        too (each audited, `via` this id) and the value stays revoked until `reapprove`. NotFoundError for an
        unknown id, RequestError if it is already revoked."""
        with self._db.session() as session:
            _serialize_changes(session)
            ref = revoke_in(session, ref_id, reason, now, actor)
            audit.bump_reference_set(session, now)
            return ref

    def expire(self, ref_id: str, *, now: dt.datetime, actor: str = "", reason: str | None = None) -> ReferenceValue:
        """End a live value's validity now (`expires_at = now`). RequestError if it is revoked or already expired."""
        with self._db.session() as session:
            _serialize_changes(session)
            ref = expire_in(session, ref_id, now, actor, reason)
            audit.bump_reference_set(session, now)
            return ref

    def reapprove(
        self,
        kind: str,
        value: bytes,
        reason: str,
        *,
        now: dt.datetime,
        actor: str = "",
        label: str | None = None,
        expires_at: dt.datetime | None = None,
        valid_from: dt.datetime | None = None,
        version: str | None = None,
    ) -> Reapproval:
        """Explicitly re-approve a revoked value: close its open revocations at `now` (audited as `ref.reapprove`
        with the actor and reason) so that it may be added again and new rows match from `now` on. Rows revoked
        before stay revoked; with `label` the value is also added under it, in the same transaction.

        RequestError: REAPPROVE_REASON_REQUIRED / _TOO_LONG, REAPPROVE_LABEL_REQUIRED (lifecycle fields without a
        label), REFERENCE_VALUE_NOT_REVOKED (nothing to re-approve), REAPPROVE_BEFORE_REVOCATION (`now` is not after
        the revocation, e.g. a clock behind the revoking one's), and those of `add` for the added row."""
        kind, reason, actor = storable(kind), storable(reason.strip()), storable(actor, 200)
        if not reason:
            raise RequestError("REAPPROVE_REASON_REQUIRED", "a re-approval needs a reason")
        if len(reason) > MAX_REASON:
            raise RequestError("REAPPROVE_REASON_TOO_LONG", f"the reason has more than {MAX_REASON} characters")
        if label is None and (expires_at, valid_from, version) != (None, None, None):
            raise RequestError("REAPPROVE_LABEL_REQUIRED", "version, valid_from and expires_at need a label to add")
        with self._db.session() as session:
            _serialize_changes(session)
            closed = reapprove_in(session, kind, value, reason, now, actor, label)
            added = None
            if label is not None:
                added = self._insert(
                    session, ManifestEntry(kind, value, label, expires_at, version, valid_from), now, actor
                )
            audit.bump_reference_set(session, now)
            return Reapproval(kind, bytes(value), closed, added)

    def plan(self, manifests: Sequence[Manifest], *, now: dt.datetime) -> Plan:
        """The plan `apply` would carry out now. Raises what `apply` would (REFERENCE_VALUE_REVOKED for an added
        value that is revoked, MANIFEST_CONFLICT)."""
        with self._db.session() as session:
            rows = [_to_model(r) for r in session.scalars(select(ReferenceValueRow))]
            plan = compute_plan(manifests, rows, now)
            for entry in plan.add:
                _refuse_revoked(session, entry.kind, entry.value)
        return plan

    def apply(self, manifests: Sequence[Manifest], *, now: dt.datetime, actor: str = "") -> Plan:
        """Plan against the rows read in this transaction and apply exactly that plan in it: all or nothing.
        One reference-set version bump for the whole plan (none when it is empty)."""
        with self._db.session() as session:
            _serialize_changes(session)
            rows = [_to_model(r) for r in session.scalars(select(ReferenceValueRow))]
            plan = compute_plan(manifests, rows, now)
            sources = ", ".join(plan.sources)
            first_of_value: dict[tuple[str, bytes], ReferenceValue] = {}
            for rv in plan.revoke:  # the plan lists every live row of each revoked value
                ref = mark_revoked_in(session, rv.ref.id, rv.reason, now, actor, source=sources)
                first_of_value.setdefault((ref.kind, ref.value), ref)
            for ref in first_of_value.values():
                revoke_value_in(session, ref, now, actor, source=sources)
            for ref in plan.expire:
                expire_in(session, ref.id, now, actor, f"not in the manifests ({sources})"[:1000])
            for entry in plan.add:
                self._insert(session, entry, now, actor, source=sources)
            if not plan.empty:
                audit.bump_reference_set(session, now)
            return plan

    def _insert(
        self, session: Session, entry: ManifestEntry, now: dt.datetime, actor: str, source: str | None = None
    ) -> ReferenceValue:
        """`reference_changes.insert_in`, as a method: the one seam through which the store's adds go (tests wrap
        it to fail an add half-way through a transaction)."""
        return insert_in(session, entry, now, actor, source)

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
            criteria.append(ReferenceValueRow.kind == storable(kind))
        if label is not None:
            criteria.append(ReferenceValueRow.label == storable(label))
        if state is not None:
            criteria.append(_state(state, at))
        elif not include_inactive:
            criteria.append(_active_at(at))
        return self._select(*criteria)

    def get(self, ref_id: str) -> ReferenceValue:
        with self._db.session() as session:
            row = session.get(ReferenceValueRow, storable(ref_id))
            if row is None:
                raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
            return _to_model(row)

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """What appraisal matches: rows of these kinds active at `at` whose value has no revocation in force at
        `at`, whichever row carried it."""
        if not kinds:
            return []
        return self._select(ReferenceValueRow.kind.in_(builtins.list(kinds)), _active_at(at), not_(_value_revoked(at)))

    def members(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """Every row of these kinds not expired at `at`: active, pending or revoked. A workload version requires
        each kind these rows give it, so revoking (or not yet activating) a kind's only value makes the version
        unmatchable instead of dropping the kind from it."""
        if not kinds:
            return []
        return self._select(
            ReferenceValueRow.kind.in_(builtins.list(kinds)),
            or_(ReferenceValueRow.expires_at.is_(None), ReferenceValueRow.expires_at > at),
        )

    def revocations(self, kind: str, value: bytes) -> builtins.list[ValueRevocation]:
        """Every revocation of this value, open or re-approved, oldest first."""
        query = (
            select(RevokedValueRow)
            .where(RevokedValueRow.kind == storable(kind), RevokedValueRow.value == value)
            .order_by(RevokedValueRow.revoked_at, RevokedValueRow.id)
        )
        with self._db.session() as session:
            return [_revocation_model(r) for r in session.scalars(query)]

    def history(
        self, ref_id: str | None = None, *, kind: str | None = None, label: str | None = None
    ) -> builtins.list[AuditEntry]:
        """The audit rows (ref.add, ref.revoke, ref.expire) of one row, or of every row with this kind and/or
        label, and the re-approvals (ref.reapprove) of their values, oldest first. NotFoundError for an unknown id."""
        with self._db.session() as session:
            criteria: builtins.list[ColumnElement[bool]] = []
            if ref_id is not None:
                if session.get(ReferenceValueRow, storable(ref_id)) is None:
                    raise NotFoundError("REFERENCE_VALUE_NOT_FOUND", f"no reference value with id {ref_id!r}")
                criteria.append(ReferenceValueRow.id == storable(ref_id))
            else:
                if kind is not None:
                    criteria.append(ReferenceValueRow.kind == storable(kind))
                if label is not None:
                    criteria.append(ReferenceValueRow.label == storable(label))
            subjects = select(ReferenceValueRow.id).where(*criteria)
            values = session.execute(
                select(ReferenceValueRow.kind, ReferenceValueRow.value).where(*criteria).distinct()
            ).all()
            reapprovals = [value_subject(k, bytes(v)) for k, v in values]
            query = (
                select(AuditRow)
                .where(
                    or_(
                        and_(AuditRow.action.in_(ROW_ACTIONS), AuditRow.subject.in_(subjects)),
                        and_(AuditRow.action == REAPPROVE, AuditRow.subject.in_(reapprovals)),
                    )
                )
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
