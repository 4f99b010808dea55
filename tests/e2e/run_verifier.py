"""Runs the real verifier server in its own process for end-to-end tests.

The only test-specific part: the fake AWS root (minted by tests/fakes/aws_pki.py in the test process) is pinned
beside the real roots. Everything else is the production composition (`verifier.bootstrap.build`) configured by
VERIFIER_* environment variables, and the production `serve()` with graceful SIGTERM.

    python -m tests.e2e.run_verifier '{"pins": {"aws-nitro": ["<sha256>"]}, "port_file": "...",
                                        "challenge_ttl": 3, "token_lifetime": 5, "drain_seconds": 0}'
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from verifier.bootstrap import build
from verifier.logging_setup import install_logging
from verifier.settings import from_environment
from verifier.transport.grpc.server import serve
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors


def main() -> None:
    options = json.loads(sys.argv[1])
    install_logging("INFO")
    settings = from_environment().with_overrides(
        challenge_ttl=dt.timedelta(seconds=options.get("challenge_ttl", 120)),
        token_lifetime=dt.timedelta(seconds=options.get("token_lifetime", 300)),
        drain_seconds=float(options.get("drain_seconds", 0)),  # tests stop it with SIGTERM: no drain pause
    )
    components = build(settings)
    pins = {k: frozenset(v) for k, v in PINNED_ROOTS.items()}
    for vendor, extra in options.get("pins", {}).items():
        pins[vendor] = pins.get(vendor, frozenset()) | frozenset(extra)
    components.service.anchors = TrustAnchors(pins=pins)
    try:
        asyncio.run(serve(components, port_file=Path(options["port_file"])))
    finally:
        components.close()


if __name__ == "__main__":
    main()
