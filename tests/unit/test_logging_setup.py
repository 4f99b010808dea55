"""verifier.logging_setup: the server's log lines read exactly as logging's stock formatter writes them, with the
text of each second made once; the caller lookup other handlers print is left on."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from verifier import logging_setup
from verifier.logging_setup import FORMAT, REQUEST_ID, RequestIdFilter, install_logging


def _record(created: float, message: str = "appraised %s evidence") -> logging.LogRecord:
    record = logging.LogRecord("verifier.service", logging.INFO, "service.py", 1, message, ("nitro",), None)
    record.created, record.msecs = created, (created - int(created)) * 1000 // 1
    record.request_id = "r-1"
    return record


@pytest.mark.parametrize(
    "created",
    [0.0, 1.999, 1_733_000_000.0, 1_733_000_000.5, 1_733_000_000.999, 1_733_000_001.001, 4_102_444_799.123],
)
def test_lines_equal_the_stock_formatter(created: float) -> None:
    ours, stock = logging_setup._SecondFormatter(FORMAT), logging.Formatter(FORMAT)
    for when in (created, created, created + 0.25, created + 1, created):  # cached, then the next second, then back
        record = _record(when)
        assert ours.format(record) == stock.format(record)
    dated = _record(created)
    assert ours.formatTime(dated, "%H:%M") == stock.formatTime(dated, "%H:%M")


def test_threads_never_see_another_seconds_text() -> None:
    ours, stock = logging_setup._SecondFormatter(FORMAT), logging.Formatter(FORMAT)
    failures: list[str] = []

    def run(base: int) -> None:
        for i in range(2000):
            record = _record(base + (i % 3) + 0.5)
            if ours.formatTime(record) != stock.formatTime(record):
                failures.append(ours.formatTime(record))

    threads = [threading.Thread(target=run, args=(1_733_000_000 + 10 * k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_installed_logging_writes_the_request_id_and_keeps_the_caller_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    sink = io.StringIO()
    monkeypatch.setattr("sys.stderr", sink)
    install_logging("INFO")
    assert logging._srcfile is not None  # pytest's and an operator's handlers may print file and line
    handler = root.handlers[0]
    assert any(isinstance(f, RequestIdFilter) for f in handler.filters)
    token = REQUEST_ID.set("req-42")
    try:
        logging.getLogger("verifier.service").info("appraised %s evidence", "snp")
    finally:
        REQUEST_ID.reset(token)
    line = sink.getvalue()
    assert line.endswith(" INFO verifier.service [request_id=req-42] appraised snp evidence\n"), line
