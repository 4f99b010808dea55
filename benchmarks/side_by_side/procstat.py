"""CPU time and resident memory of a server process tree, from /proc (Linux)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def tree(roots: Iterable[int]) -> list[int]:
    """`roots` and every live descendant (workers forked or spawned by a server)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    pending = [pid for pid in roots if _stat_fields(pid) is not None]
    while pending:
        pid = pending.pop()
        if pid not in found:
            found.append(pid)
            pending.extend(children.get(pid, []))
    return sorted(found)


def cpu_by_pid(pids: Iterable[int]) -> dict[int, float]:
    """utime + stime of each live process (every thread), in seconds."""
    times: dict[int, float] = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            times[pid] = (int(fields[11]) + int(fields[12])) / TICKS  # stat fields 14 (utime) and 15 (stime)
    return times


def cpu_seconds(roots: Iterable[int]) -> float:
    """utime + stime of the tree rooted at `roots`, in seconds."""
    return sum(cpu_by_pid(tree(roots)).values())


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two `cpu_by_pid` readings by the processes of the second (one that appeared in
    between counts from zero; one that ended in between is lost)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def rss_mb(roots: Iterable[int]) -> dict[int, float]:
    """VmRSS of each process of the tree, in MB (MiB)."""
    sizes: dict[int, float] = {}
    for pid in tree(roots):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("VmRSS:"):
                sizes[pid] = int(line.split()[1]) / 1024
    return sizes
