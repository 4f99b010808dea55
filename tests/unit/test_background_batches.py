"""Best-effort work in batches (issue 13 item 4): items queued back to back for one handler reach it together, so
the server writes the kept evidence of many appraisals in one transaction; a plain work between them keeps its
place in the queue."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.service_helpers import make_harness
from verifier.appraisal.model import Appraisal, Tier, TrustVector
from verifier.background import BestEffortWorker
from verifier.keeping import keep_after
from verifier.reference_values.kept import KeepItem
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import SqlKeptEvidence

T0 = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def test_items_queued_meanwhile_reach_their_handler_together_in_order() -> None:
    worker = BestEffortWorker("test-batches")
    gate, calls = threading.Event(), []

    def handler(items: list[Any]) -> None:
        calls.append(("batch", items))

    try:
        worker.submit(lambda: gate.wait(5) and None)  # type: ignore[func-returns-value]
        for i in range(5):
            assert worker.submit_batched(handler, i)
        worker.submit(lambda: calls.append(("plain", None)))
        assert worker.submit_batched(handler, 5)
        gate.set()
        assert worker.join(timeout=5)
        assert calls == [("batch", [0, 1, 2, 3, 4]), ("plain", None), ("batch", [5])]
    finally:
        worker.close()


def test_a_failing_batch_is_logged_and_the_worker_goes_on() -> None:
    worker = BestEffortWorker("test-batch-fail")
    done: list[int] = []

    def broken(items: list[Any]) -> None:
        raise RuntimeError("boom")

    try:
        worker.submit_batched(broken, 1)
        worker.submit(lambda: done.append(1))
        assert worker.join(timeout=5) and done == [1]
    finally:
        worker.close()


def _item(evidence: bytes, appraisal: str, size: int = 0) -> KeepItem:
    collateral = {"big.bin": bytes(size)} if size else {}
    return KeepItem(T0, "nitro", evidence, collateral, "default", "affirming", appraisal, "nitro pcr0 00")


def test_keep_many_writes_its_rows_in_one_transaction_and_keeps_repeats_once(db: Database) -> None:
    kept = SqlKeptEvidence(db)
    commits = [0]

    def count(_: Session) -> None:
        commits[0] += 1

    kept.keep_many([_item(b"warm-up", "a0")])  # the first keep of a process also prunes
    event.listen(db._sessions, "after_commit", count)
    try:
        ids = kept.keep_many(
            [_item(b"one", "a1"), _item(b"two", "a2"), _item(b"one", "a3"), _item(b"big", "a4", size=1 << 20)]
        )
    finally:
        event.remove(db._sessions, "after_commit", count)
    assert commits == [1]
    assert ids[0] is not None and ids[1] is not None and ids[2] == ids[0] and ids[3] is None
    assert sorted(e.appraisal_id for e in kept.recent(10)) == ["a0", "a1", "a2"]
    assert kept.keep(**_item(b"two", "a5").__dict__) == ids[1]  # remembered across calls too


def test_the_service_keeps_the_evidence_of_appraisals_queued_together_in_one_transaction(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    kept, worker, gate = SqlKeptEvidence(db), BestEffortWorker("test-service-keep"), threading.Event()
    service = dataclasses.replace(h.service, kept=kept, background=worker)
    commits = [0]

    def count(_: Session) -> None:
        commits[0] += 1

    try:
        service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))  # the first keep also prunes
        assert worker.join(timeout=5)
        worker.submit(lambda: gate.wait(5) and None)  # type: ignore[func-returns-value]
        results = [service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())) for _ in range(4)]
        event.listen(db._sessions, "after_commit", count)
        gate.set()
        assert worker.join(timeout=5)
        event.remove(db._sessions, "after_commit", count)
        assert commits == [1]  # four appraisals' evidence, one transaction
        assert {r.appraisal_id for r in results} <= {e.appraisal_id for e in kept.recent(10)}
    finally:
        gate.set()
        worker.close()


def test_evidence_already_kept_queues_nothing(db: Database) -> None:
    """Repeated evidence (a retry, a cached report) is deduplicated before anything is queued: no background work
    for it at all, and the kept row stays the first one's."""
    kept = SqlKeptEvidence(db)
    at = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    item = KeepItem(at, "nitro", b"evidence", {}, "default", "affirming", "a" * 36, "nitro")
    assert not kept.already_kept(b"evidence", at)
    (first,) = kept.keep_many([item])
    assert kept.already_kept(b"evidence", at + dt.timedelta(hours=1))
    assert not kept.already_kept(b"other", at)
    assert not kept.already_kept(b"evidence", at + dt.timedelta(days=kept.max_days + 1))  # kept again after max_days
    assert SqlKeptEvidence(db, max_rows=0).already_kept(b"anything", at)  # keeping off: never anything to queue
    queued: list[object] = []

    class Recording:
        def submit_batched(self, fn: object, entry: object) -> None:
            queued.append(entry)

    request = AppraisalRequest(tee="nitro", evidence=b"evidence")
    appraisal = Appraisal("nitro", Tier.AFFIRMING, TrustVector(), {}, (), "default")
    keep_after(kept, Recording(), request, "nitro", appraisal, "b" * 36, at)  # type: ignore[arg-type]
    assert queued == [] and first is not None
    fresh = AppraisalRequest(tee="nitro", evidence=b"new")
    keep_after(kept, Recording(), fresh, "nitro", appraisal, "c" * 36, at)  # type: ignore[arg-type]
    assert len(queued) == 1
