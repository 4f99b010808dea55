"""Settings of the server: listeners, TLS, admin authentication, lanes and rate limits.

Part of `Settings` (verifier/settings/table.py): each field declared once with `_setting(...)`
(verifier/settings/field.py)."""

# ruff: noqa: RUF009 - `_setting(...)` is `dataclasses.field(...)` with the declaration in its metadata

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..event_loop import EVENT_LOOPS
from .field import _setting
from .parsers import (
    _RATE_FLAG,
    Rate,
    _argument,
    _count,
    _digests,
    _event_loop,
    _flag,
    _grace_seconds,
    _int,
    _lowered,
    _path,
    _text,
    drain_seconds,
    rate,
)


@dataclass(frozen=True)
class ServerFields:
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
    # The loop the gRPC server runs on (verifier/event_loop.py): auto is uvloop where installed.
    event_loop: str = _setting(
        "auto",
        section="server",
        env="EVENT_LOOP",
        parse=_event_loop,
        help="event loop of the gRPC server: auto (uvloop where installed, else asyncio), uvloop or asyncio",
        flag="--event-loop",
        choices=EVENT_LOOPS,
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
    # Appraisals that need no I/O but their unit of work are evaluated on the event loop, and only the unit is
    # handed to the group commit's thread (verifier.blocking; at most threads + queue at once); off: every
    # appraisal runs in an Appraise thread.
    appraise_inline: bool = _setting(
        True, section="lanes", env="APPRAISE_INLINE", parse=_flag, help="evaluate appraisals on the event loop"
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
