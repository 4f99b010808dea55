"""Schema migrations (alembic, configured in code so they run from any working directory).

The migrations are package data (`verifier/migrations/`: env.py, script.py.mako, versions/), so an installed wheel
runs `verifier db upgrade` without the source tree. The server never migrates implicitly: operators run
`verifier db upgrade`; `check` (the readiness check of the server and the CLI) refuses a database at any other
revision than the head.

The server imports no alembic (about 10 MB of every worker's RSS): the readiness check compares the database's
`alembic_version` row, read with one plain `SELECT`, with `HEAD`, the head revision written down here;
`tests/unit/storage/test_migration_head.py` holds `HEAD` equal to what alembic finds in versions/. Alembic itself is
imported only to migrate (`upgrade`, `downgrade`) and by `scripts_head`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from ..errors import UnavailableError
from .db_faults import DATABASE_NOT_MIGRATED
from .engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

# The readiness check's warning keeps the logger it had while it lived in `Database.check` (engine.py).
log = logging.getLogger("verifier.storage.engine")

# verifier/migrations/, beside this package (in the source tree and in site-packages alike)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# The head revision of verifier/migrations/versions/ (a new migration changes it; the test above says so).
HEAD = "0007"
VERSION_TABLE = "alembic_version"  # alembic's default, which env.py keeps
_CURRENT = text("SELECT version_num FROM alembic_version")


def alembic_config(url: str) -> Config:
    """An alembic `Config` for `url` (passed to env.py via `attributes`, also as the escaped main option)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    return config


def head() -> str:
    """The head revision of verifier/migrations/ (`HEAD`). Never raises."""
    return HEAD


def scripts_head() -> str | None:
    """The head revision as alembic reads it from the version scripts (None when there is none: a broken install).
    Imports alembic; for tests and `verifier db` commands, not for the server."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision recorded on `connection`'s database (None when never migrated): what alembic's
    `MigrationContext.get_current_revision` reads, with one `SELECT` of its version table; several rows (a branched
    history, which this project never has) give them joined, which matches no head."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = [str(row[0]) for row in connection.execute(_CURRENT)]
    return "+".join(sorted(rows)) if rows else None


def check(db: Database) -> None:
    """Raise `UnavailableError` unless `db` answers and is migrated to the head revision: DATABASE_NOT_MIGRATED
    for any other revision (or none), else `Database.probe`'s errors (it runs even while units of work fail fast,
    on its own connection; passing ends the fail-fast state, DATABASE_UNAVAILABLE starts it)."""
    revision = db.probe(current_revision)
    expected = head()
    if revision != expected:
        log.warning("database %s: at revision %s, expected %s", db.redacted_url, revision, expected)
        raise UnavailableError(
            DATABASE_NOT_MIGRATED,
            f"the database is at schema revision {revision or 'none'}, expected {expected}; run `verifier db upgrade`",
        )


def current(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated)."""
    db = Database(url)
    try:
        with db.translate_errors(), db.engine.connect() as connection:
            return current_revision(connection)
    finally:
        db.dispose()


def _run(url: str, action: str, revision: str) -> None:
    from alembic import command

    db = Database(url, statement_timeout_ms=0)  # a migration may take long; lock waits stay bounded
    try:
        with db.translate_errors(), db.engine.begin() as connection:
            config = alembic_config(db.url)
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
    finally:
        db.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`. Raises UnavailableError when the database fails."""
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision`. Raises UnavailableError when the database fails."""
    _run(url, "downgrade", revision)
