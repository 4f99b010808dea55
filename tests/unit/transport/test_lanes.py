"""Bounded executors per kind of work (transport/grpc/lanes.py)."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import threading
import time

import pytest

from verifier.errors import ConfigError, OverloadedError
from verifier.transport.grpc.lanes import Lane, LaneLimits, Lanes

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_full_lane_refuses_at_once_and_frees_its_slots() -> None:
    lane = Lane("appraise", LaneLimits(threads=1, queue=1))
    release = threading.Event()

    async def scenario() -> None:
        held = [asyncio.ensure_future(lane.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(OverloadedError) as refused:
            await lane.run(lambda: None)
        assert time.monotonic() - started < 1
        assert refused.value.code == "SERVER_BUSY" and refused.value.retry_after
        release.set()
        assert await asyncio.gather(*held) == [True, True]
        assert lane.admitted == 0
        assert await lane.run(lambda: 42) == 42

    asyncio.run(scenario())
    lane.close()


def test_lanes_are_independent_and_carry_context() -> None:
    lanes = Lanes({"slow": LaneLimits(1, 4), "fast": LaneLimits(1, 4)})
    release = threading.Event()

    async def scenario() -> None:
        stuck = asyncio.ensure_future(lanes["slow"].run(release.wait, 10))
        VAR.set("request-7")
        assert await asyncio.wait_for(lanes["fast"].run(VAR.get), 2) == "request-7"
        release.set()
        await stuck

    asyncio.run(scenario())
    lanes.close()


def test_errors_reach_the_caller() -> None:
    lane = Lane("x", LaneLimits(1, 0))

    def boom() -> None:
        raise KeyError("k")

    async def scenario() -> None:
        with pytest.raises(KeyError):
            await lane.run(boom)

    asyncio.run(scenario())
    lane.close()


def test_a_cancelled_waiting_call_never_runs() -> None:
    lane = Lane("x", LaneLimits(1, 2))
    release = threading.Event()
    ran: list[int] = []

    async def scenario() -> None:
        first = asyncio.ensure_future(lane.run(release.wait, 10))
        waiting = asyncio.ensure_future(lane.run(ran.append, 1))
        await asyncio.sleep(0.05)
        waiting.cancel()
        release.set()
        await first
        await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert ran == [] and lane.admitted == 0
    lane.close()


def test_bad_limits_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        LaneLimits(threads=0, queue=1)


def test_a_stuck_worker_does_not_hold_the_process_exit() -> None:
    script = (
        "import asyncio, threading\n"
        "from verifier.transport.grpc.lanes import Lane, LaneLimits\n"
        "lane = Lane('x', LaneLimits(1, 0))\n"
        "async def main():\n"
        "    asyncio.ensure_future(lane.run(threading.Event().wait))\n"
        "    await asyncio.sleep(0.1)\n"
        "    lane.close()\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=20)
    assert time.monotonic() - started < 15


def test_a_call_that_waited_too_long_for_a_thread_is_refused_not_started() -> None:
    lane = Lane("challenge", LaneLimits(threads=1, queue=4, max_wait_s=0.2))
    release = threading.Event()
    ran: list[int] = []

    async def scenario() -> None:
        first = asyncio.ensure_future(lane.run(release.wait, 10))
        await asyncio.sleep(0.05)
        late = asyncio.ensure_future(lane.run(ran.append, 1))
        await asyncio.sleep(0.4)
        release.set()
        with pytest.raises(OverloadedError) as refused:
            await late
        assert refused.value.code == "SERVER_BUSY"
        await first

    asyncio.run(scenario())
    assert ran == [] and lane.admitted == 0
    lane.close()
