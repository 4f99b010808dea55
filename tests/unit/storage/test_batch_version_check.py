"""The group commit checks the reference-set version where no change can commit before the batch does: under the
audit chain's lock, in the statement that reads the chain's head (`audit.append_many_at_version`), SQLite and
PostgreSQL. A change committed after a batch began (here: by another unit of work while the batch's works run) is
seen there; the batch is rolled back and run again, the works evaluated at the version it replaced failing with
StaleReadError and nothing of them committed (their nonces unused). On the code before, the version was read when
the batch's transaction began and such a batch committed under the replaced version."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import Any

from verifier.challenges import ConsumeOutcome
from verifier.recording import StaleReadError
from verifier.storage import audit
from verifier.storage.appraisals import VERSION_TRIES, SqlAppraisalStore, SqlRecording
from verifier.storage.engine import Database
from verifier.storage.group_commit import GroupCommit, Slot

from .recording_helpers import T0, appraisal_record, consumed, live_challenge


def _bump(db: Database) -> int:
    """A reference-set change committed by another unit of work (another replica, an admin)."""
    with db.session() as session:
        return audit.bump_reference_set(session, T0)


def _version(db: Database) -> int:
    return audit.reference_set_version(db)


def _work(nonce: bytes, runs: list[int], before: Callable[[], object] = lambda: None) -> Callable[[SqlRecording], Any]:
    def work(unit: SqlRecording) -> ConsumeOutcome:
        runs.append(1)
        before()  # before this unit writes: on SQLite a change committed later would wait for the batch
        outcome = unit.consume(nonce, at=T0)
        unit.record(appraisal_record())
        return outcome

    return work


def test_a_batch_at_the_current_version_commits(db: Database) -> None:
    store, version = SqlAppraisalStore(db), _bump(db)
    nonce, runs = live_challenge(db), list[int]()
    assert store.run(_work(nonce, runs), version=version) is ConsumeOutcome.OK
    assert runs == [1] and consumed(db, nonce) and len(store.recent(10)) == 1


def _batch(store: SqlAppraisalStore, queued: Sequence[Slot[SqlRecording]], last: Callable[[SqlRecording], Any]) -> Any:
    """Run `queued` and then `last` in one batch (`last` through `run`, which leads); returns `last`'s value."""
    group: GroupCommit[SqlRecording] = GroupCommit(store._execute)
    group._queue.extend(queued)
    value = group.run(last)
    assert group.largest == len(queued) + 1
    return value


def test_a_change_committed_while_the_batch_runs_fails_its_stale_work_and_commits_the_rest(db: Database) -> None:
    store, old = SqlAppraisalStore(db), _bump(db)
    stale_nonce, fresh_nonce = live_challenge(db), live_challenge(db)
    stale_runs, fresh_runs, changes = list[int](), list[int](), list[int]()

    def change_once() -> None:
        if not changes:
            changes.append(_bump(db))

    stale = Slot(_work(stale_nonce, stale_runs, change_once), contextvars.copy_context(), old)
    assert _batch(store, [stale], _work(fresh_nonce, fresh_runs)) is ConsumeOutcome.OK  # asked for no check
    assert changes == [old + 1]
    assert isinstance(stale.error, StaleReadError) and stale.value is None
    assert stale_runs == [1] and fresh_runs == [1, 1]  # the stale work is not run again at the version it missed
    assert not consumed(db, stale_nonce) and consumed(db, fresh_nonce)  # the first run was rolled back
    assert len(store.recent(10)) == 1
    check = audit.verify_chain(db)
    assert check.ok and check.rows == 1


def _recording(runs: list[int], before: Callable[[], object] = lambda: None) -> Callable[[SqlRecording], Any]:
    def work(unit: SqlRecording) -> None:
        runs.append(1)
        before()
        unit.record(appraisal_record())

    return work


def test_a_version_that_keeps_moving_fails_every_checked_work_after_the_last_run(db: Database) -> None:
    store, version = SqlAppraisalStore(db), _bump(db)
    changing, older, newer, unchecked = list[int](), list[int](), list[int](), list[int]()
    slots = [
        Slot(_recording(changing, lambda: _bump(db)), contextvars.copy_context()),  # a change in every run
        Slot(_recording(older), contextvars.copy_context(), version),
        Slot(_recording(newer), contextvars.copy_context(), version + 1),
    ]
    _batch(store, slots, _recording(unchecked))
    assert isinstance(slots[1].error, StaleReadError) and isinstance(slots[2].error, StaleReadError)
    assert len(older) == 1 and len(newer) == VERSION_TRIES - 1  # the last run runs no work that asked for a check
    assert len(changing) == len(unchecked) == VERSION_TRIES and _version(db) == version + VERSION_TRIES
    assert len(store.recent(10)) == 2  # the last run's unchecked works
    check = audit.verify_chain(db)
    assert check.ok and check.rows == 2
