"""`verifier db upgrade|current`: schema migrations (alembic, migrations/). The server never migrates."""

from __future__ import annotations

import argparse
from typing import Any

from ..settings import Settings
from ..storage import migrate
from .common import add_db_flag, settings_for


def register(sub: Any) -> None:
    parser = sub.add_parser("db", help="database schema")
    dbsub = parser.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate the schema to the newest revision")
    add_db_flag(up)
    up.add_argument("--revision", default="head")
    up.set_defaults(handler=_upgrade)
    cur = dbsub.add_parser("current", help="print the schema revision")
    add_db_flag(cur)
    cur.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace, base: Settings) -> int:
    settings = settings_for(args, base)
    migrate.upgrade(settings.database_url, args.revision)
    print(f"database at revision {migrate.current(settings.database_url)}")
    return 0


def _current(args: argparse.Namespace, base: Settings) -> int:
    settings = settings_for(args, base)
    print(migrate.current(settings.database_url) or "empty (run `verifier db upgrade`)")
    return 0
