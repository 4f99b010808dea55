"""Settings, read once. This is the only module that reads the environment."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .storage.engine import DEFAULT_DATABASE_URL

ENV_PREFIX = "VERIFIER_"


@dataclass(frozen=True)
class Rate:
    """A token bucket: `per_second` tokens a second, at most `burst` held. 0 (either) means unlimited."""

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_second > 0 and self.burst > 0


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    # Result signing: PEM files, the first is the active key. Without one the server refuses to start unless
    # `development` is set, which generates an ephemeral key and says so loudly.
    signing_keys: tuple[Path, ...] = ()
    # Or a rotating keyring directory (`verifier keys init|rotate`); exclusive with `signing_keys`.
    signing_key_dir: Path | None = None
    development: bool = False
    trust_anchors: Path | None = None
    issuer: str = "tee-verifier"
    token_lifetime: dt.timedelta = dt.timedelta(minutes=5)
    challenge_ttl: dt.timedelta = dt.timedelta(minutes=2)
    # Server.
    listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:9464"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_message_bytes: int = 4 * 1024 * 1024
    # In-flight RPCs at most (each up to `max_message_bytes`): one more is refused RESOURCE_EXHAUSTED at once instead
    # of queueing, which bounds memory under a flood (issue 11); 0: unbounded.
    max_concurrent_rpcs: int = 64
    # Bytes of requests held at once (running or waiting); past it RESOURCE_EXHAUSTED REQUEST_BYTES_IN_FLIGHT.
    max_request_bytes_in_flight: int = 64 * 1024 * 1024
    # Bounded executors per kind of work (transport/grpc/lanes.py): threads, and calls that may wait for one
    # before more are refused RESOURCE_EXHAUSTED SERVER_BUSY.
    appraise_threads: int = 8
    appraise_queue: int = 32
    challenge_threads: int = 4
    challenge_queue: int = 64
    admin_threads: int = 2
    admin_queue: int = 16
    # Retention (verifier/housekeeping.py), a pass every `retention_interval_s` in the server (0: never): expired
    # challenges, kept evidence and collateral rows older than `retention_keep_days`, appraisals older than
    # `retention_appraisal_days` (0: kept) and, with `audit_checkpoint_dir` and `audit_checkpoint_keys` (verifier
    # key files), audit rows older than `retention_audit_days` (0: kept) under the latest checkpoint there.
    retention_interval_s: int = 3600
    retention_keep_days: int = 7
    retention_appraisal_days: int = 90
    retention_audit_days: int = 365
    audit_checkpoint_dir: Path | None = None
    audit_checkpoint_keys: tuple[Path, ...] = ()
    grace_seconds: float = 5.0
    # On SIGTERM health says NOT_SERVING at once, the server keeps serving this long (load balancers see it and
    # two-step flows finish), then stops accepting and gives in-flight RPCs `grace_seconds`.
    drain_seconds: float = 5.0
    # Admin calls need TLS (bearer tokens never travel in the clear) unless this is set and every listener is on
    # a loopback address (refused at start-up otherwise).
    allow_plaintext_admin: bool = False
    # Admin API: SHA-256 hex digests of accepted bearer tokens. Empty means every admin call is refused.
    admin_token_sha256: tuple[str, ...] = ()
    # Admin API over mutual TLS: client certificates issued by this CA (PEM, may hold several) authenticate with
    # `admin_cert_role`. gRPC Python cannot *request* a client certificate without *requiring* one, so such
    # certificates reach the server on `admin_listen` (a second TLS port that requires them) or, with
    # `appraisal_requires_mtls`, on the main port.
    admin_client_ca: Path | None = None
    admin_cert_role: str = "admin"
    admin_listen: str | None = None
    # Verifier RPCs need a client certificate from `appraisal_client_ca` (or the admin CA).
    appraisal_requires_mtls: bool = False
    appraisal_client_ca: Path | None = None
    log_level: str = "INFO"
    # Vendor collateral: AMD KDS (through the database cache) unless offline. Revocation (the AMD CRL) is checked
    # unless `check_crl` is turned off (`--no-check-crl`, VERIFIER_CHECK_CRL=0).
    offline: bool = False
    amd_kds_url: str = "https://kdsintf.amd.com"
    intel_pcs_url: str = "https://api.trustedservices.intel.com"  # or a PCCS base URL
    collateral_timeout: float = 10.0
    # Vendor fetches run on their own pool (collateral/fetch_pool.py): at most `fetch_workers` at once, at most
    # `fetch_queue` waiting (then COLLATERAL_BUSY), and a request waits at most `fetch_wait` seconds for one
    # (then COLLATERAL_TIMEOUT while the fetch goes on and fills the cache).
    fetch_workers: int = 4
    fetch_queue: int = 32
    fetch_wait: float = 5.0
    check_crl: bool = True
    # The cache refetches CRLs and Intel TCB info / QE identity once this old (before their nextUpdate).
    collateral_refresh: dt.timedelta = dt.timedelta(hours=1)
    policy_file: Path | None = None
    # The policy of a request that names none, and the names a request may select (None: any known policy).
    default_policy: str | None = None
    selectable_policies: tuple[str, ...] | None = None
    # Kept evidence for impact analysis (`verifier refs plan --impact`): at most this many rows (0 disables) and
    # nothing older than `keep_evidence_days`.
    keep_evidence: int = 1000
    keep_evidence_days: int = 7
    # Database bounds (0 turns one off): every call fails with UNAVAILABLE DATABASE_BUSY / DATABASE_UNAVAILABLE
    # within them instead of hanging (PostgreSQL statement_timeout / lock_timeout / connect_timeout, SQLite
    # busy_timeout, pool checkout).
    db_connect_timeout_s: int = 3
    db_statement_timeout_ms: int = 5000
    db_lock_timeout_ms: int = 2000
    db_busy_timeout_ms: int = 2000
    db_pool_size: int = 5
    db_pool_timeout_s: int = 3
    # PostgreSQL: a whole unit of work is severed on the client side after this long (a silent server cannot hold
    # a thread longer); 0 disables.
    db_deadline_s: int = 8
    # Rate limits (RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo) on Verifier.CreateChallenge and .Appraise, per
    # client (TLS client certificate, else peer IP, IPv6 by /64; at most `rate_clients` tracked, LRU) and global.
    rate_challenge_per_client: Rate = Rate(20.0, 40)
    rate_challenge_global: Rate = Rate(500.0, 1000)
    rate_appraise_per_client: Rate = Rate(20.0, 40)
    rate_appraise_global: Rate = Rate(500.0, 1000)
    rate_clients: int = 10_000
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def from_environment(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from VERIFIER_* variables (CLI flags override them in `cli.py`)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get(ENV_PREFIX + name)
        return value if value not in (None, "") else None

    def path(name: str) -> Path | None:
        value = get(name)
        return Path(value) if value else None

    keys = get("SIGNING_KEY")
    admin = get("ADMIN_TOKEN_SHA256")
    return Settings().with_overrides(
        database_url=get("DATABASE_URL"),
        signing_keys=tuple(Path(p) for p in keys.split(os.pathsep)) if keys else None,
        signing_key_dir=path("SIGNING_KEY_DIR"),
        development=_flag(get("DEVELOPMENT")) or None,
        trust_anchors=path("TRUST_ANCHORS"),
        issuer=get("ISSUER"),
        listen=get("LISTEN"),
        http_listen=get("HTTP_LISTEN"),
        tls_cert=path("TLS_CERT"),
        tls_key=path("TLS_KEY"),
        drain_seconds=drain_seconds(get("DRAIN_SECONDS")),
        allow_plaintext_admin=_flag(get("ALLOW_PLAINTEXT_ADMIN")),
        admin_token_sha256=tuple(t.strip().lower() for t in admin.split(",") if t.strip()) if admin else None,
        admin_client_ca=path("ADMIN_CLIENT_CA"),
        admin_cert_role=get("ADMIN_CERT_ROLE"),
        admin_listen=get("ADMIN_LISTEN"),
        appraisal_requires_mtls=_flag(get("APPRAISAL_REQUIRES_MTLS")),
        appraisal_client_ca=path("APPRAISAL_CLIENT_CA"),
        log_level=get("LOG_LEVEL"),
        token_lifetime=_seconds(get("TOKEN_LIFETIME")),
        challenge_ttl=_seconds(get("CHALLENGE_TTL")),
        offline=_flag(get("OFFLINE")),
        amd_kds_url=get("AMD_KDS_URL"),
        intel_pcs_url=get("INTEL_PCS_URL"),
        check_crl=_flag(get("CHECK_CRL")),
        collateral_refresh=collateral_refresh(get("COLLATERAL_REFRESH_SECONDS")),
        policy_file=path("POLICY_FILE"),
        default_policy=get("DEFAULT_POLICY"),
        selectable_policies=_names(get("SELECTABLE_POLICIES")),
        keep_evidence=_int(get("KEEP_EVIDENCE")),
        keep_evidence_days=_int(get("KEEP_EVIDENCE_DAYS")),
        max_concurrent_rpcs=_int(get("MAX_CONCURRENT_RPCS")),
        max_request_bytes_in_flight=_int(get("MAX_REQUEST_BYTES_IN_FLIGHT")),
        retention_interval_s=_int(get("RETENTION_INTERVAL_S")),
        retention_keep_days=_int(get("RETENTION_KEEP_DAYS")),
        retention_appraisal_days=_int(get("RETENTION_APPRAISAL_DAYS")),
        retention_audit_days=_int(get("RETENTION_AUDIT_DAYS")),
        audit_checkpoint_dir=path("AUDIT_CHECKPOINT_DIR"),
        audit_checkpoint_keys=_paths(get("AUDIT_CHECKPOINT_KEYS")),
        appraise_threads=_int(get("APPRAISE_THREADS")),
        appraise_queue=_int(get("APPRAISE_QUEUE")),
        challenge_threads=_int(get("CHALLENGE_THREADS")),
        challenge_queue=_int(get("CHALLENGE_QUEUE")),
        admin_threads=_int(get("ADMIN_THREADS")),
        admin_queue=_int(get("ADMIN_QUEUE")),
        db_connect_timeout_s=_int(get("DB_CONNECT_TIMEOUT_S")),
        db_statement_timeout_ms=_int(get("DB_STATEMENT_TIMEOUT_MS")),
        db_lock_timeout_ms=_int(get("DB_LOCK_TIMEOUT_MS")),
        db_busy_timeout_ms=_int(get("DB_BUSY_TIMEOUT_MS")),
        db_pool_size=_int(get("DB_POOL_SIZE")),
        db_pool_timeout_s=_int(get("DB_POOL_TIMEOUT_S")),
        db_deadline_s=_int(get("DB_DEADLINE_S")),
        fetch_workers=_int(get("FETCH_WORKERS")),
        fetch_queue=_int(get("FETCH_QUEUE")),
        fetch_wait=_int(get("FETCH_WAIT_S")),
        rate_challenge_per_client=rate(get("RATE_CHALLENGE_PER_CLIENT")),
        rate_challenge_global=rate(get("RATE_CHALLENGE_GLOBAL")),
        rate_appraise_per_client=rate(get("RATE_APPRAISE_PER_CLIENT")),
        rate_appraise_global=rate(get("RATE_APPRAISE_GLOBAL")),
        rate_clients=_int(get("RATE_CLIENTS")),
    )


def _paths(value: str | None) -> tuple[Path, ...] | None:
    """A comma-separated list of file paths (VERIFIER_AUDIT_CHECKPOINT_KEYS)."""
    return None if value is None else tuple(Path(p.strip()) for p in value.split(",") if p.strip())


def _names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated list of names (VERIFIER_SELECTABLE_POLICIES)."""
    return None if value is None else tuple(n.strip() for n in value.split(",") if n.strip())


def _seconds(value: str | None) -> dt.timedelta | None:
    """VERIFIER_TOKEN_LIFETIME / VERIFIER_CHALLENGE_TTL: positive seconds (ConfigError otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 365 * 86400:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"expected positive seconds, got {value[:20]!r}")
    return dt.timedelta(seconds=seconds)


def collateral_refresh(value: str | float | None) -> dt.timedelta | None:
    """VERIFIER_COLLATERAL_REFRESH_SECONDS / --collateral-refresh: non-negative seconds (ConfigError otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 365 * 86400:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"collateral refresh must be 0..31536000 seconds, got {str(value)[:20]!r}")
    return dt.timedelta(seconds=seconds)


def drain_seconds(value: str | float | None) -> float | None:
    """VERIFIER_DRAIN_SECONDS / --drain-seconds: 0..3600 seconds (ConfigError otherwise)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"drain must be 0..3600 seconds, got {str(value)[:20]!r}")
    return seconds


def rate(value: str | None) -> Rate | None:
    """VERIFIER_RATE_* / --rate-*: `RATE[:BURST]`, RATE calls a second (0 disables), BURST at least 1 (default
    twice RATE, at least 1). Raises ConfigError SETTING_INVALID otherwise."""
    if value is None:
        return None
    text, _, burst_text = value.strip().partition(":")
    try:
        per_second = float(text)
        burst = int(burst_text) if burst_text else max(1, math.ceil(2 * per_second))
    except (ValueError, OverflowError):
        per_second, burst = -1.0, 0
    if per_second == 0:
        return Rate(0.0, 0)
    if not 0 < per_second <= 1e6 or not 1 <= burst <= 10**7:  # also refuses nan and inf
        raise ConfigError("SETTING_INVALID", f"a rate is RATE[:BURST] (calls a second, 0 disables), got {value[:20]!r}")
    return Rate(per_second, burst)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ConfigError("SETTING_INVALID", f"expected a non-negative integer, got {value[:20]!r}")
    return number


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.lower() in ("1", "true", "yes", "on")
