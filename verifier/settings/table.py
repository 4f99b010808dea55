"""The field table: every setting declared once, as a field of `Settings` made by `_setting(...)` with its
default, section, environment name (VERIFIER_ + `env`), the parser of that variable and, when it has one, its
command-line flag, argparse keywords and help. The parsers and flag types are in `parsers.py`.
"""

# ruff: noqa: RUF009 - `_setting(...)` is `dataclasses.field(...)` with the declaration in its metadata

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..storage.engine import DEFAULT_DATABASE_URL
from .declaration import Declaration
from .parsers import (
    _RATE_FLAG,
    Rate,
    _argument,
    _collateral_timeout,
    _count,
    _digests,
    _flag,
    _grace_seconds,
    _instant,
    _int,
    _lowered,
    _names,
    _path,
    _paths,
    _pathsep_paths,
    _seconds,
    _text,
    _timedelta_or_none,
    collateral_refresh,
    drain_seconds,
    rate,
)

# The order of the argument groups in `--help`.
SECTIONS = (
    "database",
    "server",
    "tls",
    "admin auth",
    "signing",
    "appraisal",
    "collateral",
    "rate limits",
    "lanes",
    "retention",
    "logging",
)


def _setting(
    default: Any,
    *,
    section: str,
    env: str,
    parse: Callable[[str], Any],
    help: str,
    flag: str | None = None,
    from_flag: Callable[[Any], Any] | None = None,
    **options: Any,
) -> Any:
    """A `Settings` field with its declaration in the field's metadata."""
    if section not in SECTIONS:
        raise ValueError(f"unknown settings section {section!r}")
    declared = Declaration(section, env, parse, help, flag, options, from_flag)
    return field(default=default, metadata={"setting": declared})


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting(
        DEFAULT_DATABASE_URL,
        section="database",
        env="DATABASE_URL",
        parse=_text,
        help=f"database URL (default {DEFAULT_DATABASE_URL})",
        flag="--db",
        metavar="URL",
    )
    # Result signing: PEM files, the first is the active key. Without one the server refuses to start unless
    # `development` is set, which generates an ephemeral key and says so loudly.
    signing_keys: tuple[Path, ...] = _setting(
        (),
        section="signing",
        env="SIGNING_KEY",
        parse=_pathsep_paths,
        help="EAR signing key (PEM, P-256); repeat to publish older keys, the first one signs",
        flag="--signing-key",
        from_flag=tuple,
        type=Path,
        action="append",
        metavar="FILE",
    )
    # Or a rotating keyring directory (`verifier keys init|rotate`); exclusive with `signing_keys`.
    signing_key_dir: Path | None = _setting(
        None,
        section="signing",
        env="SIGNING_KEY_DIR",
        parse=_path,
        help="rotating keyring (`verifier keys init`); reloaded when `verifier keys rotate` changes it",
        flag="--signing-key-dir",
        type=Path,
        metavar="DIR",
    )
    development: bool = _setting(
        False,
        section="signing",
        env="DEVELOPMENT",
        parse=_flag,
        help="development only: sign with an ephemeral key when no --signing-key is given",
        flag="--dev",
        action="store_true",
    )
    trust_anchors: Path | None = _setting(
        None,
        section="appraisal",
        env="TRUST_ANCHORS",
        parse=_path,
        help="directory laid out like shared/trust-anchors",
        flag="--trust-anchors",
        type=Path,
        metavar="DIR",
    )
    # The tokens' `iss`. An http(s) URL (this verifier's public HTTP address) also names where OIDC discovery is
    # (<issuer>/.well-known/openid-configuration, transport/grpc/wellknown.py); "tee-verifier" is no URL.
    issuer: str = _setting(
        "tee-verifier",
        section="signing",
        env="ISSUER",
        parse=_text,
        help="EAR issuer, the tokens' iss (default tee-verifier); an https URL publishes OIDC discovery there",
        flag="--issuer",
        metavar="URL",
    )
    token_lifetime: dt.timedelta = _setting(
        dt.timedelta(minutes=5),
        section="signing",
        env="TOKEN_LIFETIME",
        parse=_seconds,
        help="EAR token lifetime (default 300)",
        flag="--token-lifetime",
        from_flag=_timedelta_or_none,
        type=float,
        metavar="SECONDS",
    )
    challenge_ttl: dt.timedelta = _setting(
        dt.timedelta(minutes=2),
        section="appraisal",
        env="CHALLENGE_TTL",
        parse=_seconds,
        help="challenge lifetime (default 120)",
        flag="--challenge-ttl",
        from_flag=_timedelta_or_none,
        type=float,
        metavar="SECONDS",
    )
    # Development only (refused without `development`: FIXED_CLOCK_NEEDS_DEV): `verifier serve` appraises at this
    # instant instead of now, in every worker (the shared vectors verify only around their MANIFEST verify_at).
    # Challenges keep real time; result tokens are issued at this instant (iat, exp) and retention passes are off.
    fixed_time: dt.datetime | None = _setting(
        None,
        section="appraisal",
        env="FIXED_TIME",
        parse=_instant,
        help="development only (needs --dev): appraise at this instant instead of now, as a test vector's "
        "verify_at; challenges keep real time, result tokens carry this time, retention passes are off",
        flag="--at",
        type=_argument(_instant),
        metavar="RFC3339",
    )
    # Server.
    listen: str = _setting(
        "127.0.0.1:50051",
        section="server",
        env="LISTEN",
        parse=_text,
        help="gRPC address (default 127.0.0.1:50051)",
        flag="--listen",
        metavar="HOST:PORT",
    )
    http_listen: str = _setting(
        "127.0.0.1:9464",
        section="server",
        env="HTTP_LISTEN",
        parse=_text,
        help="metrics and JWKS address (default 127.0.0.1:9464)",
        flag="--http-listen",
        metavar="HOST:PORT",
    )
    # Where relying parties reach the HTTP side server (through any proxy): OIDC discovery's jwks_uri is
    # <public_url>/.well-known/jwks.json. Unset: the issuer, when that is an http(s) URL.
    public_url: str | None = _setting(
        None,
        section="server",
        env="PUBLIC_URL",
        parse=_text,
        help="public base URL of the HTTP port, for OIDC discovery's jwks_uri (default: the issuer, when a URL)",
        flag="--public-url",
        metavar="URL",
    )
    # Server processes sharing the gRPC port (transport/grpc/workers.py). 0: automatic, the CPU count on
    # PostgreSQL and 1 with `development` or on SQLite; 1: one process, no supervisor; above 1 needs PostgreSQL.
    workers: int = _setting(
        0,
        section="server",
        env="WORKERS",
        parse=_int,
        help="server processes sharing the gRPC port (default 0: the CPU count, 1 with --dev or on SQLite; "
        "1: one process, no supervisor; more than 1 needs PostgreSQL)",
        flag="--workers",
        type=_count,
        metavar="N",
    )
    tls_cert: Path | None = _setting(
        None,
        section="tls",
        env="TLS_CERT",
        parse=_path,
        help="server certificate chain (PEM); goes with --tls-key",
        flag="--tls-cert",
        type=Path,
        metavar="FILE",
    )
    tls_key: Path | None = _setting(
        None,
        section="tls",
        env="TLS_KEY",
        parse=_path,
        help="server private key (PEM); goes with --tls-cert",
        flag="--tls-key",
        type=Path,
        metavar="FILE",
    )
    # With --tls-cert/--tls-key the HTTP side server (JWKS, discovery, metrics, probes) speaks HTTPS with the same
    # certificate; this keeps it plaintext (behind a proxy that terminates TLS, or probes that cannot use HTTPS).
    http_plaintext: bool = _setting(
        False,
        section="tls",
        env="HTTP_PLAINTEXT",
        parse=_flag,
        help="serve the HTTP port (JWKS, discovery, metrics, probes) without TLS even with --tls-cert",
        flag="--http-plaintext",
        action="store_true",
    )
    max_message_bytes: int = _setting(
        4 * 1024 * 1024, section="server", env="MAX_MESSAGE_BYTES", parse=_int, help="largest gRPC message"
    )
    # In-flight RPCs at most (each up to `max_message_bytes`): one more is refused RESOURCE_EXHAUSTED at once instead
    # of queueing, which bounds memory under a flood (issue 11); 0: unbounded.
    max_concurrent_rpcs: int = _setting(
        64,
        section="server",
        env="MAX_CONCURRENT_RPCS",
        parse=_int,
        help="refuse calls past N in flight with RESOURCE_EXHAUSTED (default 64; 0: unbounded)",
        flag="--max-concurrent-rpcs",
        type=_count,
        metavar="N",
    )
    # Bytes of requests held at once (running or waiting); past it RESOURCE_EXHAUSTED REQUEST_BYTES_IN_FLIGHT.
    max_request_bytes_in_flight: int = _setting(
        64 * 1024 * 1024,
        section="server",
        env="MAX_REQUEST_BYTES_IN_FLIGHT",
        parse=_int,
        help="bytes of requests held at once",
    )
    # Bounded executors per kind of work (transport/grpc/lanes.py): threads, and calls that may wait for one
    # before more are refused RESOURCE_EXHAUSTED SERVER_BUSY.
    appraise_threads: int = _setting(8, section="lanes", env="APPRAISE_THREADS", parse=_int, help="Appraise threads")
    appraise_queue: int = _setting(
        32, section="lanes", env="APPRAISE_QUEUE", parse=_int, help="Appraise calls waiting for a thread"
    )
    challenge_threads: int = _setting(
        4, section="lanes", env="CHALLENGE_THREADS", parse=_int, help="CreateChallenge threads"
    )
    challenge_queue: int = _setting(
        64, section="lanes", env="CHALLENGE_QUEUE", parse=_int, help="CreateChallenge calls waiting for a thread"
    )
    admin_threads: int = _setting(2, section="lanes", env="ADMIN_THREADS", parse=_int, help="admin call threads")
    admin_queue: int = _setting(
        16, section="lanes", env="ADMIN_QUEUE", parse=_int, help="admin calls waiting for a thread"
    )
    # Retention (verifier/housekeeping.py), a pass every `retention_interval_s` in the server (0: never): expired
    # challenges, kept evidence and collateral rows older than `retention_keep_days`, appraisals older than
    # `retention_appraisal_days` (0: kept) and, with `audit_checkpoint_dir` and `audit_checkpoint_keys` (verifier
    # key files), audit rows older than `retention_audit_days` (0: kept) under the latest checkpoint there.
    retention_interval_s: int = _setting(
        3600, section="retention", env="RETENTION_INTERVAL_S", parse=_int, help="seconds between passes (0: never)"
    )
    retention_keep_days: int = _setting(
        7, section="retention", env="RETENTION_KEEP_DAYS", parse=_int, help="challenges, kept evidence, collateral"
    )
    retention_appraisal_days: int = _setting(
        90, section="retention", env="RETENTION_APPRAISAL_DAYS", parse=_int, help="appraisals (0: kept)"
    )
    retention_audit_days: int = _setting(
        365, section="retention", env="RETENTION_AUDIT_DAYS", parse=_int, help="audit rows under a checkpoint"
    )
    audit_checkpoint_dir: Path | None = _setting(
        None, section="retention", env="AUDIT_CHECKPOINT_DIR", parse=_path, help="signed audit checkpoints"
    )
    audit_checkpoint_keys: tuple[Path, ...] = _setting(
        (), section="retention", env="AUDIT_CHECKPOINT_KEYS", parse=_paths, help="checkpoint verifier key files"
    )
    grace_seconds: float = _setting(
        5.0, section="server", env="GRACE_SECONDS", parse=_grace_seconds, help="in-flight RPCs at stop"
    )
    # On SIGTERM health says NOT_SERVING at once, the server keeps serving this long (load balancers see it and
    # two-step flows finish), then stops accepting and gives in-flight RPCs `grace_seconds`.
    drain_seconds: float = _setting(
        5.0,
        section="server",
        env="DRAIN_SECONDS",
        parse=drain_seconds,
        help="on SIGTERM, report NOT_SERVING and keep serving this long before stopping (default 5)",
        flag="--drain-seconds",
        type=_argument(drain_seconds),
        metavar="SECONDS",
    )
    # Admin calls need TLS (bearer tokens never travel in the clear) unless this is set and every listener is on
    # a loopback address (refused at start-up otherwise).
    allow_plaintext_admin: bool = _setting(
        False,
        section="admin auth",
        env="ALLOW_PLAINTEXT_ADMIN",
        parse=_flag,
        help="accept admin bearer tokens without TLS (only when every listen address is loopback)",
        flag="--allow-plaintext-admin",
        action="store_true",
    )
    # Admin API: SHA-256 hex digests of accepted bearer tokens. Empty means every admin call is refused.
    admin_token_sha256: tuple[str, ...] = _setting(
        (),
        section="admin auth",
        env="ADMIN_TOKEN_SHA256",
        parse=_digests,
        help="SHA-256 of an accepted admin bearer token (repeatable); none means admin calls are refused",
        flag="--admin-token-sha256",
        from_flag=_lowered,
        action="append",
        metavar="HEX",
    )
    # Admin API over mutual TLS: client certificates issued by this CA (PEM, may hold several) authenticate with
    # `admin_cert_role`. gRPC Python cannot *request* a client certificate without *requiring* one, so such
    # certificates reach the server on `admin_listen` (a second TLS port that requires them) or, with
    # `appraisal_requires_mtls`, on the main port.
    admin_client_ca: Path | None = _setting(
        None,
        section="admin auth",
        env="ADMIN_CLIENT_CA",
        parse=_path,
        help="PEM CA(s) whose client certificates may use the admin API (needs TLS and --admin-listen "
        "or --appraisal-requires-mtls)",
        flag="--admin-client-ca",
        type=Path,
        metavar="FILE",
    )
    admin_cert_role: str = _setting(
        "admin",
        section="admin auth",
        env="ADMIN_CERT_ROLE",
        parse=_text,
        help="role of an admin client certificate (default admin)",
        flag="--admin-cert-role",
        choices=("admin", "auditor"),
    )
    admin_listen: str | None = _setting(
        None,
        section="admin auth",
        env="ADMIN_LISTEN",
        parse=_text,
        help="a second TLS port that requires client certificates from --admin-client-ca",
        flag="--admin-listen",
        metavar="HOST:PORT",
    )
    # Verifier RPCs need a client certificate from `appraisal_client_ca` (or the admin CA).
    appraisal_requires_mtls: bool = _setting(
        False,
        section="tls",
        env="APPRAISAL_REQUIRES_MTLS",
        parse=_flag,
        help="every connection to the main port needs a client certificate (--appraisal-client-ca or the admin CA)",
        flag="--appraisal-requires-mtls",
        action="store_true",
    )
    appraisal_client_ca: Path | None = _setting(
        None,
        section="tls",
        env="APPRAISAL_CLIENT_CA",
        parse=_path,
        help="PEM CA(s) whose client certificates may call the Verifier service",
        flag="--appraisal-client-ca",
        type=Path,
        metavar="FILE",
    )
    log_level: str = _setting(
        "INFO",
        section="logging",
        env="LOG_LEVEL",
        parse=_text,
        help="DEBUG, INFO, WARNING (default INFO)",
        flag="--log-level",
    )
    # Vendor collateral: AMD KDS (through the database cache) unless offline. Revocation (the AMD CRL) is checked
    # unless `check_crl` is turned off (`--no-check-crl`, VERIFIER_CHECK_CRL=0).
    offline: bool = _setting(
        False,
        section="collateral",
        env="OFFLINE",
        parse=_flag,
        help="never fetch vendor collateral (AMD KDS); it must come with the requests",
        flag="--offline",
        action="store_true",
    )
    amd_kds_url: str = _setting(
        "https://kdsintf.amd.com",
        section="collateral",
        env="AMD_KDS_URL",
        parse=_text,
        help="AMD KDS base URL (default https://kdsintf.amd.com)",
        flag="--amd-kds-url",
        metavar="URL",
    )
    intel_pcs_url: str = _setting(  # or a PCCS base URL
        "https://api.trustedservices.intel.com",
        section="collateral",
        env="INTEL_PCS_URL",
        parse=_text,
        help="Intel PCS or PCCS base URL (default https://api.trustedservices.intel.com)",
        flag="--intel-pcs-url",
        metavar="URL",
    )
    # NVIDIA's services (nv-local-gpu-verifier config.py: RIM_SERVICE_BASE_URL, OCSP_URL): GPU RIMs by id
    # (GET {url}/v1/rim/{id}) and the OCSP responder of the device and RIM signing chains (POST).
    nvidia_rim_url: str = _setting(
        "https://rim.attestation.nvidia.com",
        section="collateral",
        env="NVIDIA_RIM_URL",
        parse=_text,
        help="NVIDIA RIM service base URL (default https://rim.attestation.nvidia.com)",
        flag="--nvidia-rim-url",
        metavar="URL",
    )
    # A local RIM store, asked before the RIM service and offline too: `<dir>/<RIM id>.xml`
    # (verifier/collateral/rim_directory.py); every RIM is verified as if it came from the service.
    nvidia_rim_dir: Path | None = _setting(
        None,
        section="collateral",
        env="NVIDIA_RIM_DIR",
        parse=_path,
        help="directory of NVIDIA RIMs named <RIM id>.xml, asked before the RIM service (offline too)",
        flag="--nvidia-rim-dir",
        type=Path,
        metavar="DIR",
    )
    nvidia_ocsp_url: str = _setting(
        "https://ocsp.ndis.nvidia.com",
        section="collateral",
        env="NVIDIA_OCSP_URL",
        parse=_text,
        help="NVIDIA OCSP responder URL (default https://ocsp.ndis.nvidia.com)",
        flag="--nvidia-ocsp-url",
        metavar="URL",
    )
    collateral_timeout: float = _setting(
        10.0,
        section="collateral",
        env="COLLATERAL_TIMEOUT_S",
        parse=_collateral_timeout,
        help="seconds one vendor request may take",
    )
    # Vendor fetches run on their own pool (collateral/fetch_pool.py): at most `fetch_workers` at once, at most
    # `fetch_queue` waiting (then COLLATERAL_BUSY), and a request waits at most `fetch_wait` seconds for one
    # (then COLLATERAL_TIMEOUT while the fetch goes on and fills the cache).
    fetch_workers: int = _setting(4, section="collateral", env="FETCH_WORKERS", parse=_int, help="vendor fetches")
    fetch_queue: int = _setting(32, section="collateral", env="FETCH_QUEUE", parse=_int, help="fetches waiting")
    fetch_wait: float = _setting(
        5.0, section="collateral", env="FETCH_WAIT_S", parse=_int, help="seconds a request waits for a fetch"
    )
    check_crl: bool = _setting(
        True,
        section="collateral",
        env="CHECK_CRL",
        parse=_flag,
        help="check the vendor CRLs (the default; --no-check-crl turns revocation checking off)",
        flag="--check-crl",
        action=argparse.BooleanOptionalAction,
    )
    # The cache refetches CRLs and Intel TCB info / QE identity once this old (before their nextUpdate).
    collateral_refresh: dt.timedelta = _setting(
        dt.timedelta(hours=1),
        section="collateral",
        env="COLLATERAL_REFRESH_SECONDS",
        parse=collateral_refresh,
        help="refetch cached CRLs and Intel TCB info / QE identity once this old (default 3600)",
        flag="--collateral-refresh",
        type=_argument(collateral_refresh),
        metavar="SECONDS",
    )
    policy_file: Path | None = _setting(
        None,
        section="appraisal",
        env="POLICY_FILE",
        parse=_path,
        help="named appraisal policies (JSON)",
        flag="--policy-file",
        type=Path,
        metavar="FILE",
    )
    # The policy of a request that names none, and the names a request may select (None: any known policy).
    default_policy: str | None = _setting(
        None,
        section="appraisal",
        env="DEFAULT_POLICY",
        parse=_text,
        help="the policy of a request that names none (default: the built-in 'default')",
        flag="--default-policy",
        metavar="NAME",
    )
    selectable_policies: tuple[str, ...] | None = _setting(
        None,
        section="appraisal",
        env="SELECTABLE_POLICIES",
        parse=_names,
        help="a policy requests may select by name (repeat; default: any known policy); others are "
        "PERMISSION_DENIED POLICY_NOT_ALLOWED",
        flag="--selectable-policy",
        from_flag=tuple,
        action="append",
        metavar="NAME",
    )
    # Kept evidence for impact analysis (`verifier refs plan --impact`): at most this many rows (0 disables) and
    # nothing older than `keep_evidence_days`.
    keep_evidence: int = _setting(
        1000, section="appraisal", env="KEEP_EVIDENCE", parse=_int, help="kept evidence rows (0 disables)"
    )
    keep_evidence_days: int = _setting(
        7, section="appraisal", env="KEEP_EVIDENCE_DAYS", parse=_int, help="days evidence is kept"
    )
    # Database bounds (0 turns one off): every call fails with UNAVAILABLE DATABASE_BUSY / DATABASE_UNAVAILABLE
    # within them instead of hanging (PostgreSQL statement_timeout / lock_timeout / connect_timeout, SQLite
    # busy_timeout, pool checkout).
    db_connect_timeout_s: int = _setting(
        3, section="database", env="DB_CONNECT_TIMEOUT_S", parse=_int, help="PostgreSQL connect_timeout"
    )
    db_statement_timeout_ms: int = _setting(
        5000, section="database", env="DB_STATEMENT_TIMEOUT_MS", parse=_int, help="PostgreSQL statement_timeout"
    )
    db_lock_timeout_ms: int = _setting(
        2000, section="database", env="DB_LOCK_TIMEOUT_MS", parse=_int, help="PostgreSQL lock_timeout"
    )
    db_busy_timeout_ms: int = _setting(
        2000, section="database", env="DB_BUSY_TIMEOUT_MS", parse=_int, help="SQLite busy_timeout"
    )
    db_pool_size: int = _setting(5, section="database", env="DB_POOL_SIZE", parse=_int, help="connection pool size")
    db_pool_timeout_s: int = _setting(
        3, section="database", env="DB_POOL_TIMEOUT_S", parse=_int, help="seconds a pool checkout waits"
    )
    # PostgreSQL: a whole unit of work is severed on the client side after this long (a silent server cannot hold
    # a thread longer); 0 disables.
    db_deadline_s: int = _setting(
        8, section="database", env="DB_DEADLINE_S", parse=_int, help="PostgreSQL unit-of-work deadline"
    )
    # Rate limits (RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo) on Verifier.CreateChallenge and .Appraise, per
    # client (TLS client certificate, else peer IP, IPv6 by /64; at most `rate_clients` tracked, LRU) and global.
    rate_challenge_per_client: Rate = _setting(
        Rate(20.0, 40),
        section="rate limits",
        env="RATE_CHALLENGE_PER_CLIENT",
        parse=rate,
        help="CreateChallenge calls per client a second, burst BURST (default 20:40; 0 disables)",
        flag="--rate-challenge-per-client",
        **_RATE_FLAG,
    )
    rate_challenge_global: Rate = _setting(
        Rate(500.0, 1000),
        section="rate limits",
        env="RATE_CHALLENGE_GLOBAL",
        parse=rate,
        help="CreateChallenge calls in all a second, burst BURST (default 500:1000; 0 disables)",
        flag="--rate-challenge-global",
        **_RATE_FLAG,
    )
    rate_appraise_per_client: Rate = _setting(
        Rate(20.0, 40),
        section="rate limits",
        env="RATE_APPRAISE_PER_CLIENT",
        parse=rate,
        help="Appraise calls per client a second, burst BURST (default 20:40; 0 disables)",
        flag="--rate-appraise-per-client",
        **_RATE_FLAG,
    )
    rate_appraise_global: Rate = _setting(
        Rate(500.0, 1000),
        section="rate limits",
        env="RATE_APPRAISE_GLOBAL",
        parse=rate,
        help="Appraise calls in all a second, burst BURST (default 500:1000; 0 disables)",
        flag="--rate-appraise-global",
        **_RATE_FLAG,
    )
    rate_clients: int = _setting(
        10_000,
        section="rate limits",
        env="RATE_CLIENTS",
        parse=_int,
        help="clients tracked for per-client rate limits, least recently seen forgotten (default 10000)",
        flag="--rate-clients",
        type=int,
        metavar="N",
    )
    # Not a setting: room for callers (tests) to carry more; never read from the environment or flags.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
