"""Group commit: the units of work of concurrent requests share one database transaction (issue 13 item 4).

A request hands its work to `GroupCommit.run` and blocks. One of the waiting threads is the leader: it takes every
work queued so far (at most `max_batch`), runs them all in one transaction through `execute`, and when that
transaction ended (committed or not) wakes the others with their own outcome and hands leadership to the oldest
work still queued. So a batch is whatever arrived while the previous batch was committing: one work alone at low
load (no added wait), many at high load, where the commit (an fsync on SQLite, a round trip and a WAL flush on
PostgreSQL) and the audit chain's lock are paid once per batch instead of once per appraisal. No timer closes a
batch: a fixed wait would add its length to every answer at low load and gain nothing at high load, where the
commit in progress already collects the next batch.

Each work runs in the leader's thread within a copy of its own caller's `contextvars` (request ids in logs stay
right). `execute` decides what a failure means: a work's own error fails that work alone; a database error fails
the whole batch, and every work in it sees that error, nothing of the batch committed. A work's outcome is
returned only after its batch's transaction ended, so nothing a work produced (a token) leaves before it is
durable."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

U = TypeVar("U")  # what a work is handed: the batch's unit of work
T = TypeVar("T")

DEFAULT_MAX_BATCH = 64


@dataclass
class Slot(Generic[U]):
    """One queued work and, once its batch ended, its outcome (`value` or `error`)."""

    work: Callable[[U], Any]
    context: contextvars.Context
    version: int | None = None  # the reference-set version the work was evaluated at, to be checked (or None)
    value: Any = None
    error: BaseException | None = None
    wake: threading.Event = field(default_factory=threading.Event)  # set when finished or asked to lead
    lead: bool = False
    finished: bool = False

    def call(self, unit: U) -> Any:
        """The work on `unit` in its caller's context."""
        return self.context.run(self.work, unit)


class GroupCommit(Generic[U]):
    """Batches works of concurrent threads into one `execute(batch)` call per transaction (module docstring).

    `execute` must set `value` or `error` on every slot it is given and may raise; what it raises becomes the error
    of every slot of the batch that has no error yet."""

    def __init__(self, execute: Callable[[Sequence[Slot[U]]], None], *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._execute = execute
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[Slot[U]] = []
        self._leading = False
        self.batches = 0  # batches executed (tests, diagnostics)
        self.largest = 0  # the largest batch so far

    def run(self, work: Callable[[U], T], *, version: int | None = None) -> T:
        """`work(unit)` in some batch's transaction; returns its value after that transaction committed, or raises
        its error (the work's own, or the batch's database error: UnavailableError DATABASE_*). `version` is
        handed to `execute` on the slot."""
        slot: Slot[U] = Slot(work, contextvars.copy_context(), version)
        with self._lock:
            self._queue.append(slot)
            if not self._leading:
                self._leading = slot.lead = True
        if not slot.lead:
            slot.wake.wait()
        while slot.lead and not slot.finished:  # first in line, or handed leadership by the previous leader
            self._lead()
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    def _lead(self) -> None:
        """Run one batch (this thread's own work is in it), then wake its works and pass leadership on."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            self._execute(batch)
        except BaseException as error:  # noqa: BLE001 - handed to every work of the batch, raised in each caller
            for slot in batch:
                if slot.error is None:
                    slot.error, slot.value = error, None
        finally:
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()  # woken to lead: its own work is still queued
                else:
                    self._leading = False
            for slot in batch:
                slot.lead, slot.finished = False, True
                slot.wake.set()
