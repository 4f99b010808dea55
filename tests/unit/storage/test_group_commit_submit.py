"""Group commit without a waiting thread (`GroupCommit.submit`, the server's event loop): a submitted work shares
the queue and batches of blocking ones, its callback gets the outcome only after its batch ended (committed or
not), the committer thread leads whenever a submitted work is first in line, and a raising callback (a bug) never
stops the wake-ups of the rest of its batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from tests.unit.storage.test_group_commit import Gate
from verifier.storage.group_commit import GroupCommit, Slot


class Outcomes:
    """Callbacks that record (value, error, the thread they ran in) per work; `all` is set once `expected` came."""

    def __init__(self) -> None:
        self.got: dict[int, tuple[Any, BaseException | None, str]] = {}
        self.all = threading.Event()
        self.expected = 0

    def callback(self, index: int) -> Any:
        def done(slot: Slot[str]) -> None:
            self.got[index] = (slot.value, slot.error, threading.current_thread().name)
            if len(self.got) == self.expected:
                self.all.set()

        return done


def test_a_submitted_work_runs_in_the_committer_thread_and_reports_once_done() -> None:
    batches: list[int] = []

    def execute(batch: Sequence[Slot[str]]) -> None:
        batches.append(len(batch))
        for slot in batch:
            slot.value = slot.call("unit")

    group: GroupCommit[str] = GroupCommit(execute)
    outcomes = Outcomes()
    outcomes.expected = 1
    group.submit(lambda unit: ("done in", unit, threading.current_thread().name), outcomes.callback(0))
    assert outcomes.all.wait(10)
    value, error, thread = outcomes.got[0]
    assert error is None and value == ("done in", "unit", "group-commit") and thread == "group-commit"
    assert batches == [1]


def test_submitted_and_blocking_works_share_batches_and_every_one_finishes() -> None:
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate)
    outcomes = Outcomes()
    outcomes.expected = 6  # the first, four submitted behind it, the last (the blocking four return to `run`)
    group.submit(lambda unit: "first", outcomes.callback(-1))  # the committer leads and is held by the gate
    assert gate.entered.wait(10)
    for index in range(4):
        group.submit(lambda unit, i=index: i, outcomes.callback(index))
    results: dict[int, Any] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, group.run(lambda unit, i=i: i * 10)))
        for i in range(4, 8)
    ]
    for thread in threads:
        thread.start()
    while len(group._queue) < 8:
        threading.Event().wait(0.01)
    group.submit(lambda unit: "last", outcomes.callback(8))
    gate.release.set()
    assert outcomes.all.wait(10)
    for thread in threads:
        thread.join(10)
    assert {i: outcomes.got[i][0] for i in range(4)} == {0: 0, 1: 1, 2: 2, 3: 3}
    assert results == {4: 40, 5: 50, 6: 60, 7: 70}
    assert outcomes.got[-1][0] == "first" and outcomes.got[8][0] == "last"
    assert len(gate.batches) == 2 and len(gate.batches[1]) == 9  # everything queued meanwhile: one batch


def test_a_blocking_leader_hands_a_submitted_successor_to_the_committer() -> None:
    gate = Gate()
    group: GroupCommit[str] = GroupCommit(gate)
    outcomes = Outcomes()
    outcomes.expected = 1
    results: list[Any] = []
    leader = threading.Thread(target=lambda: results.append(group.run(lambda unit: "blocking")))
    leader.start()
    assert gate.entered.wait(10)
    group.submit(lambda unit: "submitted", outcomes.callback(0))
    gate.release.set()
    leader.join(10)
    assert outcomes.all.wait(10)
    assert results == ["blocking"]
    assert outcomes.got[0][:2] == ("submitted", None) and outcomes.got[0][2] == "group-commit"


def test_errors_reach_the_callback_and_a_raising_callback_stops_nothing() -> None:
    def execute(batch: Sequence[Slot[str]]) -> None:
        for slot in batch:
            try:
                slot.value = slot.call("unit")
            except Exception as error:
                slot.error = error

    gate_batch = threading.Event()
    group: GroupCommit[str] = GroupCommit(execute)
    outcomes = Outcomes()
    outcomes.expected = 2

    def boom(unit: str) -> None:
        raise ValueError("the work's own error")

    def bad_callback(slot: Slot[str]) -> None:
        gate_batch.set()
        raise RuntimeError("a buggy callback")

    group.submit(boom, outcomes.callback(0))
    group.submit(lambda unit: "after", bad_callback)
    group.submit(lambda unit: "still", outcomes.callback(1))
    assert outcomes.all.wait(10) and gate_batch.is_set()
    assert isinstance(outcomes.got[0][1], ValueError) and outcomes.got[0][0] is None
    assert outcomes.got[1][:2] == ("still", None)


def test_a_batch_error_fails_every_submitted_work_of_the_batch() -> None:
    def execute(batch: Sequence[Slot[str]]) -> None:
        raise ConnectionError("database gone")

    group: GroupCommit[str] = GroupCommit(execute)
    outcomes = Outcomes()
    outcomes.expected = 1
    group.submit(lambda unit: "never", outcomes.callback(0))
    assert outcomes.all.wait(10)
    assert outcomes.got[0][0] is None and isinstance(outcomes.got[0][1], ConnectionError)
