"""The checks of deploy/smoke.sh against a running stack, with the project's own client (verifier.client) only.

1. over TLS (trusting the stack's certificate, keys/tls.crt): a challenge (a write to the database) and the
   appraisal of one evidence file; the signed result is verified against the JWKS the same server publishes
   (GetSigningKeys), and must agree with the reply (status, TEE) and carry `--expect-status` / `--expect-finding`;
2. with --prometheus: Prometheus has scraped the verifier (`up{job="verifier"} == 1`), waiting up to --wait;
3. with --grafana: Grafana answers /api/health with a working database.

Prints one "ok:" line per check and exits 0, or one "FAIL:" line and exits 1 (never a traceback).

    python deploy/smoke_appraise.py --target localhost:50051 --ca keys/tls.crt --evidence evidence.bin \\
        --prometheus http://127.0.0.1:9090 --grafana http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from verifier.client import VerifierClient, verify_result
from verifier.errors import VerifierError

STATUSES = ("affirming", "warning", "contraindicated")


class SmokeError(Exception):
    """A check that did not pass: its one-line reason."""


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:50051", help="the verifier's gRPC address (TLS)")
    parser.add_argument("--ca", type=Path, required=True, help="PEM certificate(s) to trust (keys/tls.crt)")
    parser.add_argument("--evidence", type=Path, required=True, help="an evidence file (a shared vector)")
    parser.add_argument("--tee", default="nitro", choices=("nitro", "snp", "tdx"))
    parser.add_argument("--expect-status", choices=STATUSES, help="the status the result must have")
    parser.add_argument("--expect-finding", metavar="CODE", help="a finding code the result must carry")
    parser.add_argument("--prometheus", metavar="URL", help="Prometheus base URL: it must have scraped the verifier")
    parser.add_argument("--grafana", metavar="URL", help="Grafana base URL: /api/health must answer")
    parser.add_argument("--wait", type=float, default=90.0, help="seconds to wait for Prometheus and Grafana")
    return parser.parse_args(argv)


def check_appraisal(args: argparse.Namespace) -> str:
    """Challenge, appraise, verify the token. Raises SmokeError."""
    credentials = grpc.ssl_channel_credentials(root_certificates=args.ca.read_bytes())
    with VerifierClient(args.target, credentials=credentials, timeout=30) as client:
        challenge = client.create_challenge()
        if len(challenge.nonce) != 32:
            raise SmokeError(f"CreateChallenge returned a {len(challenge.nonce)}-byte nonce")
        appraisal = client.appraise(args.tee, args.evidence.read_bytes())
        claims = verify_result(appraisal.token, client.jwks_cache(), required_status="contraindicated")
    codes = sorted({str(finding.get("code")) for finding in appraisal.findings})
    if (claims.status, claims.tee) != (appraisal.status, args.tee):
        raise SmokeError(f"the token says {claims.status}/{claims.tee}, the reply {appraisal.status}/{args.tee}")
    if args.expect_status and appraisal.status != args.expect_status:
        raise SmokeError(f"status {appraisal.status}, expected {args.expect_status} (findings {codes})")
    if args.expect_finding and args.expect_finding not in codes:
        raise SmokeError(f"no finding {args.expect_finding} in {codes}")
    return (
        f"appraised {args.evidence} ({args.tee}) over TLS at {args.target}: {appraisal.status}, findings "
        f"{', '.join(codes) or 'none'}; token verified against the server's JWKS (kid {claims.kid})"
    )


def _get_json(url: str) -> Any:
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise SmokeError(f"not an http(s) URL: {url}")
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - scheme checked above
        return json.loads(response.read(1 << 20))


def _poll(what: str, probe: Callable[[], str | None], wait: float) -> str:
    """`probe()` until it returns a description (not None), at most `wait` seconds. Raises SmokeError."""
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        try:
            found = probe()
        except (OSError, ValueError) as error:  # not up yet: connection refused, a 503, half-written JSON
            found, last = None, f"{type(error).__name__}: {error}"
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise SmokeError(f"{what}: not within {wait:g} s ({last})")
        time.sleep(2)


def check_prometheus(base: str, wait: float) -> str:
    """Prometheus' own view: the verifier target scraped and up. Raises SmokeError."""
    url = f"{base.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": 'up{job="verifier"}'})

    def probe() -> str | None:
        result = _get_json(url).get("data", {}).get("result", [])
        up = [sample for sample in result if sample.get("value", [None, "0"])[1] == "1"]
        return f"Prometheus scrapes the verifier ({up[0]['metric'].get('instance')} up)" if up else None

    return _poll("Prometheus scraping the verifier", probe, wait)


def check_grafana(base: str, wait: float) -> str:
    """Grafana up with its database. Raises SmokeError."""

    def probe() -> str | None:
        health = _get_json(f"{base.rstrip('/')}/api/health")
        return f"Grafana {health.get('version', '?')} up" if health.get("database") == "ok" else None

    return _poll("Grafana /api/health", probe, wait)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks; 0 when all pass, 1 at the first that fails."""
    args = _arguments(argv)
    checks: list[Callable[[], str]] = [lambda: check_appraisal(args)]
    if args.prometheus:
        checks.append(lambda: check_prometheus(args.prometheus, args.wait))
    if args.grafana:
        checks.append(lambda: check_grafana(args.grafana, args.wait))
    for check in checks:
        try:
            print(f"ok: {check()}", flush=True)
        except VerifierError as error:  # ClientError (the RPC), ResultError (the token), JWKS_UNAVAILABLE
            print(f"FAIL: {error.code}: {error.message}", file=sys.stderr, flush=True)
            return 1
        except (SmokeError, OSError) as error:
            print(f"FAIL: {error}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
