"""The port of `verifier tokens`: admin tokens in the database (`--db`) or through a server's AdminTokenService
(`--server`, admin role). Either way the token text exists only in the `create` answer."""

from __future__ import annotations

import argparse
import builtins
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..auth import current_actor
from ..clock import SystemClock
from ..settings import Settings
from ..storage.admin_tokens import SqlAdminTokens, TokenInfo
from ..storage.engine import Database
from ..v1 import admin_pb2 as apb
from ..v1 import admin_pb2_grpc as admin_grpc
from .admin_port import open_port
from .remote import call

ROLE_NUMBERS: dict[str, apb.AdminRole] = {"admin": apb.ADMIN_ROLE_ADMIN, "auditor": apb.ADMIN_ROLE_AUDITOR}


class TokenPort(Protocol):
    def create(self, name: str, role: str) -> tuple[TokenInfo, str]:
        """A new active token's record and its text (the only time it is available). Raises TOKEN_* errors."""
        ...

    def list(self) -> builtins.list[TokenInfo]:
        """Every token, oldest first."""
        ...

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke (audited). Raises TOKEN_NOT_FOUND, TOKEN_REVOKED."""
        ...


class DatabaseTokens:
    """`TokenPort` on the `admin_tokens` table; the actor is the OS user."""

    def __init__(self, db: Database, _settings: Settings | None = None) -> None:
        self._store = SqlAdminTokens(db)

    def create(self, name: str, role: str) -> tuple[TokenInfo, str]:
        return self._store.create(name, role, now=SystemClock().now(), actor=current_actor())

    def list(self) -> builtins.list[TokenInfo]:
        return self._store.list()

    def revoke(self, token_id: str) -> TokenInfo:
        return self._store.revoke(token_id, now=SystemClock().now(), actor=current_actor())


def _time(msg: apb.AdminToken, name: str) -> dt.datetime | None:
    if not msg.HasField(name):
        return None
    stamp: Timestamp = getattr(msg, name)
    return stamp.ToDatetime(tzinfo=dt.UTC)


def token_info(msg: apb.AdminToken) -> TokenInfo:
    """The wire record as the store's `TokenInfo`."""
    roles = {number: name for name, number in ROLE_NUMBERS.items()}
    created = _time(msg, "created_at") or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return TokenInfo(
        id=msg.id,
        name=msg.name,
        role=roles.get(msg.role, "unknown"),
        created_at=created,
        created_by=msg.created_by,
        revoked_at=_time(msg, "revoked_at"),
        last_used_at=_time(msg, "last_used_at"),
        revoked_by=msg.revoked_by or None,
    )


class RemoteTokens:
    """`TokenPort` over verifier.v1.AdminTokenService; the actor is the credential's principal."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = admin_grpc.AdminTokenServiceStub(channel)  # type: ignore[no-untyped-call]

    def create(self, name: str, role: str) -> tuple[TokenInfo, str]:
        request = apb.CreateAdminTokenRequest(name=name, role=ROLE_NUMBERS.get(role, apb.ADMIN_ROLE_UNSPECIFIED))
        reply = call(self._stub.CreateAdminToken, request)
        return token_info(reply.admin_token), reply.token

    def list(self) -> builtins.list[TokenInfo]:
        return [token_info(t) for t in call(self._stub.ListAdminTokens, apb.ListAdminTokensRequest()).admin_tokens]

    def revoke(self, token_id: str) -> TokenInfo:
        return token_info(call(self._stub.RevokeAdminToken, apb.RevokeAdminTokenRequest(id=token_id)).admin_token)


@contextmanager
def tokens(args: argparse.Namespace, base: Settings) -> Iterator[TokenPort]:
    """The `TokenPort` the flags name (what `admin_port.open_port` raises)."""
    local: Callable[[Database, Settings], TokenPort] = DatabaseTokens
    remote: Callable[[grpc.Channel], TokenPort] = RemoteTokens
    with open_port(args, base, local=local, remote=remote) as port:
        yield port
