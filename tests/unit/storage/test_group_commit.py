"""Group commit (issue 13 item 4): concurrent units of work share one transaction per batch, a work's own error
fails it alone and gives back what it consumed, a database error fails the whole batch, and every token-bearing
outcome is returned only after its batch committed."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from verifier.challenges import ConsumeOutcome
from verifier.storage import audit
from verifier.storage.appraisals import SqlAppraisalStore, SqlRecording
from verifier.storage.engine import Database
from verifier.storage.group_commit import GroupCommit, Slot

from .recording_helpers import T0, appraisal_record, consumed, live_challenge


class Gate:
    """A batch executor that holds its first batch until released, so that the works queued meanwhile form the
    second batch."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, batch: Sequence[Slot[str]]) -> None:
        self.batches.append([slot.work for slot in batch])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(10)
        for slot in batch:
            try:
                slot.value = slot.call("unit")
            except Exception as error:
                slot.error = error


def _threads(count: int, target: Any) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def test_works_queued_during_a_commit_form_the_next_batch() -> None:
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate)
    results: dict[int, Any] = {}
    first = threading.Thread(target=lambda: results.__setitem__(-1, group.run(lambda unit: ("first", unit))))
    first.start()
    assert gate.entered.wait(10)
    threads = _threads(8, lambda i: results.__setitem__(i, group.run(lambda unit, i=i: i * 10)))
    while len(group._queue) < 8:  # all eight queued behind the first batch
        threading.Event().wait(0.005)
    gate.release.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert results == {-1: ("first", "unit"), **{i: i * 10 for i in range(8)}}
    assert [len(b) for b in gate.batches] == [1, 8] and group.batches == 2 and group.largest == 8
    assert not group._leading and group._queue == []


def test_a_batch_is_bounded() -> None:
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate, max_batch=3)
    first = threading.Thread(target=lambda: group.run(lambda unit: None))
    first.start()
    assert gate.entered.wait(10)
    threads = _threads(7, lambda i: group.run(lambda unit: None))
    while len(group._queue) < 7:
        threading.Event().wait(0.005)
    gate.release.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert [len(b) for b in gate.batches] == [1, 3, 3, 1]


def test_a_work_error_is_its_own_and_a_batch_error_is_everyones() -> None:
    group: GroupCommit[str] = GroupCommit(Gate())
    group._execute.release.set()  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        group.run(lambda unit: {}["missing"])
    assert group.run(lambda unit: 7) == 7

    def broken(batch: Sequence[Slot[str]]) -> None:
        for slot in batch:
            slot.value = "computed, never committed"
        raise ConnectionError("commit failed")

    failing: GroupCommit[str] = GroupCommit(broken)
    with pytest.raises(ConnectionError):
        failing.run(lambda unit: "token")
    assert not failing._leading  # the next caller leads again
    with pytest.raises(ConnectionError):
        failing.run(lambda unit: "token")


def test_each_work_runs_in_its_callers_context() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate)
    seen: dict[int, str] = {}

    def caller(i: int) -> None:
        request_id.set(f"request-{i}")
        group.run(lambda unit: seen.__setitem__(i, request_id.get()))

    first = threading.Thread(target=caller, args=(-1,))
    first.start()
    assert gate.entered.wait(10)
    threads = _threads(4, caller)
    while len(group._queue) < 4:
        threading.Event().wait(0.005)
    gate.release.set()
    for thread in [first, *threads]:
        thread.join(10)
    assert seen == {i: f"request-{i}" for i in range(-1, 4)}


# --- the SQL store ------------------------------------------------------------------------------------------------


def _commits(db: Database) -> list[int]:
    counter = [0]

    def count(_: Session) -> None:
        counter[0] += 1

    event.listen(db._sessions, "after_commit", count)
    return counter


def test_concurrent_appraisals_share_transactions_and_chain_correctly(db: Database) -> None:
    store = SqlAppraisalStore(db)
    commits = _commits(db)
    barrier = threading.Barrier(16)
    ids: list[str] = []

    def appraise(_: int) -> None:
        record = appraisal_record()
        barrier.wait(10)
        store.run(lambda unit: unit.record(record))
        ids.append(record.appraisal_id)

    for thread in _threads(16, appraise):
        thread.join(30)
    transactions = commits[0]
    assert len(ids) == 16
    assert all(store.get(i) is not None for i in ids)
    check = audit.verify_chain(db)
    assert check.ok and check.rows == 16, check
    assert store.group.batches == transactions < 16  # fewer transactions than appraisals


def test_a_failing_work_gives_back_its_nonce_and_the_rest_of_its_batch_commits(db: Database) -> None:
    store = SqlAppraisalStore(db)
    failing_nonce, good_nonce = live_challenge(db), live_challenge(db)
    kept = appraisal_record()

    def fails(unit: SqlRecording) -> None:
        assert unit.consume(failing_nonce, at=T0) is ConsumeOutcome.OK
        unit.record(appraisal_record())
        raise RuntimeError("signing failed")

    def succeeds(unit: SqlRecording) -> ConsumeOutcome:
        outcome = unit.consume(good_nonce, at=T0)
        unit.record(kept)
        return outcome

    outcomes: list[Any] = []

    def execute_both(batch: Sequence[Slot[SqlRecording]]) -> None:  # both works in one batch, failing one first
        store._execute(batch)

    both: GroupCommit[SqlRecording] = GroupCommit(execute_both)
    both._queue.extend([Slot(fails, contextvars.copy_context())])
    outcomes.append(both.run(succeeds))
    assert both.largest == 2
    assert outcomes == [ConsumeOutcome.OK]
    assert not consumed(db, failing_nonce) and consumed(db, good_nonce)
    assert [r["appraisal_id"] for r in store.recent(10)] == [kept.appraisal_id]
    assert audit.verify_chain(db).rows == 1


def test_one_nonce_in_one_batch_is_consumed_once(db: Database) -> None:
    store = SqlAppraisalStore(db)
    nonce = live_challenge(db)
    group: GroupCommit[SqlRecording] = GroupCommit(store._execute)
    outcomes: list[ConsumeOutcome] = []

    def consume(unit: SqlRecording) -> None:
        outcomes.append(unit.consume(nonce, at=T0))
        unit.record(appraisal_record())

    group._queue.extend(Slot(consume, contextvars.copy_context()) for _ in range(3))
    group.run(consume)
    assert group.largest == 4
    assert sorted(o.value for o in outcomes) == sorted(
        [ConsumeOutcome.OK.value] + [ConsumeOutcome.ALREADY_USED.value] * 3
    )
    assert audit.verify_chain(db).rows == 4


def test_a_database_error_fails_the_whole_batch_and_commits_nothing(db: Database) -> None:
    store = SqlAppraisalStore(db)
    nonce = live_challenge(db)
    group: GroupCommit[SqlRecording] = GroupCommit(store._execute)
    duplicate = appraisal_record()

    def consume(unit: SqlRecording) -> str:
        unit.consume(nonce, at=T0)
        unit.record(appraisal_record())
        return "token"

    def collides(unit: SqlRecording) -> str:
        unit.record(duplicate)
        unit.record(duplicate)  # same primary key twice: the INSERT fails
        return "token"

    queued = Slot(consume, contextvars.copy_context())
    group._queue.append(queued)
    with pytest.raises(Exception) as info:
        group.run(collides)
    assert queued.error is info.value  # the other work of the batch got the same error and no value
    assert queued.value is None
    assert not consumed(db, nonce) and store.recent(10) == [] and audit.verify_chain(db).rows == 0
