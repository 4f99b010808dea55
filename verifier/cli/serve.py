"""`verifier serve`: the gRPC server (health, reflection, TLS) with /metrics and the JWKS on an HTTP port."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

from ..bootstrap import build
from ..errors import ConfigError
from ..settings import Rate, Settings, collateral_refresh, drain_seconds, rate
from ..transport.grpc.server import serve
from .common import UsageError, add_db_flag

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gRPC verifier service")
    add_db_flag(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="gRPC address (default 127.0.0.1:50051)")
    p.add_argument("--http-listen", metavar="HOST:PORT", help="metrics and JWKS address (default 127.0.0.1:9464)")
    p.add_argument(
        "--signing-key",
        type=Path,
        action="append",
        metavar="FILE",
        help="EAR signing key (PEM, P-256); repeat to publish older keys, the first one signs",
    )
    p.add_argument(
        "--signing-key-dir",
        type=Path,
        metavar="DIR",
        help="rotating keyring (`verifier keys init`); reloaded when `verifier keys rotate` changes it",
    )
    p.add_argument(
        "--dev", action="store_true", help="development only: sign with an ephemeral key when no --signing-key is given"
    )
    p.add_argument("--trust-anchors", type=Path, metavar="DIR")
    p.add_argument("--tls-cert", type=Path, metavar="FILE")
    p.add_argument("--tls-key", type=Path, metavar="FILE")
    p.add_argument(
        "--admin-token-sha256",
        action="append",
        metavar="HEX",
        help="SHA-256 of an accepted admin bearer token (repeatable); none means admin calls are refused",
    )
    p.add_argument(
        "--admin-client-ca",
        type=Path,
        metavar="FILE",
        help="PEM CA(s) whose client certificates may use the admin API (needs TLS and --admin-listen "
        "or --appraisal-requires-mtls)",
    )
    p.add_argument(
        "--admin-cert-role", choices=("admin", "auditor"), help="role of an admin client certificate (default admin)"
    )
    p.add_argument(
        "--admin-listen",
        metavar="HOST:PORT",
        help="a second TLS port that requires client certificates from --admin-client-ca",
    )
    p.add_argument(
        "--appraisal-requires-mtls",
        action="store_true",
        default=None,
        help="every connection to the main port needs a client certificate (--appraisal-client-ca or the admin CA)",
    )
    p.add_argument(
        "--appraisal-client-ca",
        type=Path,
        metavar="FILE",
        help="PEM CA(s) whose client certificates may call the Verifier service",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="never fetch vendor collateral (AMD KDS); it must come with the requests",
    )
    p.add_argument("--amd-kds-url", metavar="URL", help="AMD KDS base URL (default https://kdsintf.amd.com)")
    p.add_argument(
        "--intel-pcs-url",
        metavar="URL",
        help="Intel PCS or PCCS base URL (default https://api.trustedservices.intel.com)",
    )
    p.add_argument(
        "--check-crl",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check the vendor CRLs (the default; --no-check-crl turns revocation checking off)",
    )
    p.add_argument(
        "--collateral-refresh",
        type=_refresh_seconds,
        metavar="SECONDS",
        help="refetch cached CRLs and Intel TCB info / QE identity once this old (default 3600)",
    )
    p.add_argument("--policy-file", type=Path, metavar="FILE", help="named appraisal policies (JSON)")
    p.add_argument(
        "--default-policy",
        metavar="NAME",
        help="the policy of a request that names none (default: the built-in 'default')",
    )
    p.add_argument(
        "--selectable-policy",
        action="append",
        metavar="NAME",
        help="a policy requests may select by name (repeat; default: any known policy); others are "
        "PERMISSION_DENIED POLICY_NOT_ALLOWED",
    )
    p.add_argument(
        "--port-file",
        type=Path,
        metavar="FILE",
        help='write {"grpc": port, "http": port} here once listening (for port 0)',
    )
    p.add_argument(
        "--max-concurrent-rpcs",
        type=_count,
        metavar="N",
        help="refuse calls past N in flight with RESOURCE_EXHAUSTED (default 64; 0: unbounded)",
    )
    p.add_argument(
        "--drain-seconds",
        type=_drain_seconds,
        metavar="SECONDS",
        help="on SIGTERM, report NOT_SERVING and keep serving this long before stopping (default 5)",
    )
    p.add_argument(
        "--allow-plaintext-admin",
        action="store_true",
        default=None,
        help="accept admin bearer tokens without TLS (only when every listen address is loopback)",
    )
    p.add_argument("--challenge-ttl", type=float, metavar="SECONDS", help="challenge lifetime (default 120)")
    p.add_argument("--token-lifetime", type=float, metavar="SECONDS", help="EAR token lifetime (default 300)")
    for name, what, default in (
        ("challenge-per-client", "CreateChallenge calls per client", "20:40"),
        ("challenge-global", "CreateChallenge calls in all", "500:1000"),
        ("appraise-per-client", "Appraise calls per client", "20:40"),
        ("appraise-global", "Appraise calls in all", "500:1000"),
    ):
        p.add_argument(
            f"--rate-{name}",
            type=_rate,
            metavar="RATE[:BURST]",
            help=f"{what} a second, burst BURST (default {default}; 0 disables)",
        )
    p.add_argument(
        "--rate-clients",
        type=int,
        metavar="N",
        help="clients tracked for per-client rate limits, least recently seen forgotten (default 10000)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, base: Settings) -> int:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    settings = base.with_overrides(
        database_url=args.db,
        listen=args.listen,
        http_listen=args.http_listen,
        signing_keys=tuple(args.signing_key) if args.signing_key else None,
        signing_key_dir=args.signing_key_dir,
        development=True if args.dev else None,
        trust_anchors=args.trust_anchors,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        drain_seconds=args.drain_seconds,
        max_concurrent_rpcs=args.max_concurrent_rpcs,
        allow_plaintext_admin=args.allow_plaintext_admin,
        admin_token_sha256=tuple(h.lower() for h in args.admin_token_sha256) if args.admin_token_sha256 else None,
        admin_client_ca=args.admin_client_ca,
        admin_cert_role=args.admin_cert_role,
        admin_listen=args.admin_listen,
        appraisal_requires_mtls=args.appraisal_requires_mtls,
        appraisal_client_ca=args.appraisal_client_ca,
        offline=args.offline,
        amd_kds_url=args.amd_kds_url,
        intel_pcs_url=args.intel_pcs_url,
        check_crl=args.check_crl,
        collateral_refresh=args.collateral_refresh,
        policy_file=args.policy_file,
        default_policy=args.default_policy,
        selectable_policies=tuple(args.selectable_policy) if args.selectable_policy else None,
        challenge_ttl=dt.timedelta(seconds=args.challenge_ttl) if args.challenge_ttl else None,
        token_lifetime=dt.timedelta(seconds=args.token_lifetime) if args.token_lifetime else None,
        rate_challenge_per_client=args.rate_challenge_per_client,
        rate_challenge_global=args.rate_challenge_global,
        rate_appraise_per_client=args.rate_appraise_per_client,
        rate_appraise_global=args.rate_appraise_global,
        rate_clients=args.rate_clients,
    )
    components = build(settings, background_writes=True)  # kept evidence off the answer's path
    try:
        components.database.check()
        asyncio.run(serve(components, port_file=args.port_file))
    finally:
        components.close()
    return 0


def _refresh_seconds(text: str) -> dt.timedelta:
    try:
        value = collateral_refresh(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    assert value is not None
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 100_000:
        raise argparse.ArgumentTypeError(f"expected an integer 0..100000, got {text[:20]!r}")
    return int(text)


def _drain_seconds(text: str) -> float:
    try:
        value = drain_seconds(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    assert value is not None
    return value


def _rate(text: str) -> Rate:
    try:
        value = rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    assert value is not None
    return value
