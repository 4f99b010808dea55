"""Recording an appraisal (the domain side): the unit-of-work port the service records through.

One unit of work consumes the request's challenge and records the appraisal with its audit entry; all of it commits
together when the unit ends, or none of it (../shared/ARCHITECTURE.md "Recording": an appraisal is recorded before
its token is returned). So a nonce is spent exactly when an appraisal that used it is recorded: when recording fails
(database down, a deadline) the nonce stays unused and the caller's retry with it can succeed, and no audit entry
tells of an appraisal that does not exist.

`verifier.storage.appraisals.SqlAppraisalStore` implements `Recorder` in one database transaction (the composition
root passes it in); `NotRecorded` is the unit of a service built without storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .challenges import ChallengeStore, ConsumeOutcome

T = TypeVar("T")
# A submitted unit's outcome: (value, None) once committed, (None, error) when it failed.
Done = Callable[[T | None, BaseException | None], None]


@dataclass(frozen=True)
class AppraisalRecord:
    """One appraisal as the audit log keeps it: findings as `Finding.to_json`, `evidence_sha256` the SHA-256 (64
    lowercase hex digits) of the evidence bytes received, `token_id` the issued EAR's `jti`."""

    appraisal_id: str
    appraised_at: dt.datetime
    tee: str
    status: str
    policy_id: str
    evidence_sha256: str
    findings: tuple[dict[str, Any], ...]
    token_id: str | None
    request_id: str | None
    policy_sha256: str | None = None
    reference_set_version: int | None = None


class RecordingUnit(Protocol):
    """What one open unit of work can do; nothing of it is visible to anyone else before the unit commits."""

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        """Mark the challenge `nonce` used at `at`, atomically: OK for exactly one unit (across threads and
        replicas) among those that commit, else UNKNOWN, EXPIRED or ALREADY_USED. A unit consuming a nonce another
        open unit has consumed waits (bounded by the lock timeout) until that one ends: ALREADY_USED if it committed,
        OK if it rolled back. Raises UnavailableError (DATABASE_*)."""
        ...

    def record(self, record: AppraisalRecord) -> None:
        """Add the appraisal row and its audit entry (action "appraisal", subject the appraisal id) to the unit.
        Raises ValueError for an `evidence_sha256` that is not 64 lowercase hex digits, UnavailableError
        (DATABASE_*)."""
        ...


class StaleReadError(Exception):
    """The reference set moved on since the snapshot an appraisal was evaluated on (`Recorder.run`'s `version`):
    nothing of it was consumed or recorded; the service evaluates it again on a fresh read (the server, for an
    appraisal it evaluated inline, in its lane). Never reaches a client."""

    def __init__(self, version: int) -> None:
        super().__init__(f"the reference set is at version {version}")
        self.version = version


class Recorder(Protocol):
    @property
    def validates_version(self) -> bool:
        """True when `run` checks a given `version` against the reference-set version in its own transaction (the
        service then evaluates on the snapshot held and lets the recorder say whether it went stale)."""
        ...

    def run(self, work: Callable[[RecordingUnit], T], *, version: int | None = None) -> T:
        """`work(unit)` in a unit of work that commits before this returns `work`'s value; the unit may be shared
        with the works of concurrent requests (group commit, one transaction per batch). A work that raises has
        consumed and recorded nothing and fails alone (its error is raised here); a database error fails every
        work of the batch with UnavailableError (DATABASE_*) and nothing of the batch commits. With `version` (the
        reference-set version the work's appraisal was evaluated at) a recorder that `validates_version` reads
        the version in the unit's transaction where no change can commit before it does (under the audit chain's
        lock) and raises StaleReadError when it moved, nothing of `work` committed (`work` may have run in a
        transaction rolled back, so it must be safe to run again); others ignore it."""
        ...

    def submit(self, work: Callable[[RecordingUnit], T], done: Done[T], *, version: int | None = None) -> None:
        """`run` without waiting: `done(value, None)` or `done(None, error)` is called, from whatever thread ran
        the unit, once it committed or failed (the same outcomes `run` returns or raises). `done` must not raise
        or block. Never raises."""
        ...

    def begin(self) -> AbstractContextManager[RecordingUnit]:
        """Open a unit of work: everything done in it commits when the block ends, and is rolled back (no nonce
        spent, nothing recorded) when the block raises. Opening and committing raise UnavailableError (DATABASE_*);
        a failed commit leaves nothing committed, except that a connection lost during the commit itself leaves
        the outcome unknown."""
        ...


@dataclass(frozen=True)
class NotRecorded:
    """The unit of work of a service built without an appraisal store (tests, tools): `consume` asks the challenge
    store, in that store's own transaction (it is not undone when the unit fails), and `record` keeps nothing."""

    challenges: ChallengeStore | None = None

    validates_version = False

    def run(self, work: Callable[[RecordingUnit], T], *, version: int | None = None) -> T:
        """`work` on this object (nothing to commit; `version` is not checked)."""
        return work(self)

    def submit(self, work: Callable[[RecordingUnit], T], done: Done[T], *, version: int | None = None) -> None:
        """`work` on this object now, its outcome handed to `done`."""
        try:
            value = work(self)
        except Exception as error:  # noqa: BLE001 - handed to the caller's callback, as `run` would raise it
            done(None, error)
        else:
            done(value, None)

    @contextmanager
    def begin(self) -> Iterator[NotRecorded]:
        """This object itself is the unit; there is nothing to commit or roll back."""
        yield self

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        """`ChallengeStore.consume` of the challenge store; UNKNOWN without one (it made no challenge)."""
        if self.challenges is None:
            return ConsumeOutcome.UNKNOWN
        return self.challenges.consume(nonce, at=at)

    def record(self, record: AppraisalRecord) -> None:
        """Keeps nothing."""
