"""Single-use challenge nonces. `consume` is one conditional UPDATE, so it is atomic across threads and replicas."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete, exc, select, update

from ..errors import RequestError
from .engine import Database
from .tables import NONCE_MAX_BYTES, ChallengeRow


@dataclass(frozen=True)
class Challenge:
    nonce: bytes
    created_at: dt.datetime
    expires_at: dt.datetime


class ConsumeOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"


class SqlChallengeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, nonce: bytes, *, now: dt.datetime, ttl: dt.timedelta) -> Challenge:
        if not 1 <= len(nonce) <= NONCE_MAX_BYTES:
            raise RequestError("CHALLENGE_NONCE_LENGTH", f"nonce must be 1 to {NONCE_MAX_BYTES} bytes")
        if ttl <= dt.timedelta(0):
            raise RequestError("CHALLENGE_TTL", "challenge lifetime must be positive")
        challenge = Challenge(nonce=bytes(nonce), created_at=now, expires_at=now + ttl)
        try:
            with self._db.session() as session:
                session.add(ChallengeRow(nonce=challenge.nonce, created_at=now, expires_at=challenge.expires_at))
        except exc.IntegrityError:
            raise RequestError("CHALLENGE_NONCE_EXISTS", "a challenge with this nonce already exists") from None
        return challenge

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        """Mark the nonce used at `at`. Exactly one concurrent caller gets OK."""
        with self._db.session() as session:
            marked = session.connection().execute(
                update(ChallengeRow)
                .where(
                    ChallengeRow.nonce == nonce,
                    ChallengeRow.consumed_at.is_(None),
                    ChallengeRow.expires_at > at,
                )
                .values(consumed_at=at)
            )
            if marked.rowcount == 1:
                return ConsumeOutcome.OK
            found = session.execute(
                select(ChallengeRow.consumed_at, ChallengeRow.expires_at).where(ChallengeRow.nonce == nonce)
            ).first()
        if found is None:
            return ConsumeOutcome.UNKNOWN
        if found.consumed_at is not None:
            return ConsumeOutcome.ALREADY_USED
        return ConsumeOutcome.EXPIRED

    def purge_expired(self, before: dt.datetime) -> int:
        """Delete challenges (used or not) that expired at or before `before`; return how many."""
        with self._db.session() as session:
            return session.connection().execute(delete(ChallengeRow).where(ChallengeRow.expires_at <= before)).rowcount
