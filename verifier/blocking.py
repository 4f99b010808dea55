"""Knowing when work would block: the guard that lets the server appraise on its event loop (issue 13 item 3).

The gRPC server first tries an appraisal's evaluation (steps 1-8) inline on its event loop, where nearly every
appraisal is pure CPU work (parsing, signature checks with cached chains, matching against the in-memory
snapshot), and hands nothing to a thread: a hop to a worker thread and back costs more CPU than the appraisal's
database work (measured in `benchmarks/side_by_side.py`). Whatever could wait on the outside world (a database
statement, a collateral fetch that is not a memory hit, an HTTP request, a file read) first calls `would_block`.
Outside `no_blocking` that does nothing. Inside it, it marks the guard and raises `WouldBlockError`; the caller
then discards whatever the evaluation produced (the flag is checked, so an error handler that swallowed the
exception on the way changes nothing) and runs the appraisal the ordinary way, in a worker thread of its lane.

The guard lives in a context variable: it covers the synchronous call made inside the block and nothing run in
another thread or task."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["Guard", "WouldBlockError", "no_blocking", "would_block"]


class WouldBlockError(Exception):
    """Raised by `would_block` inside `no_blocking`: the work asked for I/O. Never leaves the server's inline
    appraisal path (it falls back to a worker thread)."""


@dataclass
class Guard:
    """What `no_blocking` yields: `blocked` names the first blocking operation attempted inside it, or is None."""

    blocked: str | None = None


_GUARD: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("verifier_no_blocking", default=None)


def would_block(what: str) -> None:
    """Called before an operation that may wait on I/O (`what` names it). Inside `no_blocking`: marks the guard
    and raises WouldBlockError. Elsewhere: returns at once."""
    guard = _GUARD.get()
    if guard is not None:
        if guard.blocked is None:
            guard.blocked = what
        raise WouldBlockError(f"{what} would block")


@contextmanager
def no_blocking() -> Iterator[Guard]:
    """Run the block with `would_block` armed; yields the guard to check afterwards. A nested block has a guard of
    its own: what blocks inside it marks that one only. Never raises."""
    guard = Guard()
    token = _GUARD.set(guard)
    try:
        yield guard
    finally:
        _GUARD.reset(token)
