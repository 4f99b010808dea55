"""Settings of the database, result signing, appraisal and logging.

Part of `Settings` (verifier/settings/table.py): each field declared once with `_setting(...)`
(verifier/settings/field.py)."""

# ruff: noqa: RUF009 - `_setting(...)` is `dataclasses.field(...)` with the declaration in its metadata

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..storage.engine import DEFAULT_DATABASE_URL
from .field import _setting
from .parsers import (
    _argument,
    _flag,
    _instant,
    _int,
    _names,
    _path,
    _pathsep_paths,
    _seconds,
    _text,
    _timedelta_or_none,
)


@dataclass(frozen=True)
class AppraisalFields:
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
    log_level: str = _setting(
        "INFO",
        section="logging",
        env="LOG_LEVEL",
        parse=_text,
        help="DEBUG, INFO, WARNING (default INFO)",
        flag="--log-level",
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
