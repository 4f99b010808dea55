"""`verifier serve`: the gRPC server (health, reflection, TLS) with /metrics and the JWKS on an HTTP port; with
`--workers N` (N > 1) a supervisor and N worker processes sharing the gRPC port (transport/grpc/workers.py)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from .. import event_loop
from ..bootstrap import Components, build_server_app, fixed_clock
from ..clock import to_rfc3339
from ..results.signer import ResultSigner
from ..settings import Settings, add_flags, apply_flags, flag_names
from ..storage import migrate
from ..transport.grpc.server import serve
from ..transport.grpc.workers import Supervisor, worker_count
from .common import UsageError

log = logging.getLogger(__name__)


# Global flags (on `verifier` itself, before the subcommand), not repeated here.
GLOBAL_SETTINGS = ("log_level",)


def serve_settings() -> list[str]:
    """The settings `verifier serve` takes as flags: every setting with a flag but the global ones."""
    return [name for name in flag_names() if name not in GLOBAL_SETTINGS]


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gRPC verifier service")
    add_flags(p, serve_settings())
    p.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help='write {"grpc": port, "http": port} here once listening (for port 0)',
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    settings = with_fixed_clock(apply_flags(base, args, serve_settings()))  # FIXED_CLOCK_NEEDS_DEV without --dev
    workers = worker_count(settings)  # ConfigError WORKERS_NEED_POSTGRESQL for more than one on SQLite
    event_loop.loop_factory(settings.event_loop)  # EVENT_LOOP_UNAVAILABLE before anything starts
    if workers > 1:
        return Supervisor(settings, workers, build_worker, port_file=args.port_file).run()
    components = build_server_app(settings)  # kept evidence off the answer's path
    try:
        migrate.check(components.database)
        event_loop.run(lambda: serve(components, port_file=args.port_file), settings.event_loop)
    finally:
        components.close()
    return 0


def with_fixed_clock(settings: Settings) -> Settings:
    """`settings` as served: with `--at` (development only) said loudly and with retention passes off (the server
    runs them on the appraisal clock, which would judge every row's age from the fixed instant). Raises ConfigError
    FIXED_CLOCK_NEEDS_DEV for `--at` without `--dev`, before anything is built or forked."""
    clock = fixed_clock(settings)
    if clock is None:
        return settings
    log.warning(
        "DEVELOPMENT MODE: the appraisal clock is fixed at %s (--at): evidence, collateral and reference values are "
        "judged at that instant and result tokens carry it (iat, exp), whatever the time is; challenges keep real "
        "time; retention passes are off. Never use this for real appraisals.",
        to_rfc3339(clock.now()),
    )
    return dataclasses.replace(settings, retention_interval_s=0)


def build_worker(settings: Settings, signer: ResultSigner) -> Components:
    """A worker's app, after the fork: its own database engine, caches and pools; the supervisor's signer; the same
    appraisal clock as every other worker (`settings.fixed_time`, or the system clock)."""
    return build_server_app(settings, signer=signer)
