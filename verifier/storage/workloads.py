"""Workload metadata in SQL (`workloads`, `workload_version_states`; migration 0005): the `WorkloadCatalog` the
service reads (verifier.workloads.model) and the admin changes.

A workload's values stay `reference_values` rows (label = workload name, version = workload version), so every
existing admin path keeps working; this table adds the TEE, the policy it is appraised under, its revocation, the
revoked versions, the `review` flag of migrated workloads and (`workload_version_policies`, migration 0006) the
policy of single versions. Nothing is deleted. Every change appends an audit
row (subject: the workload name) and bumps the reference-set version in its own transaction, serialized with the
reference-value changes (the same lock), so a value cannot be added to a workload while it is being revoked.

Inline policies of workload manifests are stored as database policies (`policies`, audited "policy.set" as
`verifier policy set` does) under the names `inline_policy_name` derives, in the same transaction as the workload
that references them: such a name is reserved for its workload, and a manifest is refused
(WORKLOAD_POLICY_CONFLICT) when another workload references it.

Actions: workload.create, workload.policy, workload.version.policy, workload.revoke, workload.version.revoke,
workload.confirm (and policy.set for inline policies).

The record types, checks and row reads are in `workload_records`; the changes made inside a caller's transaction
(`ensure_in`, inline and per-version policies) in `workload_changes`."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..clock import to_rfc3339
from ..errors import NotFoundError, RequestError
from ..reference_values.model import ReferenceValue
from ..workloads.manifest_model import ManifestEntry
from ..workloads.model import UNVERSIONED, WorkloadMeta
from . import audit
from .audit import AuditEntry
from .engine import Database
from .reference_changes import _serialize_changes, insert_in  # the lock and add rule of every reference-value add
from .reference_rows import MAX_VERSION, _to_model
from .tables import AuditRow, ReferenceValueRow, WorkloadRow, WorkloadVersionStateRow
from .text import storable
from .workload_changes import _audit, _set_version_policy_in, ensure_in
from .workload_records import (
    ACTIONS,
    CONFIRM,
    POLICY,
    REVOKE,
    REVOKE_VERSION,
    StoredVersion,
    WorkloadRecord,
    _check_name,
    _check_reason,
    _check_version,
    _existing,
    _records,
    _revocations,
    _row,
    check_policy_name,
    tee_of_kind,
)


class SqlWorkloads:
    """The workload catalog (`WorkloadCatalog`) and its admin changes, on a `Database` migrated to 0005."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- reads -------------------------------------------------------------------------------------------------

    def metadata(self, names: Iterable[str]) -> dict[str, WorkloadMeta]:
        """The catalog entries of these names (names without one are absent: implicit, default policy)."""
        wanted = sorted({storable(n) for n in names if n})
        if not wanted:
            return {}
        out: dict[str, WorkloadMeta] = {}
        with self._db.session() as session:
            for start in range(0, len(wanted), 500):
                rows = session.scalars(select(WorkloadRow).where(WorkloadRow.name.in_(wanted[start : start + 500])))
                out.update({r.meta.name: r.meta for r in _records(session, builtins.list(rows))})
        return out

    def record(self, name: str) -> WorkloadRecord:
        """NotFoundError WORKLOAD_NOT_FOUND."""
        with self._db.session() as session:
            row = _row(session, name)
            if row is None:
                raise NotFoundError("WORKLOAD_NOT_FOUND", f"no workload named {name!r}")
            return _records(session, [row])[0]

    def records(self, *, review_only: bool = False) -> builtins.list[WorkloadRecord]:
        query = select(WorkloadRow).order_by(WorkloadRow.name)
        if review_only:
            query = query.where(WorkloadRow.review.is_(True))
        with self._db.session() as session:
            return _records(session, builtins.list(session.scalars(query)))

    def get(self, name: str) -> WorkloadMeta:
        """NotFoundError WORKLOAD_NOT_FOUND."""
        return self.record(name).meta

    def list(self, *, review_only: bool = False) -> builtins.list[WorkloadMeta]:
        return [r.meta for r in self.records(review_only=review_only)]

    def versions(self, name: str) -> builtins.list[StoredVersion]:
        """Every version of the workload (rows label=name in every state, grouped by version, "" = unversioned),
        revoked versions included even without rows. NotFoundError WORKLOAD_NOT_FOUND."""
        record = self.record(name)
        with self._db.session() as session:
            rows = session.scalars(
                select(ReferenceValueRow)
                .where(ReferenceValueRow.label == record.meta.name)
                .order_by(ReferenceValueRow.created_at, ReferenceValueRow.id)
            )
            grouped: dict[str, builtins.list[ReferenceValue]] = {}
            for row in rows:
                grouped.setdefault(row.version or UNVERSIONED, []).append(_to_model(row))
        revoked = {v.version: v for v in record.version_revocations}
        return [StoredVersion(v, tuple(grouped.get(v, [])), revoked.get(v)) for v in sorted({*grouped, *revoked})]

    def history(self, name: str) -> builtins.list[AuditEntry]:
        """The workload.* audit rows of this workload, oldest first (its values' rows: `refs history --label`)."""
        query = (
            select(AuditRow)
            .where(AuditRow.action.in_(ACTIONS), AuditRow.subject == storable(name, 200))
            .order_by(AuditRow.seq)
        )
        with self._db.session() as session:
            return [
                AuditEntry(r.seq, r.at, r.actor, r.action, r.subject, dict(r.details), r.prev_hash, r.hash)
                for r in session.scalars(query)
            ]

    # --- changes -----------------------------------------------------------------------------------------------

    def ensure(
        self,
        name: str,
        tee: str,
        *,
        now: dt.datetime,
        actor: str,
        policy: str | None = None,
        version_policies: Mapping[str, str] | None = None,
        inline_policies: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> WorkloadMeta:
        """Create the workload if missing (audited workload.create); with `policy`, set it if it differs (audited
        workload.policy); `version_policies` (version -> policy name) likewise per version (audited
        workload.version.policy; the versions need no values yet: a manifest's metadata is applied before its
        values). `inline_policies` (name -> policy body, the `--policy-file` entry schema) are stored first, in the
        same transaction, as database policies under the workload's reserved names (`inline_policy_name`; audited
        policy.set when the body changes).

        RequestError WORKLOAD_TEE_MISMATCH if it exists with another TEE, WORKLOAD_NAME_INVALID,
        WORKLOAD_TEE_UNKNOWN, WORKLOAD_POLICY_INVALID, REFERENCE_VERSION_INVALID, WORKLOAD_POLICY_CONFLICT,
        POLICY_INVALID. A revoked workload is returned as it is (`revoked_at`)."""
        with self._db.session() as session:
            _serialize_changes(session)
            row, _ = ensure_in(
                session,
                name,
                tee,
                now=now,
                actor=actor,
                policy=policy,
                version_policies=version_policies,
                inline_policies=inline_policies,
            )
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def create(self, name: str, tee: str, *, now: dt.datetime, actor: str, policy: str | None = None) -> WorkloadMeta:
        """RequestError WORKLOAD_EXISTS when the name is taken (revoked workloads included), and those of `ensure`."""
        with self._db.session() as session:
            _serialize_changes(session)
            if _row(session, name) is not None:
                raise RequestError("WORKLOAD_EXISTS", f"a workload named {name!r} exists")
            row, _ = ensure_in(session, name, tee, now=now, actor=actor, policy=policy)
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def add_values(
        self,
        name: str,
        entries: Sequence[ManifestEntry],
        *,
        now: dt.datetime,
        actor: str,
        tee: str | None = None,
        new_version: bool = False,
        skip_present: bool = True,
        source: str | None = None,
    ) -> tuple[WorkloadMeta, builtins.list[ReferenceValue]]:
        """Add `entries` (label = `name`) as values of the workload, creating it if missing (TEE `tee`, else that of
        the kinds): all or nothing, in one transaction, through the reference-value store's add rule (a revoked
        value is refused with REFERENCE_VALUE_REVOKED). Entries already live (same kind, value, label and version)
        are skipped unless `skip_present` is False (`refs add` always adds its row). With `new_version` the
        version must have no live row yet (WORKLOAD_VERSION_EXISTS: a released version is never changed by adding
        values; add a new version).

        RequestError: WORKLOAD_VERSION_EMPTY, WORKLOAD_TEE_MISMATCH (kinds of another TEE than the workload's or of
        several), WORKLOAD_REVOKED, WORKLOAD_VERSION_REVOKED, WORKLOAD_VERSION_EXISTS, and those of `ensure` and
        `SqlReferenceValueStore.add`."""
        name, kinds_tee, entries = _version_entries(name, entries, tee)
        versions = {e.version for e in entries}
        with self._db.session() as session:
            _serialize_changes(session)
            row, _ = ensure_in(session, name, kinds_tee, now=now, actor=actor)
            live = _live_values(session, row, name, versions, now=now, new_version=new_version)
            added: builtins.list[ReferenceValue] = []
            for entry in entries:
                key = (entry.kind, bytes(entry.value), entry.version)
                if key in live and skip_present:
                    continue
                live.add(key)
                added.append(insert_in(session, entry, now, actor, source=source))
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta, added

    def set_policy(self, name: str, policy: str | None, *, now: dt.datetime, actor: str) -> WorkloadMeta:
        """Appraise the workload under `policy` (None: the verifier's default), audited workload.policy; no change
        (and no audit row) when it already is. NotFoundError WORKLOAD_NOT_FOUND, RequestError WORKLOAD_REVOKED,
        WORKLOAD_POLICY_INVALID. Whether the name exists is the caller's check (POLICY_UNKNOWN)."""
        policy = check_policy_name(policy)
        with self._db.session() as session:
            _serialize_changes(session)
            row = _existing(session, name)
            if row.revoked_at is not None:
                raise RequestError("WORKLOAD_REVOKED", f"workload {name!r} is revoked")
            if row.policy != policy:
                previous, row.policy = row.policy, policy
                session.flush()
                _audit(
                    session,
                    row,
                    POLICY,
                    now,
                    storable(actor, 200),
                    policy=policy or "(default)",
                    previous=previous or "(default)",
                )
                audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def set_version_policy(
        self, name: str, version: str, policy: str | None, *, now: dt.datetime, actor: str
    ) -> WorkloadMeta:
        """Appraise one version ("" = the unversioned values) under `policy` instead of the workload's (None: the
        workload's policy again), audited workload.version.policy; no change (and no audit row) when it already is.
        NotFoundError WORKLOAD_NOT_FOUND, WORKLOAD_VERSION_NOT_FOUND (no row of that version); RequestError
        WORKLOAD_REVOKED, WORKLOAD_POLICY_INVALID, REFERENCE_VERSION_INVALID. Whether the name exists is the
        caller's check (POLICY_UNKNOWN)."""
        policy, version, actor = check_policy_name(policy), _check_version(version), storable(actor, 200)
        with self._db.session() as session:
            _serialize_changes(session)
            row = _existing(session, name)
            if row.revoked_at is not None:
                raise RequestError("WORKLOAD_REVOKED", f"workload {name!r} is revoked")
            stored = (
                ReferenceValueRow.version.is_(None) if version == UNVERSIONED else ReferenceValueRow.version == version
            )
            if (
                session.scalars(
                    select(ReferenceValueRow.id).where(ReferenceValueRow.label == row.name, stored).limit(1)
                ).first()
                is None
            ):
                raise NotFoundError("WORKLOAD_VERSION_NOT_FOUND", f"workload {name!r} has no version {version!r}")
            if _set_version_policy_in(session, row, version, policy, now=now, actor=actor):
                audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def revoke(self, name: str, reason: str, *, now: dt.datetime, actor: str) -> WorkloadMeta:
        """Revoke the whole workload from `now` on: none of its versions matches again (its values stay, and stay
        approved in other workloads). NotFoundError WORKLOAD_NOT_FOUND; RequestError WORKLOAD_REVOKED (already),
        REVOKE_REASON_REQUIRED, REVOKE_REASON_TOO_LONG."""
        reason, actor = _check_reason(reason), storable(actor, 200)
        with self._db.session() as session:
            _serialize_changes(session)
            row = _existing(session, name)
            if row.revoked_at is not None:
                raise RequestError("WORKLOAD_REVOKED", f"workload {name!r} is already revoked")
            row.revoked_at, row.revoked_by, row.revoke_reason = now, actor, reason
            session.flush()
            _audit(session, row, REVOKE, now, actor, reason=reason)
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def revoke_version(self, name: str, version: str, reason: str, *, now: dt.datetime, actor: str) -> WorkloadMeta:
        """Revoke one version ("" = the unversioned values) of the workload: it never matches again; the values
        stay (other versions and workloads keep them). NotFoundError WORKLOAD_NOT_FOUND, WORKLOAD_VERSION_NOT_FOUND
        (no row of that version); RequestError WORKLOAD_VERSION_REVOKED (already), REVOKE_REASON_*."""
        reason, actor, version = _check_reason(reason), storable(actor, 200), storable(version)
        if len(version) > MAX_VERSION:
            raise RequestError("REFERENCE_VERSION_INVALID", f"version must be 1..{MAX_VERSION} characters")
        with self._db.session() as session:
            _serialize_changes(session)
            row = _existing(session, name)
            stored = (
                ReferenceValueRow.version.is_(None) if version == UNVERSIONED else ReferenceValueRow.version == version
            )
            if (
                session.scalars(
                    select(ReferenceValueRow.id).where(ReferenceValueRow.label == row.name, stored).limit(1)
                ).first()
                is None
            ):
                raise NotFoundError("WORKLOAD_VERSION_NOT_FOUND", f"workload {name!r} has no version {version!r}")
            if session.get(WorkloadVersionStateRow, (row.id, version)) is not None:
                raise RequestError("WORKLOAD_VERSION_REVOKED", f"version {version!r} of {name!r} is already revoked")
            session.add(
                WorkloadVersionStateRow(
                    workload_id=row.id, version=version, revoked_at=now, revoked_by=actor, revoke_reason=reason
                )
            )
            session.flush()
            _audit(session, row, REVOKE_VERSION, now, actor, version=version, reason=reason)
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta

    def confirm_review(self, name: str, *, now: dt.datetime, actor: str) -> WorkloadMeta:
        """An admin confirms a migrated workload as it is (alternatives and TEE): clears `review`, audited
        workload.confirm with the reason it was flagged. RequestError WORKLOAD_NOT_IN_REVIEW."""
        actor = storable(actor, 200)
        with self._db.session() as session:
            _serialize_changes(session)
            row = _existing(session, name)
            if not row.review:
                raise RequestError("WORKLOAD_NOT_IN_REVIEW", f"workload {name!r} is not marked for review")
            flagged, row.review, row.review_reason = row.review_reason, False, None
            session.flush()
            _audit(session, row, CONFIRM, now, actor, review_reason=flagged)
            audit.bump_reference_set(session, now)
            return _records(session, [row])[0].meta


def _version_entries(
    name: str, entries: Sequence[ManifestEntry], tee: str | None
) -> tuple[str, str, list[ManifestEntry]]:
    """`add_values`' checks before its transaction: (the checked name, the one TEE of the kinds, the entries
    labelled `name`). RequestError WORKLOAD_VERSION_EMPTY, WORKLOAD_NAME_INVALID, WORKLOAD_TEE_MISMATCH."""
    if not entries:
        raise RequestError("WORKLOAD_VERSION_EMPTY", "a workload version needs at least one value")
    name = _check_name(name)
    kinds_tees = {tee_of_kind(e.kind) for e in entries}
    if len(kinds_tees) > 1 or (tee is not None and kinds_tees != {tee}):
        raise RequestError(
            "WORKLOAD_TEE_MISMATCH",
            f"values of {', '.join(sorted(kinds_tees))} cannot form one {tee or 'workload'} version",
        )
    labelled = [ManifestEntry(e.kind, e.value, name, e.expires_at, e.version or None, e.valid_from) for e in entries]
    return name, kinds_tees.pop(), labelled


def _live_values(
    session: Session, row: WorkloadRow, name: str, versions: set[str | None], *, now: dt.datetime, new_version: bool
) -> set[tuple[str, bytes, str | None]]:
    """The workload's live values (kind, value, version) at `now`, once `add_values` may add `versions` to it.
    RequestError WORKLOAD_REVOKED, WORKLOAD_VERSION_REVOKED, WORKLOAD_VERSION_EXISTS (with `new_version`)."""
    if row.revoked_at is not None:
        raise RequestError(
            "WORKLOAD_REVOKED",
            f"workload {name!r} was revoked at {to_rfc3339(row.revoked_at)}; a revoked workload takes no new values",
        )
    revoked = {v.version for v in _revocations(session, [row.id]).get(row.id, [])}
    live = {
        (r.kind, bytes(r.value), r.version)
        for r in session.scalars(
            select(ReferenceValueRow).where(ReferenceValueRow.label == row.name, ReferenceValueRow.revoked_at.is_(None))
        )
        if r.expires_at is None or r.expires_at > now
    }
    for version in versions:
        shown = version or UNVERSIONED
        if shown in revoked:
            raise RequestError("WORKLOAD_VERSION_REVOKED", f"version {shown!r} of {name!r} is revoked")
        if new_version and any(v == version for _, _, v in live):
            raise RequestError(
                "WORKLOAD_VERSION_EXISTS",
                f"version {shown!r} of {name!r} exists; a version is never changed by adding values: add a new version",
            )
    return live
