"""Single-use challenge nonces. Consuming one is one conditional UPDATE (`consume_in`), so it is atomic across
threads and replicas: `SqlChallengeStore.consume` runs it in a transaction of its own, the appraisal unit of work
(`verifier.storage.appraisals.SqlAppraisalStore.begin`) in the transaction that records the appraisal.

Expired challenges are purged as new ones are created: every `purge_every` creates, one DELETE of at most
`purge_batch` rows that expired more than `purge_grace` ago (the grace absorbs clock skew between replicas and
keeps "expired" / "already used" answers for a while; after it an old nonce is answered as unknown, still refused).
`verifier db prune` purges the rest."""

from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import delete, exc, select, update
from sqlalchemy.orm import Session

from ..challenges import Challenge, ConsumeOutcome
from ..errors import RequestError, UnavailableError
from .engine import Database
from .tables import NONCE_MAX_BYTES, ChallengeRow

log = logging.getLogger(__name__)

DEFAULT_PURGE_EVERY = 16
DEFAULT_PURGE_BATCH = 500
DEFAULT_PURGE_GRACE = dt.timedelta(minutes=10)


class SqlChallengeStore:
    def __init__(
        self,
        db: Database,
        *,
        purge_every: int = DEFAULT_PURGE_EVERY,
        purge_batch: int = DEFAULT_PURGE_BATCH,
        purge_grace: dt.timedelta = DEFAULT_PURGE_GRACE,
    ) -> None:
        if purge_every < 0 or purge_batch < 1 or purge_grace < dt.timedelta(0):
            raise ValueError("purge_every >= 0 (0: never), purge_batch >= 1, purge_grace >= 0")
        self._db = db
        self._purge_every = purge_every
        self._purge_batch = purge_batch
        self._purge_grace = purge_grace
        self._creates = 0
        self._lock = threading.Lock()

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
        with self._lock:
            due = self._purge_every > 0 and self._creates % self._purge_every == 0
            self._creates += 1
        if due:
            try:
                self.purge_expired(now - self._purge_grace, limit=self._purge_batch)
            except (UnavailableError, exc.SQLAlchemyError) as error:  # best effort: the challenge is made
                log.warning("expired challenges not purged: %s", type(error).__name__)
        return challenge

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        """Mark the nonce used at `at`, in a transaction of its own. Exactly one concurrent caller gets OK."""
        with self._db.session() as session:
            return consume_in(session, nonce, at=at)

    def purge_expired(self, before: dt.datetime, *, limit: int | None = None) -> int:
        """Delete challenges (used or not) that expired at or before `before`, at most `limit` of them (the
        oldest first; None: all); return how many."""
        condition = ChallengeRow.expires_at <= before
        if limit is not None:
            oldest = select(ChallengeRow.nonce).where(condition).order_by(ChallengeRow.expires_at).limit(limit)
            condition = ChallengeRow.nonce.in_(oldest.scalar_subquery())
        with self._db.session() as session:
            return int(session.connection().execute(delete(ChallengeRow).where(condition)).rowcount or 0)


def consume_in(session: Session, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
    """Mark `nonce` used at `at` in `session`'s transaction (committed or rolled back with it): one conditional
    UPDATE, so among transactions that commit exactly one gets OK. The UPDATE holds the row until the transaction
    ends: a concurrent one consuming the same nonce waits for it (PostgreSQL: the row lock, re-checking the row as
    that transaction left it; SQLite: the database write lock), bounded by the lock / busy timeout (DATABASE_BUSY).
    Otherwise UNKNOWN, ALREADY_USED or EXPIRED (`expires_at` is exclusive), which change nothing."""
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


def unconsume_in(session: Session, nonce: bytes, *, at: dt.datetime) -> None:
    """Undo `consume_in(session, nonce, at=at)` in the same open transaction (its appraisal failed before being
    recorded): the challenge is live again when the transaction commits. Only the consumption at `at` is undone."""
    session.connection().execute(
        update(ChallengeRow).where(ChallengeRow.nonce == nonce, ChallengeRow.consumed_at == at).values(consumed_at=None)
    )
