"""Client processes: N concurrent Appraise calls spread over P processes (multiprocessing, spawn), grpc.aio.

Each process opens one channel per concurrent caller (its own TCP connection: SO_REUSEPORT spreads connections,
not calls, over server workers), warms up, then every process starts at one barrier and calls for a fixed duration;
a second barrier closes the measured window. The parent reads the server's CPU time at both barriers, so CPU per
appraisal covers exactly the measured calls. The same code drives the floor and the service.

Given several ports (replicas), caller i of the whole row calls port i mod len(ports). With `collect`, every
answer (warm-up included) is kept as received and parsed only after the measured window closes, into the
(appraisal_id, token jti) pairs the replicas row checks against the database. `run_count` drives a fixed number of
appraisals instead of a fixed time (the RSS row) and reports progress as it goes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import multiprocessing as mp
import queue
import time
from collections import Counter
from collections.abc import Callable, Sequence
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


async def _phase(
    stubs: list[Any],
    request: bytes,
    seconds: float,
    *,
    ports: Sequence[int] = (),
    keep: list[bytes] | None = None,
    tickets: Any = None,
) -> dict[str, Any]:
    """Every stub calls Appraise back to back until `seconds` have passed (or, with `tickets`, until the shared
    count of calls to make runs out); latencies of affirming answers, their count per port (`ports[i]` is the port
    of `stubs[i]`) and, into `keep`, every answer as received."""
    import grpc

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    by_port: Counter[int] = Counter()
    start = time.monotonic()
    deadline = start + seconds

    async def caller(stub: Any, port: int) -> None:
        while time.monotonic() < deadline and (tickets is None or tickets.take()):
            began = time.perf_counter()
            try:
                response = await stub(request, timeout=60)
            except grpc.aio.AioRpcError as error:
                errors[f"{error.code().name}: {(error.details() or '')[:80]}"] += 1
                if tickets is not None:
                    tickets.done()
                await asyncio.sleep(0.001)
                continue
            if tickets is not None:
                tickets.done()
            if keep is not None:
                keep.append(response)
            if response.startswith(AFFIRMING):
                latencies.append((time.perf_counter() - began) * 1000)
                by_port[port] += 1
            else:
                errors["NOT_AFFIRMING"] += 1

    await asyncio.gather(*(caller(stub, port) for stub, port in zip(stubs, ports or [0] * len(stubs), strict=True)))
    return {
        "ok": len(latencies),
        "errors": dict(errors),
        "latencies_ms": latencies,
        "by_port": dict(by_port),
        "start": start,
        "end": time.monotonic(),
    }


def received_ids(responses: list[bytes]) -> list[tuple[str, str | None]]:
    """(appraisal_id, jti of the EAR token) of each answer; jti None when the token is missing or unreadable."""
    from verifier.v1 import verifier_pb2 as pb

    ids: list[tuple[str, str | None]] = []
    for raw in responses:
        answer = pb.AppraiseResponse.FromString(raw)
        ids.append((answer.appraisal_id, token_id(answer.token)))
    return ids


def token_id(token: str) -> str | None:
    """The `jti` claim of a compact JWS, read without checking the signature (None when it has none)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    jti = claims.get("jti") if isinstance(claims, dict) else None
    return jti if isinstance(jti, str) else None


def _channels(ports: Sequence[int], first: int, callers: int) -> tuple[list[Any], list[int]]:
    """One channel per caller; caller `first + i` of the row on port (first + i) mod len(ports)."""
    import grpc

    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 4 * 1024 * 1024)]
    chosen = [ports[(first + i) % len(ports)] for i in range(callers)]
    return [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) for port in chosen], chosen


def client_main(
    ports: Sequence[int],
    first: int,
    message: bytes,
    callers: int,
    warmup: float,
    duration: float,
    barriers: Any,
    out: Any,
    collect: bool = False,
) -> None:
    """One client process: `callers` concurrent callers, each on its own channel."""
    start, end = barriers
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # grpc.aio channels bind to the loop current at their creation
    keep: list[bytes] | None = [] if collect else None
    try:
        channels, chosen = _channels(ports, first, callers)
        stubs = [channel.unary_unary(APPRAISE) for channel in channels]  # bytes in, bytes out
        warm = loop.run_until_complete(_phase(stubs, message, warmup, ports=chosen, keep=keep))
        start.wait(BARRIER_TIMEOUT)
        outcome = loop.run_until_complete(_phase(stubs, message, duration, ports=chosen, keep=keep))
        end.wait(BARRIER_TIMEOUT)
        outcome["warmup_errors"] = warm["errors"]
        if keep is not None:
            outcome["received"] = received_ids(keep)
        out.put(outcome)
        loop.run_until_complete(asyncio.gather(*(channel.close() for channel in channels)))
    except BaseException:
        start.abort()
        end.abort()
        raise
    finally:
        loop.close()


def _shares(concurrency: int, processes: int) -> list[tuple[int, int]]:
    """(first caller, callers) of each of min(`processes`, `concurrency`) client processes."""
    count = min(processes, concurrency)
    sizes = [concurrency // count + (1 if i < concurrency % count else 0) for i in range(count)]
    return [(sum(sizes[:i]), size) for i, size in enumerate(sizes)]


def run_load(
    port: int | Sequence[int],
    message: bytes,
    concurrency: int,
    *,
    processes: int,
    warmup: float,
    duration: float,
    server: list[int],
    database_pids: Callable[[], list[int]] = list,
    collect: bool = False,
) -> dict[str, Any]:
    """`concurrency` callers over min(`processes`, `concurrency`) client processes against 127.0.0.1:`port` (or
    round robin over several ports); the server CPU is that of the process trees rooted at `server`, the database
    CPU that of `database_pids()`. With `collect`, "received" lists the (appraisal_id, jti) of every answer."""
    _affirming_prefix()
    ports = [port] if isinstance(port, int) else list(port)
    context = mp.get_context("spawn")
    shares = _shares(concurrency, processes)
    barriers = (context.Barrier(len(shares) + 1), context.Barrier(len(shares) + 1))
    out = context.Queue()
    workers = [
        context.Process(
            target=client_main,
            args=(ports, first, message, size, warmup, duration, barriers, out, collect),
            daemon=True,
        )
        for first, size in shares
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
    figures = summarize(outcomes, cpu, database, concurrency=concurrency, processes=len(shares))
    warmup_errors: Counter[str] = Counter()
    for o in outcomes:
        warmup_errors.update(o["warmup_errors"])
    figures["warmup_errors"] = dict(warmup_errors)
    if len(ports) > 1:
        figures["rate_by_port"] = {
            str(p): sum(o["by_port"].get(p, 0) for o in outcomes) / figures["seconds"] for p in ports
        }
    if collect:
        figures["received"] = [pair for o in outcomes for pair in o["received"]]
    return figures


class Tickets:
    """The calls left to make, shared by the client processes of a `run_count` row, and the calls answered."""

    def __init__(self, context: Any, total: int) -> None:
        self.total = total
        self.issued = context.Value("q", 0)
        self.answered = context.Value("q", 0)

    def take(self) -> bool:
        with self.issued.get_lock():
            if self.issued.value >= self.total:
                return False
            self.issued.value += 1
            return True

    def done(self) -> None:
        with self.answered.get_lock():
            self.answered.value += 1

    @property
    def count(self) -> int:
        return int(self.answered.value)


def count_main(
    ports: Sequence[int], first: int, message: bytes, callers: int, tickets: Tickets, ready: Any, out: Any
) -> None:
    """One client process of `run_count`: callers call until the shared tickets run out."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        channels, chosen = _channels(ports, first, callers)
        stubs = [channel.unary_unary(APPRAISE) for channel in channels]
        ready.wait(BARRIER_TIMEOUT)
        outcome = loop.run_until_complete(_phase(stubs, message, math.inf, ports=chosen, tickets=tickets))
        out.put(outcome)
        loop.run_until_complete(asyncio.gather(*(channel.close() for channel in channels)))
    except BaseException:
        ready.abort()
        raise
    finally:
        loop.close()


def run_count(
    port: int,
    message: bytes,
    concurrency: int,
    total: int,
    *,
    processes: int,
    server: list[int],
    on_progress: Callable[[int], None],
    every: float = 0.25,
) -> dict[str, Any]:
    """`total` Appraise calls by `concurrency` callers over min(`processes`, `concurrency`) client processes, all
    starting at one barrier; `on_progress(answered)` is called every `every` seconds while they run and once at the
    end (answered = calls answered so far, errors included)."""
    _affirming_prefix()
    context = mp.get_context("spawn")
    shares = _shares(concurrency, processes)
    tickets, ready, out = Tickets(context, total), context.Barrier(len(shares) + 1), context.Queue()
    workers = [
        context.Process(target=count_main, args=([port], first, message, size, tickets, ready, out), daemon=True)
        for first, size in shares
    ]
    for worker in workers:
        worker.start()
    outcomes: list[dict[str, Any]] = []
    try:
        ready.wait(BARRIER_TIMEOUT)
        cpu_before = cpu_seconds(server)
        while len(outcomes) < len(workers):
            try:
                outcomes.append(out.get(timeout=every))
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers) and out.empty():
                    raise RuntimeError("a client process ended without an outcome") from None
            on_progress(tickets.count)
        cpu = cpu_seconds(server) - cpu_before
        on_progress(tickets.count)
    finally:
        for worker in workers:
            worker.join(timeout=15)
            if worker.is_alive():
                worker.kill()
    return summarize(outcomes, cpu, concurrency=concurrency, processes=len(shares))


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
