"""Appraisal records: what was appraised, when, the outcome, its findings and the token issued.

Each record also appends a row to the hash-chained audit log (action "appraisal", subject the appraisal id) in the
same transaction: both commit or neither does. Text is stored as `text.storable` makes it (no U+0000)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select

from . import audit
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


class SqlAppraisalStore:
    def __init__(self, db: Database) -> None:
        self._db = db

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
        if not _SHA256_HEX.fullmatch(evidence_sha256):
            raise ValueError("evidence_sha256 must be 64 lowercase hex characters")
        # Findings carry evidence text (a Nitro module_id, a certificate subject...): stored with U+0000 and lone
        # surrogates replaced (text.py), as are the other strings, cut to their column lengths.
        tee, status, policy_id = storable(tee, 16), storable(status, 16), storable(policy_id, 100)
        token_id, request_id = storable_optional(token_id, 64), storable_optional(request_id, 64)
        findings = storable_json(findings)
        row = AppraisalRow(
            id=appraisal_id,
            appraised_at=appraised_at,
            tee=tee,
            status=status,
            policy_id=policy_id,
            evidence_sha256=evidence_sha256,
            findings=findings,
            token_id=token_id,
            request_id=request_id,
        )
        details = {
            "tee": tee,
            "status": status,
            "policy_id": policy_id,
            "policy_sha256": policy_sha256,
            "evidence_sha256": evidence_sha256,
            "token_id": token_id,
            "reference_set_version": reference_set_version,
            "request_id": request_id,
        }
        with self._db.session() as session:
            session.add(row)
            session.flush()
            audit.append(
                session, at=appraised_at, actor="verifier", action="appraisal", subject=appraisal_id, details=details
            )

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
