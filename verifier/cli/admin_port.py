"""One handler per admin command, two ways to reach the data: each command group (`policy`, `tokens`, `audit`) has a
small port (a Protocol) with a database implementation wrapping the stores and a gRPC implementation calling the
admin API of `--server` (verifier.cli.remote). `open_port` picks one from the flags; the handler prints the same
output and returns the same exit code either way.

    with open_port(args, base, local=lambda db, settings: DatabaseTokens(db), remote=RemoteTokens) as tokens:
        infos = tokens.list()
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import grpc

from ..bootstrap import open_database
from ..settings import Settings
from ..storage import migrate
from ..storage.engine import Database
from .common import settings_for
from .remote import admin_channel, remote_from

P = TypeVar("P")


@contextmanager
def open_port(
    args: argparse.Namespace,
    base: Settings,
    *,
    local: Callable[[Database, Settings], P],
    remote: Callable[[grpc.Channel], P],
) -> Iterator[P]:
    """The remote implementation over a TLS admin channel when `--server` is given, else the local one on the
    migrated database of `--db` (disposed on exit). Raises UsageError (bad `--server` flags, unreadable credential
    files), UnavailableError / ConfigError from the database."""
    server = remote_from(args)
    if server is not None:
        with admin_channel(server) as channel:
            yield remote(channel)
        return
    settings = settings_for(args, base)
    db = open_database(settings)
    try:
        migrate.check(db)
        yield local(db, settings)
    finally:
        db.dispose()
