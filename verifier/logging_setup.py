"""Process logging: every record carries the request id of the RPC that produced it (or "-")."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any, TextIO

from .ids import uuid7

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("verifier_request_id", default=None)
FORMAT = "%(asctime)s %(levelname)s %(name)s [request_id=%(request_id)s] %(message)s"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # fits the appraisals.request_id column


def current_request_id() -> str | None:
    return REQUEST_ID.get()


def accept_request_id(candidate: str | None) -> str:
    """A caller-supplied id if it is short and log-safe, else a fresh UUIDv7 (`verifier.ids`: ids minted close in
    time sit side by side in `appraisals.request_id`'s index)."""
    if candidate and _VALID_ID.match(candidate):
        return candidate
    return uuid7()


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id`; attach it to handlers so records of every logger get it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get() or "-"
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (so a replaced or captured stderr is never stale)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _SecondFormatter(logging.Formatter):
    """`FORMAT` with the default asctime (local time, `YYYY-MM-DD HH:MM:SS,mmm`), the text of each second made once:
    a busy server logs many records per second (one per appraisal)."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached = self._second  # one tuple read: threads may race to make the same text, never a torn pair
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second)))
            self._second = cached
        return "%s,%03d" % (cached[1], record.msecs)  # noqa: UP031 - logging.Formatter.default_msec_format


def install_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once: one stderr handler with the request-id filter and format. `FORMAT` names
    no thread, process or process name, so records do not look them up (a `getpid` system call per record). The
    caller's file and line are still looked up (`logging._srcfile` is left alone: other handlers, pytest's among
    them, print them)."""
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for handler in root.handlers:
        if any(isinstance(f, RequestIdFilter) for f in handler.filters):
            return
    handler = _StderrHandler()
    handler.setFormatter(_SecondFormatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
