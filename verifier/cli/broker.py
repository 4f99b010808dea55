"""`verifier broker`: the reference key broker (see verifier/broker and README "Reference key broker")."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from ..broker.config import load_config
from ..broker.http import make_server, serve_in_thread
from ..broker.release import Broker
from ..client.jwks import JwksCache, fetch_jwks_http
from ..client.sync import VerifierClient
from ..clock import SystemClock
from ..settings import Settings
from ..transport.grpc.binding import write_port_file
from .common import UsageError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("broker", help="run the reference key broker (releases secrets on affirming results)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--listen", metavar="HOST:PORT", help="overrides the config's listen address")
    p.add_argument("--port-file", type=Path, metavar="FILE", help='write {"http": port} once listening')
    p.add_argument("--tls-cert", type=Path, metavar="FILE")
    p.add_argument("--tls-key", type=Path, metavar="FILE")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    config = load_config(args.config)
    host, _, port = (args.listen or config.listen).rpartition(":")
    client = VerifierClient(config.verifier)
    jwks = JwksCache(lambda: fetch_jwks_http(config.jwks_url))
    broker = Broker(config, jwks, lambda: client.create_challenge().nonce, SystemClock())
    server = make_server(
        broker, host.strip("[]") or "127.0.0.1", int(port), tls_cert=args.tls_cert, tls_key=args.tls_key
    )
    bound = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, {"http": int(bound)})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve_in_thread(server)
    log.info("broker listening on port %d (%d secrets), verifier %s", bound, len(config.rules), config.verifier)
    stop.wait()
    log.info("broker shutting down")
    server.shutdown()
    server.server_close()
    client.close()
    return 0
