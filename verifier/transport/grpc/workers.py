"""`verifier serve --workers N`: one supervisor process and N pre-forked worker processes sharing the gRPC port.

Shared, on purpose: the gRPC port (and `admin_listen`'s), which every worker binds with SO_REUSEPORT so the kernel
spreads connections over them. Nothing else: each worker builds its own app after the fork (SQLAlchemy engine and
pool, caches, gRPC server, thread pools); the supervisor never builds one. Only the result signer is made before
the fork, so a `--dev` ephemeral key is the same in every worker and the JWKS the supervisor serves is theirs.

The port is never shared with an unrelated server: the supervisor locks, checks and reserves it before forking
(port_claim.py), so a second `verifier serve`, with or without `--workers`, stops with ADDRESS_IN_USE.

HTTP (metrics, JWKS, probes) is served by the supervisor only, without threads (a process that forks must not
run any): /metrics is the sum over the workers (prometheus-client multiprocess mode in a per-run directory),
/readyz is 200 only while every worker is up and says it is ready (over a pipe), /livez while the supervisor runs.

SIGTERM or SIGINT: the supervisor passes SIGTERM to every worker, each drains as a single server does (NOT_SERVING,
`drain_seconds`, then `grace_seconds` for in-flight calls); a worker still there `STOP_MARGIN` seconds later is
killed. A worker that exits otherwise is replaced after a backoff (0.5 s, doubling to 30 s while it keeps failing
within 30 s); one that fails before the first generation is all ready stops the start-up with its exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import selectors
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ... import event_loop
from ...bootstrap import Components, build_signer
from ...errors import ConfigError, ErrorKind, VerifierError
from ...metrics import Metrics, WorkerMetrics, use_multiprocess
from ...results.signer import ResultSigner
from ...settings import Rate, Settings
from .binding import write_port_file
from .http import HttpApp, PolledHttpServer, tls_context
from .port_claim import PortClaims
from .server import VerifierServer, serve

log = logging.getLogger(__name__)

Build = Callable[[Settings, ResultSigner], Components]  # a worker's app, built after the fork

MAX_WORKERS = 256
FIRST_BACKOFF, MAX_BACKOFF, STABLE_AFTER = 0.5, 30.0, 30.0  # seconds
STOP_MARGIN = 10.0  # seconds past drain + grace before a worker that has not exited is killed
EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERNAL = 64, 3, 70  # the CLI's exit codes (verifier/cli/common.py)


def worker_count(settings: Settings) -> int:
    """The worker processes `settings` ask for: `workers`, or when it is 0 one with `development` or on SQLite and
    otherwise the CPUs this process may run on. Raises ConfigError WORKERS_NEED_POSTGRESQL for more than one on
    SQLite (one writer process at a time), SETTING_INVALID above MAX_WORKERS."""
    sqlite = settings.database_url.strip().lower().startswith("sqlite")
    if settings.workers == 0:
        return 1 if settings.development or sqlite else min(MAX_WORKERS, _cpus())
    if settings.workers > MAX_WORKERS:
        raise ConfigError("SETTING_INVALID", f"--workers is at most {MAX_WORKERS}, got {settings.workers}")
    if settings.workers > 1 and sqlite:
        raise ConfigError(
            "WORKERS_NEED_POSTGRESQL",
            f"--workers {settings.workers} needs PostgreSQL (--db postgresql://...): SQLite takes one writer "
            "process at a time; use --workers 1 with SQLite",
        )
    return settings.workers


def _cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _share(rate: Rate, workers: int) -> Rate:
    """A worker's part of a global rate limit (per-client limits stay whole: a connection stays on one worker)."""
    return Rate(rate.per_second / workers, max(1, math.ceil(rate.burst / workers))) if rate.enabled else rate


@dataclass
class _Worker:
    slot: int
    pid: int
    status: int  # the read end of the pipe the worker reports its readiness on
    started: float
    ready: bool = False


class Supervisor:
    """Runs `count` workers of `build` on the ports of `settings` until SIGTERM or SIGINT (see the module)."""

    def __init__(self, settings: Settings, count: int, build: Build, *, port_file: Path | None = None) -> None:
        self.settings, self.count, self._build, self._port_file = settings, count, build, port_file
        self._pid = os.getpid()
        self._workers: dict[int, _Worker] = {}  # by slot
        self._due: dict[int, float] = {}  # slot -> when its replacement starts
        self._failures = [0] * count
        self._started = self._stopping = self._stop_requested = self._killed = self._workers_started = False
        self._deadline = 0.0
        self.exit_code = 0
        self._claims: PortClaims | None = None
        self._http: PolledHttpServer | None = None
        self._directory: Path | None = None
        self._selector = selectors.DefaultSelector()
        self._wake = os.pipe()
        self.ports: dict[str, int] = {}
        self._previous: dict[signal.Signals, Any] = {}  # the signal handlers to restore
        self._previous_wakeup = -1

    def run(self) -> int:
        """Set up (raising ConfigError before any fork), fork, supervise; the exit code (0 after a clean stop)."""
        try:
            self._set_up()
            self._workers_started = True
            for slot in range(self.count):
                self._spawn(slot)
            self._loop()
        finally:
            self._clean_up()
        return self.exit_code

    def _set_up(self) -> None:
        s = self.settings
        self._signer = build_signer(s)  # configuration first: nothing claimed for a missing key
        claims = self._claims = PortClaims()
        self._listen, self.ports["grpc"] = claims.claim(s.listen)
        self._admin = None
        if s.admin_listen:
            self._admin, self.ports["admin"] = claims.claim(s.admin_listen)
        self._directory = Path(tempfile.mkdtemp(prefix=f"metrics-{self._pid}-", dir=claims.runtime))
        self._metrics = WorkerMetrics(self._directory, self.count)
        if s.http_listen and s.http_listen.lower() != "off":
            app = HttpApp.from_settings(s, self._metrics, self._signer.jwks, self._healthy)
            self._http = PolledHttpServer(s.http_listen, app, tls=tls_context(s))  # HTTPS with TLS
            self.ports["http"] = self._http.start(self._selector)
        else:
            self.ports["http"] = 0
        for fd in self._wake:
            os.set_blocking(fd, False)
        self._selector.register(self._wake[0], selectors.EVENT_READ, self._drain_wake)
        self._previous_wakeup = signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._on_stop_signal)
        self._previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *_: None)  # only wakes the loop
        log.info("supervisor (pid %d): %d workers sharing gRPC port %d", self._pid, self.count, self.ports["grpc"])

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake[0], 4096):
                pass
        except BlockingIOError:
            pass

    def _healthy(self) -> bool:
        workers = self._workers.values()
        return not self._stopping and len(self._workers) == self.count and all(w.ready for w in workers)

    def _worker_settings(self, slot: int) -> Settings:
        s = self.settings
        return dataclasses.replace(
            s,
            workers=1,
            listen=self._listen,
            admin_listen=self._admin,
            http_listen="off",  # the supervisor serves HTTP
            retention_interval_s=s.retention_interval_s if slot == 0 else 0,  # one retention pass at a time
            rate_challenge_global=_share(s.rate_challenge_global, self.count),
            rate_appraise_global=_share(s.rate_appraise_global, self.count),
        )

    def _spawn(self, slot: int) -> None:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            code = EXIT_INTERNAL
            try:
                os.close(read)
                self._forget_in_child()
                code = _worker_main(self._worker_settings(slot), self._signer, self._build, write, self._pid)
            except BaseException:  # a worker must end here, never in the caller's code
                log.exception("worker %d failed", slot)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(write)
        os.set_blocking(read, False)
        worker = _Worker(slot, pid, read, time.monotonic())
        self._workers[slot] = worker
        self._selector.register(read, selectors.EVENT_READ, lambda: self._read_status(worker))
        log.info("worker %d started (pid %d)", slot, pid)

    def _forget_in_child(self) -> None:
        """In a new worker: drop the supervisor's signal handling, selector, sockets and pipes (not the locks)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._selector.close()  # the child's copy of the epoll fd: the parent's registrations stay
        if self._http is not None:
            self._http.close_in_child()
        assert self._claims is not None
        self._claims.close_sockets()
        for fd in (*self._wake, *(w.status for w in self._workers.values())):
            os.close(fd)
        assert self._directory is not None
        use_multiprocess(self._directory)

    def _read_status(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.status, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker is gone; `_reap` collects it
            self._selector.unregister(worker.status)
            os.close(worker.status)
            worker.status, worker.ready = -1, False
            return
        worker.ready = data.rstrip(b"\n").rsplit(b"\n", 1)[-1] == b"1"
        if not self._started and self._healthy():
            self._started = True
            log.info("all %d workers ready", self.count)
            if self._port_file is not None:
                write_port_file(self._port_file, self.ports)

    def _loop(self) -> None:
        while not (self._stopping and not self._workers):
            if self._stop_requested and not self._stopping:
                log.info("received a stop signal: graceful shutdown of %d workers", len(self._workers))
                self._begin_stop()
            for key, _ in self._selector.select(self._timeout()):
                key.data()
            self._reap()
            if self._http is not None:
                self._http.expire()
            self._restart_due()
            self._kill_stragglers()
            self._metrics.ready.set(sum(w.ready for w in self._workers.values()))

    def _timeout(self) -> float:
        now = time.monotonic()
        return max(0.0, min([0.5, *(due - now for due in self._due.values())]))

    def _begin_stop(self) -> None:
        if self._stopping:
            return
        s = self.settings
        self._stopping, self._deadline = True, time.monotonic() + s.drain_seconds + s.grace_seconds + STOP_MARGIN
        self._due.clear()
        for worker in self._workers.values():
            _signal(worker.pid, signal.SIGTERM)

    def _reap(self) -> None:
        for worker in list(self._workers.values()):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid == 0:
                continue
            del self._workers[worker.slot]
            if worker.status >= 0:
                self._selector.unregister(worker.status)
                os.close(worker.status)
            self._metrics.worker_exited(worker.pid)
            self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: _Worker, code: int) -> None:
        how = f"exit code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if self._stopping:
            if code not in (0, -signal.SIGTERM):
                log.warning("worker %d (pid %d) stopped with %s", worker.slot, worker.pid, how)
                self.exit_code = self.exit_code or EXIT_INTERNAL
            return
        if not self._started:
            log.error("worker %d (pid %d) ended with %s before it was ready: stopping", worker.slot, worker.pid, how)
            self.exit_code = code if code > 0 else EXIT_INTERNAL
            self._begin_stop()
            return
        lived = time.monotonic() - worker.started
        failures = self._failures[worker.slot] = 1 if lived >= STABLE_AFTER else self._failures[worker.slot] + 1
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1))
        log.error("worker %d (pid %d) ended with %s: replacing it in %.1fs", worker.slot, worker.pid, how, delay)
        self._due[worker.slot] = time.monotonic() + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, due in list(self._due.items()):
            if due <= now and not self._stopping:
                del self._due[slot]
                self._metrics.restarts.inc()
                self._spawn(slot)

    def _kill_stragglers(self) -> None:
        if self._stopping and not self._killed and self._workers and time.monotonic() > self._deadline:
            self._killed = True
            for worker in self._workers.values():
                log.error("worker %d (pid %d) did not stop in time: killing it", worker.slot, worker.pid)
                _signal(worker.pid, signal.SIGKILL)
            self.exit_code = self.exit_code or EXIT_INTERNAL

    def _clean_up(self) -> None:
        if os.getpid() != self._pid:
            return
        if self._previous:
            signal.set_wakeup_fd(self._previous_wakeup)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if self._http is not None:
            self._http.stop()
        self._selector.close()
        for fd in self._wake:
            os.close(fd)
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        if self._claims is not None:
            self._claims.release()
        if self._workers_started:
            log.info("supervisor stopped")


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class _WorkerServer(VerifierServer):
    share_port = True


def _worker_main(settings: Settings, signer: ResultSigner, build: Build, status: int, supervisor: int) -> int:
    """A worker's whole life after the fork: build the app, serve until SIGTERM; the exit code."""
    try:
        components = build(settings, signer)
    except VerifierError as error:
        return _failed(error)
    try:
        event_loop.run(lambda: _serve_worker(components, status, supervisor), settings.event_loop)
    except VerifierError as error:
        return _failed(error)
    except KeyboardInterrupt:
        return 130
    finally:
        components.close()
    return 0


def _failed(error: VerifierError) -> int:
    """As the CLI reports an error (verifier/cli/main.py): one line on stderr, the exit code of its kind."""
    print(f"verifier: {error.code}: {error.message}", file=sys.stderr)
    if error.kind in (ErrorKind.REQUEST, ErrorKind.NOT_FOUND):
        return EXIT_USAGE
    return EXIT_UNAVAILABLE if error.kind in (ErrorKind.UNAVAILABLE, ErrorKind.OVERLOADED) else EXIT_INTERNAL


async def _serve_worker(components: Components, status: int, supervisor: int) -> None:
    server = _WorkerServer(components, metrics=Metrics(per_worker=True))
    ready = asyncio.Event()
    reporter = asyncio.ensure_future(_report(server, ready, status, supervisor))
    try:
        await serve(components, ready=ready, server=server)
    finally:
        reporter.cancel()
        os.close(status)


async def _report(server: VerifierServer, ready: asyncio.Event, status: int, supervisor: int) -> None:
    """Tell the supervisor whenever this worker's readiness changes; stop when the supervisor is gone."""
    await ready.wait()
    last: bool | None = None
    while True:
        now = server.ready
        try:
            if os.getppid() != supervisor:
                raise BrokenPipeError
            if now != last:
                os.write(status, b"1\n" if now else b"0\n")
                last = now
        except OSError:
            log.warning("the supervisor is gone: stopping")
            server.request_stop()
            return
        await asyncio.sleep(0.2)
