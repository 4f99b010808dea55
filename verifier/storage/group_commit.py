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
durable.

A caller that must not block (the server's event loop, `verifier.blocking`) hands its work to `submit` with a
callback instead: the group's own committer thread leads whenever such a work is first in line, and the callback
runs (in that thread) once the work's batch ended, with the slot's `value` or `error` set. Blocking and submitted
works share the same queue and batches."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

U = TypeVar("U")  # what a work is handed: the batch's unit of work
T = TypeVar("T")

DEFAULT_MAX_BATCH = 64
log = logging.getLogger(__name__)


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
    done: Callable[[Slot[U]], None] | None = None  # a submitted work's callback (no thread waits for it)

    def call(self, unit: U) -> Any:
        """The work on `unit` in its caller's context."""
        return self.context.run(self.work, unit)


def _call_done(slot: Slot[U]) -> None:
    """A submitted work's callback; one that raises (a bug) is logged and never stops the batch's wake-ups."""
    assert slot.done is not None
    try:
        slot.done(slot)
    except Exception:  # every other slot of the batch must still be woken
        log.exception("group commit: a completion callback raised")


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
        self._committer: threading.Thread | None = None  # leads for submitted works (started by the first)
        self._commit_wake = threading.Event()

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

    def submit(self, work: Callable[[U], Any], done: Callable[[Slot[U]], None], *, version: int | None = None) -> None:
        """Queue `work` without waiting: `done(slot)` is called (in the thread that ran the batch) once its batch's
        transaction ended, with `slot.value` or `slot.error` set as `run` would return or raise them. `done` must
        not raise or block. Never raises."""
        slot: Slot[U] = Slot(work, contextvars.copy_context(), version, done=done)
        with self._lock:
            self._queue.append(slot)
            start = not self._leading
            if start:
                self._leading = slot.lead = True
        if start:
            self._wake_committer()

    def _wake_committer(self) -> None:
        """Have the committer thread lead (started on first use; a daemon: a batch stuck in a silent database
        never holds the process's exit, as the lanes' threads do not)."""
        if self._committer is None:
            with self._lock:
                if self._committer is None:
                    self._committer = threading.Thread(target=self._commit_loop, name="group-commit", daemon=True)
                    self._committer.start()
        self._commit_wake.set()

    def _commit_loop(self) -> None:
        """Lead while a submitted work is first in line; sleep otherwise."""
        while True:
            self._commit_wake.wait()
            self._commit_wake.clear()
            while True:
                with self._lock:
                    head = self._queue[0] if self._queue else None
                if head is None or head.done is None or not head.lead:
                    break
                self._lead()

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
            successor = None
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                else:
                    self._leading = False
            if successor is not None and successor.done is None:
                successor.wake.set()  # woken to lead: its own work is still queued
            elif successor is not None and threading.current_thread() is not self._committer:
                self._wake_committer()  # a submitted work is next: the committer leads (it loops when it led)
            for slot in batch:
                slot.lead, slot.finished = False, True
                if slot.done is not None:
                    _call_done(slot)
                else:
                    slot.wake.set()
