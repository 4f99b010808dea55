"""What the group-commit tests share: an appraisal record to record, a live challenge and whether it was consumed."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from verifier.recording import AppraisalRecord
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.tables import ChallengeRow

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def appraisal_record(status: str = "affirming") -> AppraisalRecord:
    return AppraisalRecord(
        appraisal_id=str(uuid.uuid4()),
        appraised_at=T0,
        tee="nitro",
        status=status,
        policy_id="default",
        evidence_sha256="ab" * 32,
        findings=(),
        token_id=uuid.uuid4().hex,
        request_id=None,
    )


def live_challenge(db: Database) -> bytes:
    nonce = uuid.uuid4().bytes * 2
    SqlChallengeStore(db).create(nonce, now=T0, ttl=dt.timedelta(minutes=5))
    return nonce


def consumed(db: Database, nonce: bytes) -> bool:
    with db.session() as session:
        return session.scalar(select(ChallengeRow.consumed_at).where(ChallengeRow.nonce == nonce)) is not None
