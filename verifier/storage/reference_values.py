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
revoked and leave a live row behind."""

from __future__ import annotations

import builtins
import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, event, exists, not_, or_, select, text, update
from sqlalchemy.orm import Session, SessionTransaction

from ..clock import to_rfc3339
from ..errors import NotFoundError, RequestError
from ..reference_values.manifest_model import Manifest, ManifestEntry
from ..reference_values.model import Reapproval, ReferenceValue, State, ValueRevocation
from ..reference_values.plan import Plan, compute_plan
from . import audit
from .audit import AuditEntry
from .engine import Database
from .tables import AuditRow, ReferenceValueRow, RevokedValueRow, new_id
from .text import storable, storable_optional

ROW_ACTIONS = ("ref.add", "ref.revoke", "ref.expire")
REAPPROVE = "ref.reapprove"
ACTIONS = (*ROW_ACTIONS, REAPPROVE)
MAX_LABEL = 200
MAX_VERSION = 64
MAX_REASON = 1000
_PG_CHANGE_LOCK = 0x7EE5A0D2  # serializes every reference-value change (read, check, write) across replicas and CLIs
_LOCK = threading.RLock()  # the same on SQLite, within one process
_LOCK_HELD = "reference_values_lock"


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


def _open_revocations(session: Session, kind: str, value: bytes) -> builtins.list[RevokedValueRow]:
    query = (
        select(RevokedValueRow)
        .where(RevokedValueRow.kind == kind, RevokedValueRow.value == value, RevokedValueRow.reapproved_at.is_(None))
        .order_by(RevokedValueRow.revoked_at, RevokedValueRow.id)
    )
    return builtins.list(session.scalars(query))


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
            ref = self._revoke(session, ref_id, reason, now, actor)
            audit.bump_reference_set(session, now)
            return ref

    def expire(self, ref_id: str, *, now: dt.datetime, actor: str = "", reason: str | None = None) -> ReferenceValue:
        """End a live value's validity now (`expires_at = now`). RequestError if it is revoked or already expired."""
        with self._db.session() as session:
            _serialize_changes(session)
            ref = self._expire(session, ref_id, now, actor, reason)
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
                ref = self._mark_revoked(session, rv.ref.id, rv.reason, now, actor, source=sources)
                first_of_value.setdefault((ref.kind, ref.value), ref)
            for ref in first_of_value.values():
                self._revoke_value(session, ref, now, actor, source=sources)
            for ref in plan.expire:
                self._expire(session, ref.id, now, actor, f"not in the manifests ({sources})"[:1000])
            for entry in plan.add:
                self._insert(session, entry, now, actor, source=sources)
            if not plan.empty:
                audit.bump_reference_set(session, now)
            return plan

    def _insert(
        self, session: Session, entry: ManifestEntry, now: dt.datetime, actor: str, source: str | None = None
    ) -> ReferenceValue:
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
        audit.append(
            session, at=now, actor=actor, action="ref.add", subject=ref.id, details=_details(ref, source=source)
        )
        return ref

    def _revoke(
        self, session: Session, ref_id: str, reason: str, now: dt.datetime, actor: str, source: str | None = None
    ) -> ReferenceValue:
        ref = self._mark_revoked(session, ref_id, reason, now, actor, source=source)
        self._revoke_value(session, ref, now, actor, source=source)
        return ref

    def _revoke_value(
        self, session: Session, ref: ReferenceValue, now: dt.datetime, actor: str, source: str | None = None
    ) -> builtins.list[ReferenceValue]:
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
        return [self._mark_revoked(session, other, reason, now, actor, source=source, via=ref.id) for other in others]

    def _mark_revoked(
        self,
        session: Session,
        ref_id: str,
        reason: str,
        now: dt.datetime,
        actor: str,
        source: str | None = None,
        via: str | None = None,
    ) -> ReferenceValue:
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

    def _expire(
        self, session: Session, ref_id: str, now: dt.datetime, actor: str, reason: str | None
    ) -> ReferenceValue:
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
