"""Appraisal records: what was appraised, when, the outcome, its findings and the token issued.

Each record also appends a row to the hash-chained audit log (action "appraisal", subject the appraisal id) in the
same transaction: both commit or neither does. `SqlAppraisalStore.begin` is the appraisal unit of work
(`verifier.recording.Recorder`): the request's challenge is consumed (`challenges.consume_in`) in that transaction
too, so the nonce is spent exactly when the appraisal and its audit row commit. The challenges it consumes are
those `SqlChallengeStore` made in the same database. Text is stored as `text.storable` makes it (no U+0000)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..challenges import ConsumeOutcome
from ..recording import AppraisalRecord
from . import audit
from .challenges import consume_in
from .engine import Database
from .tables import AppraisalRow
from .text import storable, storable_json, storable_optional

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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


def _insert(session: Session, record: AppraisalRecord) -> None:
    """The appraisal row and its audit row, in `session`'s transaction. Raises ValueError for a malformed
    `evidence_sha256` (before any statement)."""
    if not _SHA256_HEX.fullmatch(record.evidence_sha256):
        raise ValueError("evidence_sha256 must be 64 lowercase hex characters")
    # Findings carry evidence text (a Nitro module_id, a certificate subject...): stored with U+0000 and lone
    # surrogates replaced (text.py), as are the other strings, cut to their column lengths.
    tee, status, policy_id = storable(record.tee, 16), storable(record.status, 16), storable(record.policy_id, 100)
    token_id, request_id = storable_optional(record.token_id, 64), storable_optional(record.request_id, 64)
    row = AppraisalRow(
        id=record.appraisal_id,
        appraised_at=record.appraised_at,
        tee=tee,
        status=status,
        policy_id=policy_id,
        evidence_sha256=record.evidence_sha256,
        findings=storable_json(list(record.findings)),
        token_id=token_id,
        request_id=request_id,
    )
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
    session.add(row)
    session.flush()
    audit.append(
        session,
        at=record.appraised_at,
        actor="verifier",
        action="appraisal",
        subject=record.appraisal_id,
        details=details,
    )


class SqlRecording:
    """One open unit of work of `SqlAppraisalStore.begin` (`verifier.recording.RecordingUnit`): every call runs in
    its one transaction. Raises RuntimeError when used after the unit ended."""

    def __init__(self, session: Session) -> None:
        self._session: Session | None = session

    def _open(self) -> Session:
        if self._session is None:
            raise RuntimeError("this unit of work has ended")
        return self._session

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        return consume_in(self._open(), nonce, at=at)

    def record(self, record: AppraisalRecord) -> None:
        _insert(self._open(), record)

    def close(self) -> None:
        self._session = None


class SqlAppraisalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def begin(self) -> Iterator[SqlRecording]:
        """One transaction (`Database.session`): committed when the block ends, rolled back when it raises. Raises
        UnavailableError (DATABASE_*), on PostgreSQL also when the whole unit outlives the database deadline."""
        with self._db.session() as session:
            unit = SqlRecording(session)
            try:
                yield unit
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
