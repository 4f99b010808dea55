"""Appraisal records: what was appraised, when, the outcome, its findings and the token issued.

Each record also appends a row to the hash-chained audit log (action "appraisal", subject the appraisal id) in the
same transaction: both commit or neither does. `SqlAppraisalStore.begin` is the appraisal unit of work
(`verifier.recording.Recorder`): the request's challenge is consumed (`challenges.consume_in`) in that transaction
too, so the nonce is spent exactly when the appraisal and its audit row commit. The challenges it consumes are
those `SqlChallengeStore` made in the same database. Text is stored as `text.storable` makes it (no U+0000)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..challenges import ConsumeOutcome
from ..errors import UnavailableError
from ..recording import AppraisalRecord, Done, StaleReadError
from . import audit
from .challenges import consume_in, unconsume_in
from .engine import Database
from .group_commit import DEFAULT_MAX_BATCH, GroupCommit, Slot
from .tables import AppraisalRow
from .text import storable, storable_json, storable_optional

T = TypeVar("T")
_INSERT = insert(cast(Table, AppraisalRow.__table__))
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
VERSION_TRIES = 3  # runs of one batch while the reference-set version keeps moving under it


def _to_dict(row: AppraisalRow) -> dict[str, Any]:
    return {
        "appraisal_id": row.id,
        "appraised_at": row.appraised_at,
        "tee": row.tee,
        "status": row.status,
        "policy_id": row.policy_id,
        "evidence_sha256": row.evidence_sha256,
        "findings": row.findings,
        "token_id": row.token_id,
        "request_id": row.request_id,
    }


def _row(record: AppraisalRecord) -> tuple[dict[str, Any], audit.Pending]:
    """The appraisal row and its audit row of `record`. Raises ValueError for a malformed `evidence_sha256`
    (before any statement)."""
    if not _SHA256_HEX.fullmatch(record.evidence_sha256):
        raise ValueError("evidence_sha256 must be 64 lowercase hex characters")
    # Findings carry evidence text (a Nitro module_id, a certificate subject...): stored with U+0000 and lone
    # surrogates replaced (text.py), as are the other strings, cut to their column lengths.
    tee, status, policy_id = storable(record.tee, 16), storable(record.status, 16), storable(record.policy_id, 100)
    token_id, request_id = storable_optional(record.token_id, 64), storable_optional(record.request_id, 64)
    row = {
        "id": record.appraisal_id,
        "appraised_at": record.appraised_at,
        "tee": tee,
        "status": status,
        "policy_id": policy_id,
        "evidence_sha256": record.evidence_sha256,
        "findings": storable_json(list(record.findings)),
        "token_id": token_id,
        "request_id": request_id,
    }
    details = {
        "tee": tee,
        "status": status,
        "policy_id": policy_id,
        "policy_sha256": record.policy_sha256,
        "evidence_sha256": record.evidence_sha256,
        "token_id": token_id,
        "reference_set_version": record.reference_set_version,
        "request_id": request_id,
    }
    return row, audit.Pending(record.appraised_at, "verifier", "appraisal", record.appraisal_id, details)


def _insert_many(session: Session, rows: Sequence[tuple[dict[str, Any], audit.Pending]]) -> int:
    """The appraisal rows and then their audit rows, in `session`'s transaction: one multi-row INSERT each (Core),
    the audit chain's lock taken last so it is held only for the audit rows and the commit. Returns the
    reference-set version read under that lock (`audit.append_many_at_version`)."""
    if rows:
        session.connection().execute(_INSERT, [row for row, _ in rows])
    return audit.append_many_at_version(session, [pending for _, pending in rows])[1]


class _VersionMovedError(Exception):
    """The reference-set version read under the chain's lock is not the one a work of the batch was evaluated at
    (its transaction is rolled back)."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


class SqlRecording:
    """One open unit of work (`verifier.recording.RecordingUnit`) in `session`'s transaction: challenges are
    consumed at once, appraisal rows collected and written by the unit's owner (`SqlAppraisalStore`) when the work
    ended without raising. Raises RuntimeError when used after the unit ended."""

    def __init__(self, session: Session) -> None:
        self._session: Session | None = session
        self.rows: list[tuple[dict[str, Any], audit.Pending]] = []
        self.consumed: list[tuple[bytes, dt.datetime]] = []

    def _open(self) -> Session:
        if self._session is None:
            raise RuntimeError("this unit of work has ended")
        return self._session

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        outcome = consume_in(self._open(), nonce, at=at)
        if outcome is ConsumeOutcome.OK:
            self.consumed.append((nonce, at))
        return outcome

    def record(self, record: AppraisalRecord) -> None:
        self._open()
        self.rows.append(_row(record))

    def undo(self) -> None:
        """Give back what this unit consumed (its work failed; the batch's transaction goes on without it)."""
        session = self._open()
        for nonce, at in self.consumed:
            unconsume_in(session, nonce, at=at)
        self.consumed.clear()
        self.rows.clear()

    def close(self) -> None:
        self._session = None


def _database_error(error: BaseException) -> bool:
    """Whether `error` fails the whole batch (the transaction is unusable or the database unavailable) rather
    than one work."""
    if isinstance(error, UnavailableError):
        return error.code.startswith("DATABASE")
    return isinstance(error, SQLAlchemyError)


class SqlAppraisalStore:
    """Appraisal records in `db`. `run` is the service's path (group commit, `storage.group_commit`); `begin` one
    transaction of its own (tools, tests)."""

    def __init__(self, db: Database, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._db = db
        self.group: GroupCommit[SqlRecording] = GroupCommit(self._execute, max_batch=max_batch)

    validates_version = True

    def run(self, work: Callable[[SqlRecording], T], *, version: int | None = None) -> T:
        """`work(unit)` in a unit of work shared with the works of concurrent requests (one transaction per
        batch); returns its value once that transaction committed. A work that raises has consumed nothing and
        recorded nothing (its consumptions are given back) and fails alone; a database error fails every work of
        the batch with UnavailableError (DATABASE_*) and commits nothing. With `version`, StaleReadError (nothing
        of `work` committed; `work` may have run in a run rolled back) when the reference-set version read under
        the audit chain's lock is another (`_execute`). `work` must be safe to run again."""
        return self.group.run(work, version=version)

    def submit(self, work: Callable[[SqlRecording], T], done: Done[T], *, version: int | None = None) -> None:
        """`run` without waiting (`GroupCommit.submit`): `done(value, None)` or `done(None, error)` once the batch
        ended, called from the thread that ran it. Never raises."""
        self.group.submit(work, lambda slot: done(slot.value, slot.error), version=version)

    def _execute(self, batch: Sequence[Slot[SqlRecording]]) -> None:
        """One batch in one transaction (`Database.session`): every work in turn, then all their rows. Where a work
        asks, the reference-set version it was evaluated at is checked under the audit chain's lock, in the
        statement reading the chain's head (`_insert_many`): a change committed after the batch began is seen
        there, not only one committed before. When the version moved, the transaction is rolled back and the
        batch runs again, each work evaluated at another version failing with StaleReadError without running
        (after `VERSION_TRIES` runs, every work that asked fails so)."""
        current: int | None = None  # the version read under the lock by the run before (None: first run)
        for run in range(VERSION_TRIES):
            try:
                self._execute_once(batch, current, stale_all=run == VERSION_TRIES - 1)
                return
            except _VersionMovedError as moved:
                current = moved.version

    def _execute_once(self, batch: Sequence[Slot[SqlRecording]], current: int | None, *, stale_all: bool) -> None:
        with self._db.session() as session:
            rows: list[tuple[dict[str, Any], audit.Pending]] = []
            versions: set[int] = set()  # the versions the works that ran were evaluated at
            for slot in batch:
                slot.value = slot.error = None  # a run before was rolled back
                if slot.version is not None and (stale_all or current not in (None, slot.version)):
                    slot.error = StaleReadError(current or 0)
                    continue
                unit = SqlRecording(session)
                try:
                    slot.value = slot.call(unit)
                except Exception as error:
                    if _database_error(error):
                        raise
                    unit.undo()
                    slot.error = error
                else:
                    rows.extend(unit.rows)
                    if slot.version is not None:
                        versions.add(slot.version)
                finally:
                    unit.close()
            if rows or versions:  # nothing to write or check when every work failed
                version = _insert_many(session, rows)
                if versions - {version}:
                    raise _VersionMovedError(version)  # rolls the batch back: nothing of it committed

    @contextmanager
    def begin(self) -> Iterator[SqlRecording]:
        """One transaction (`Database.session`): committed when the block ends, rolled back when it raises. Raises
        UnavailableError (DATABASE_*), on PostgreSQL also when the whole unit outlives the database deadline."""
        with self._db.session() as session:
            unit = SqlRecording(session)
            try:
                yield unit
                _insert_many(session, unit.rows)
            finally:
                unit.close()

    def record(
        self,
        *,
        appraisal_id: str,
        appraised_at: dt.datetime,
        tee: str,
        status: str,
        policy_id: str,
        evidence_sha256: str,
        findings: list[dict[str, Any]],
        token_id: str | None,
        request_id: str | None,
        policy_sha256: str | None = None,
        reference_set_version: int | None = None,
    ) -> None:
        """Record one appraisal (no challenge) in a unit of work of its own. Raises ValueError for an
        `evidence_sha256` that is not 64 lowercase hex digits, and UnavailableError (DATABASE_*)."""
        record = AppraisalRecord(
            appraisal_id=appraisal_id,
            appraised_at=appraised_at,
            tee=tee,
            status=status,
            policy_id=policy_id,
            evidence_sha256=evidence_sha256,
            findings=tuple(findings),
            token_id=token_id,
            request_id=request_id,
            policy_sha256=policy_sha256,
            reference_set_version=reference_set_version,
        )
        with self.begin() as unit:
            unit.record(record)

    def get(self, appraisal_id: str) -> dict[str, Any] | None:
        with self._db.session() as session:
            row = session.get(AppraisalRow, appraisal_id)
            return None if row is None else _to_dict(row)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` appraisals, newest first."""
        if limit <= 0:
            return []
        query = select(AppraisalRow).order_by(AppraisalRow.appraised_at.desc(), AppraisalRow.id.desc()).limit(limit)
        with self._db.session() as session:
            return [_to_dict(row) for row in session.scalars(query)]
