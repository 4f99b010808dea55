"""`--server HOST:PORT`: admin commands against a running verifier over its authenticated gRPC admin API.

The server accepts admin calls only over TLS (a bearer token sent in the clear is refused there too), so the channel
is always a TLS channel: the server's CA from `--ca-cert` (default: the system roots), the credential either a
bearer token (`--token-file`, or `VERIFIER_ADMIN_TOKEN` in the environment; never a flag value, which would end up
in shell history and `ps`) or an admin client certificate (`--client-cert` / `--client-key`, for the admin mTLS
port). Without `--server` the commands work on the database directly (`--db`), as before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ..client.sync import client_error
from ..clock import SystemClock
from ..errors import VerifierError
from .common import UsageError

TOKEN_ENV = "VERIFIER_ADMIN_TOKEN"  # noqa: S105 (the variable's name, not a token)
CALL_TIMEOUT_SECONDS = 60.0
LONG_CALL_TIMEOUT_SECONDS = 1800.0  # calls that re-appraise kept evidence on the server (`refs plan --impact`)


@dataclass(frozen=True)
class Remote:
    """Where and how to reach the admin API (`--server` and its credential flags)."""

    target: str
    ca_cert: Path | None = None
    token_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    server_name: str | None = None


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    """`--server` and its credential flags; `remote_from(args)` reads them back."""
    group = parser.add_argument_group("remote server (instead of --db)")
    group.add_argument("--server", metavar="HOST:PORT", help="a running verifier's gRPC admin endpoint (TLS)")
    group.add_argument("--ca-cert", type=Path, help="PEM CA bundle the server's TLS certificate chains to")
    group.add_argument(
        "--token-file", type=Path, help=f"file holding an admin bearer token (or ${TOKEN_ENV} in the environment)"
    )
    group.add_argument("--client-cert", type=Path, help="admin client certificate (PEM), for the admin mTLS port")
    group.add_argument("--client-key", type=Path, help="its private key (PEM)")
    group.add_argument("--server-name", help="TLS name to check the server certificate against (default: HOST)")


def remote_from(args: argparse.Namespace) -> Remote | None:
    """The `--server` settings of `args`, or None when the command works on the database.

    Raises UsageError: a credential flag without `--server`, `--db` beside `--server`, a certificate without its
    key, or no credential at all (the server would refuse the call anyway; say so before connecting)."""
    target = getattr(args, "server", None)
    flags = ("ca_cert", "token_file", "client_cert", "client_key", "server_name")
    if target is None:
        given = [f"--{name.replace('_', '-')}" for name in flags if getattr(args, name, None) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} only make sense with --server")
        return None
    if getattr(args, "database_url", None):
        raise UsageError("--db and --server are exclusive: an admin command works on one of them")
    remote = Remote(target, *(getattr(args, name, None) for name in flags))
    if (remote.client_cert is None) != (remote.client_key is None):
        raise UsageError("--client-cert and --client-key go together")
    if remote.client_cert is None and remote.token_file is None and not os.environ.get(TOKEN_ENV):
        raise UsageError(f"--server needs a credential: --token-file, ${TOKEN_ENV} or --client-cert/--client-key")
    return remote


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None


def _token(remote: Remote) -> str | None:
    raw = _read(remote.token_file, "--token-file")
    token = raw.decode("utf-8", "replace").strip() if raw is not None else os.environ.get(TOKEN_ENV, "").strip()
    return token or None


@contextmanager
def admin_channel(remote: Remote) -> Iterator[grpc.Channel]:
    """A TLS channel to `remote.target` carrying its credential on every call. Raises UsageError when a file
    cannot be read."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(remote.ca_cert, "--ca-cert"),
        private_key=_read(remote.client_key, "--client-key"),
        certificate_chain=_read(remote.client_cert, "--client-cert"),
    )
    token = None if remote.client_cert is not None else _token(remote)
    if token is not None:
        credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(token))
    options = [("grpc.ssl_target_name_override", remote.server_name)] if remote.server_name else []
    channel = grpc.secure_channel(remote.target, credentials, options=options)
    try:
        yield channel
    finally:
        channel.close()


def remote_error(error: grpc.RpcError) -> VerifierError:
    """The failed call as the `VerifierError` the database path raises for the same failure: the server's stable
    code (its google.rpc.ErrorInfo reason, else the gRPC status name) and the kind of its status, so the CLI
    prints one line and exits as it would on the database (verifier.client.sync.client_error)."""
    return client_error(error)


def call(method: Any, request: Any, *, timeout: float = CALL_TIMEOUT_SECONDS) -> Any:
    """`method(request)` within `timeout` seconds. Raises `remote_error(...)` of a failed call."""
    try:
        return method(request, timeout=timeout)
    except grpc.RpcError as error:
        raise remote_error(error) from None


class RemoteClock:
    """The instant a remote command shows states at: this machine's clock, but never before an instant the server
    reported for a change it just made (`saw`), so that a client clock behind the server's does not show a row
    revoked a moment ago as still active."""

    def __init__(self) -> None:
        self._latest: dt.datetime | None = None

    def saw(self, *instants: dt.datetime | None) -> None:
        for instant in instants:
            if instant is not None and (self._latest is None or instant > self._latest):
                self._latest = instant

    def now(self) -> dt.datetime:
        now = SystemClock().now()
        return max(now, self._latest) if self._latest is not None else now
