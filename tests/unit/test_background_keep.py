"""Issue 11 item 7: optional work never delays an answer. Keeping evidence ran inline after the appraisal was
recorded, so a keeper stuck on a busy database (SQLite's busy timeout: up to 30 s) held the answer back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Sequence

from tests.service_helpers import make_harness
from verifier.appraisal.model import Tier
from verifier.background import BestEffortWorker
from verifier.reference_values.kept import KeepItem
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database


class StuckKeeper:
    """Blocks every keep until released (a database lock held elsewhere)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.kept: list[str] = []

    def already_kept(self, evidence: bytes, at: dt.datetime) -> bool:
        return False

    def keep_many(self, items: Sequence[KeepItem]) -> list[str | None]:
        assert self.release.wait(timeout=10)
        self.kept.extend(item.appraisal_id for item in items)
        return [item.appraisal_id for item in items]


def test_a_stuck_keeper_does_not_delay_the_answer(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    keeper, worker = StuckKeeper(), BestEffortWorker("test-keep", max_pending=2)
    service = dataclasses.replace(h.service, kept=keeper, background=worker)
    try:
        started = time.monotonic()
        results = [service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())) for _ in range(4)]
        assert time.monotonic() - started < 8  # the keeper waits up to 10 s per call: none of that is waited for
        assert all(r.appraisal.status is Tier.AFFIRMING for r in results)
        assert worker.dropped >= 1  # a full queue drops the optional work instead of growing
        keeper.release.set()
        assert worker.join(timeout=5)
        assert set(keeper.kept) <= {r.appraisal_id for r in results} and keeper.kept
    finally:
        keeper.release.set()
        worker.close(timeout=5)


def test_work_that_fails_is_logged_and_the_worker_keeps_going() -> None:
    worker = BestEffortWorker("test-fail")
    done: list[int] = []
    try:
        assert worker.submit(lambda: 1 / 0 and None)  # type: ignore[func-returns-value]
        assert worker.submit(lambda: done.append(1))
        assert worker.join(timeout=5) and done == [1]
    finally:
        worker.close()
