"""Client processes: N concurrent Appraise calls spread over P processes (multiprocessing, spawn), grpc.aio.

Each process opens one channel per concurrent caller (its own TCP connection: SO_REUSEPORT spreads connections,
not calls, over server workers), warms up, then every process starts at one barrier and calls for a fixed duration;
a second barrier closes the measured window. The parent reads the server's CPU time at both barriers, so CPU per
appraisal covers exactly the measured calls. The same code drives the floor and the service.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .procstat import cpu_by_pid, cpu_delta, cpu_seconds

BARRIER_TIMEOUT = 120.0
APPRAISE = "/verifier.v1.Verifier/Appraise"
# The client sends the serialized request and reads only the answer's first field, so that its own CPU (it shares
# the cores with the server) stays small: protobuf writes fields in field-number order, and field 1 of
# AppraiseResponse is the status, STATUS_AFFIRMING = 1 (`_affirming_prefix` checks this once per row).
AFFIRMING = bytes([0x08, 0x01])


def _affirming_prefix() -> bytes:
    from verifier.v1 import verifier_pb2 as pb

    affirming = pb.AppraiseResponse(status=pb.STATUS_AFFIRMING, token="t", tee="nitro").SerializeToString()
    warning = pb.AppraiseResponse(status=pb.STATUS_WARNING, token="t").SerializeToString()
    assert affirming.startswith(AFFIRMING) and not warning.startswith(AFFIRMING)
    return AFFIRMING


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


async def _phase(stubs: list[Any], request: bytes, seconds: float) -> dict[str, Any]:
    """Every stub calls Appraise back to back until `seconds` have passed; latencies of affirming answers."""
    import grpc

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    start = time.monotonic()
    deadline = start + seconds

    async def caller(stub: Any) -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            try:
                response = await stub(request, timeout=60)
            except grpc.aio.AioRpcError as error:
                errors[f"{error.code().name}: {(error.details() or '')[:80]}"] += 1
                await asyncio.sleep(0.001)
                continue
            if response.startswith(AFFIRMING):
                latencies.append((time.perf_counter() - began) * 1000)
            else:
                errors["NOT_AFFIRMING"] += 1

    await asyncio.gather(*(caller(stub) for stub in stubs))
    return {
        "ok": len(latencies),
        "errors": dict(errors),
        "latencies_ms": latencies,
        "start": start,
        "end": time.monotonic(),
    }


def client_main(
    port: int, message: bytes, callers: int, warmup: float, duration: float, barriers: Any, out: Any
) -> None:
    """One client process: `callers` concurrent callers, each on its own channel."""
    import grpc

    start, end = barriers
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # grpc.aio channels bind to the loop current at their creation
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 4 * 1024 * 1024)]
    try:
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(callers)]
        stubs = [channel.unary_unary(APPRAISE) for channel in channels]  # bytes in, bytes out
        loop.run_until_complete(_phase(stubs, message, warmup))
        start.wait(BARRIER_TIMEOUT)
        outcome = loop.run_until_complete(_phase(stubs, message, duration))
        end.wait(BARRIER_TIMEOUT)
        out.put(outcome)
        loop.run_until_complete(asyncio.gather(*(channel.close() for channel in channels)))
    except BaseException:
        start.abort()
        end.abort()
        raise
    finally:
        loop.close()


def run_load(
    port: int,
    message: bytes,
    concurrency: int,
    *,
    processes: int,
    warmup: float,
    duration: float,
    server: list[int],
    database_pids: Callable[[], list[int]] = list,
) -> dict[str, Any]:
    """`concurrency` callers over min(`processes`, `concurrency`) client processes against 127.0.0.1:`port`; the
    server CPU is that of the process trees rooted at `server`, the database CPU that of `database_pids()`."""
    _affirming_prefix()
    context = mp.get_context("spawn")
    count = min(processes, concurrency)
    shares = [concurrency // count + (1 if i < concurrency % count else 0) for i in range(count)]
    barriers = (context.Barrier(count + 1), context.Barrier(count + 1))
    out = context.Queue()
    workers = [
        context.Process(target=client_main, args=(port, message, share, warmup, duration, barriers, out), daemon=True)
        for share in shares
    ]
    for worker in workers:
        worker.start()
    try:
        barriers[0].wait(BARRIER_TIMEOUT)
        cpu_before, database_before = cpu_seconds(server), cpu_by_pid(database_pids())
        barriers[1].wait(duration + BARRIER_TIMEOUT)
        cpu, database = cpu_seconds(server) - cpu_before, cpu_delta(database_before, cpu_by_pid(database_pids()))
        outcomes = [out.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=15)
            if worker.is_alive():
                worker.kill()
    return summarize(outcomes, cpu, database, concurrency=concurrency, processes=count)


def summarize(
    outcomes: list[dict[str, Any]], cpu: float, database: float = 0.0, *, concurrency: int, processes: int
) -> dict[str, Any]:
    """One row's figures from the client processes' outcomes and the server's and database's CPU seconds."""
    ok = sum(o["ok"] for o in outcomes)
    errors: Counter[str] = Counter()
    for o in outcomes:
        errors.update(o["errors"])
    window = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    latencies = sorted(value for o in outcomes for value in o["latencies_ms"])
    return {
        "clients": concurrency,
        "client_processes": processes,
        "appraisals": ok,
        "errors": dict(errors),
        "seconds": window,
        "rate": ok / window if window > 0 else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "server_cpu_s": cpu,
        "cpu_ms_per_appraisal": cpu * 1000 / ok if ok else None,
        "database_cpu_s": database,
        "database_cpu_ms_per_appraisal": database * 1000 / ok if ok else None,
    }
