"""Human output of the CLI: aligned tables (JSON is `print_json` in .common, behind each command's `--json`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    return text.replace("\n", " ").replace("\t", " ")


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] = ()) -> str:
    """`rows` as an aligned table of `columns` (missing values as `-`), one header line first (`headers`, default
    the column names upper-cased). The last column is not padded. Raises ValueError when `headers` is given with
    another length than `columns`."""
    if headers and len(headers) != len(columns):
        raise ValueError("one header per column")
    titles = list(headers) if headers else [name.upper() for name in columns]
    cells = [[_cell(row.get(name)) for name in columns] for row in rows]
    widths = [max([len(title), *(len(line[i]) for line in cells)]) for i, title in enumerate(titles)]
    lines = []
    for line in [titles, *cells]:
        padded = [text.ljust(widths[i]) for i, text in enumerate(line[:-1])]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], headers: Sequence[str] = (), out: TextIO | None = None
) -> None:
    """Write `format_table(rows, columns, headers)` to `out` (stdout by default)."""
    (out or sys.stdout).write(format_table(rows, columns, headers))


def progress(done: int, total: int, what: str, out: TextIO | None = None, *, step: int = 1) -> None:
    """`what: done/total` on stderr, rewritten in place on a terminal and one line per 10 % otherwise (so that
    logs of a long operation stay short); nothing when `total` is 0. `step`: how far `done` moved since the last
    call (a caller that reports once per batch), so that no 10 % line is skipped."""
    stream = out or sys.stderr
    if total <= 0:
        return
    if stream.isatty():
        stream.write(f"\r{what}: {done}/{total}" + ("\n" if done >= total else ""))
        stream.flush()
    elif done >= total or (done * 10 // total) != ((done - max(1, step)) * 10 // total):
        stream.write(f"{what}: {done}/{total}\n")


def format_fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """`pairs` as aligned `name  value` lines (no header; values as in tables, None as `-`). Never raises."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "".join(f"{name.ljust(width)}  {_cell(value)}".rstrip() + "\n" for name, value in pairs)


def print_fields(pairs: Sequence[tuple[str, Any]], out: TextIO | None = None) -> None:
    """Write `format_fields(pairs)` to `out` (stdout by default)."""
    (out or sys.stdout).write(format_fields(pairs))
