"""RSS after N appraisals (issue 13: under 150 MB after 100k, no growth after warm-up): one `verifier serve`
(1 worker) on a fresh database driven with `total` appraisals by the same client code as the other rows (a fixed
count instead of a fixed time). The server's RSS (VmRSS from /proc, largest process of its tree) is read every
quarter second while the load runs; under load it moves by a few MB with the calls in flight, so the warm-up figure
is the largest reading over the twentieth of the run that follows the first `warmup` appraisals, the end figure the
largest over the last twentieth, and growth the one less the other. The slope (least squares over every reading
after warm-up) tells a steady leak from one step; the readings at each twentieth, the RSS once the load has
stopped and the peak (VmHWM) are kept too.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .clients import run_count
from .procstat import rss_mb, tree
from .servers import database, prepare, start_service
from .vectors import Vector, request_bytes

STEPS = 20
# "No growth" is met when the RSS after the last appraisal is at most this much above the warm-up sample:
# allocator arenas and free lists move by a few MB without any leak.
GROWTH_TOLERANCE_MB = 5.0


def default_warmup(total: int) -> int:
    """5,000 appraisals, or a fifth of a smaller run."""
    return min(5000, total // 5)


def _peak_mb(roots: list[int]) -> float | None:
    """The largest VmHWM (peak resident set) of the tree, in MB."""
    peaks = []
    for pid in tree(roots):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        peaks += [int(line.split()[1]) / 1024 for line in lines if line.startswith("VmHWM:")]
    return max(peaks, default=None)


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares MB per 10k appraisals over (appraisals, MB) points."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 10_000


def run_rss(
    vector: Vector,
    db: str,
    *,
    total: int,
    warmup: int,
    clients: int,
    processes: int,
    pg_url: str,
    workdir: Path,
    workers_flag: bool,
    progress: Any,
) -> dict[str, Any]:
    """The RSS row: samples, the figures of the whole load and the warm-up / end / growth summary."""
    message = request_bytes(vector)
    step = max(1, (total - warmup) // STEPS)
    marks = sorted({warmup, *range(warmup + step, total, step), total})
    readings: list[tuple[int, float]] = []  # (appraisals answered, MB), every progress call after warm-up
    samples: list[dict[str, Any]] = []  # the readings at each mark
    with database(db, workdir, pg_url) as bench_db:
        prepare(bench_db.url, vector)
        server = start_service(vector, bench_db.url, 1, workdir, workers_flag=workers_flag)
        began = time.monotonic()

        def on_progress(answered: int) -> None:
            if answered < warmup:
                return
            sizes = rss_mb(server.roots)
            if not sizes:
                return
            readings.append((answered, max(sizes.values())))
            if marks and answered >= marks[0]:
                while marks and answered >= marks[0]:
                    marks.pop(0)
                samples.append({"appraisals": answered, "seconds": time.monotonic() - began, "rss_mb": readings[-1][1]})
                progress(f"rss {vector.tee} {db}: {answered:>7} appraisals, RSS {readings[-1][1]:.1f} MB")

        try:
            figures = run_count(
                server.port,
                message,
                clients,
                total,
                processes=processes,
                server=server.roots,
                on_progress=on_progress,
            )
            idle = rss_mb(server.roots)
            peak = _peak_mb(server.roots)
        finally:
            server.stop()
    under_load = readings[:-1]  # the last reading is taken once every call has been answered
    first = [mb for n, mb in under_load if n < warmup + step]
    last = [mb for n, mb in under_load if n >= total - step]
    warm, end = max(first, default=None), max(last, default=None)
    growth = None if warm is None or end is None else end - warm
    result = {
        "tee": vector.tee,
        "db": db,
        "workers": 1,
        "total": total,
        "warmup": warmup,
        **figures,
        "samples": samples,
        "readings": len(readings),
        "rss_warmup_mb": warm,
        "rss_warmup_window": [warmup, warmup + step],
        "rss_end_mb": end,
        "rss_end_window": [total - step, total],
        "rss_idle_mb": max(idle.values(), default=None),
        "rss_peak_mb": peak,
        "growth_mb": growth,
        "growth_percent": None if growth is None or not warm else growth / warm * 100,
        "slope_mb_per_10k": _slope(under_load),
        "growth_tolerance_mb": GROWTH_TOLERANCE_MB,
    }
    progress(
        f"rss {vector.tee} {db}: {figures['appraisals']} affirmed in {figures['seconds']:.0f} s "
        f"({figures['rate']:.1f}/s), RSS {warm or 0:.1f} MB after warm-up, {end or 0:.1f} MB at the end"
    )
    return result
