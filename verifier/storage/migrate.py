"""Schema migrations (alembic, configured in code so they run from any working directory).

The migrations are package data (`verifier/migrations/`: env.py, script.py.mako, versions/), so an installed wheel
runs `verifier db upgrade` without the source tree. The server never migrates implicitly: operators run
`verifier db upgrade`; `check` (the readiness check of the server and the CLI) refuses a database at any other
revision than the head.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from ..errors import UnavailableError
from .db_faults import DATABASE_NOT_MIGRATED
from .engine import Database

# The readiness check's warning keeps the logger it had while it lived in `Database.check` (engine.py).
log = logging.getLogger("verifier.storage.engine")

# verifier/migrations/, beside this package (in the source tree and in site-packages alike)
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """An alembic `Config` for `url` (passed to env.py via `attributes`, also as the escaped main option)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    return config


@lru_cache(maxsize=1)
def head() -> str:
    """The head revision of verifier/migrations/. Raises RuntimeError when there is none (a broken install)."""
    revision = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    if revision is None:
        raise RuntimeError(f"no alembic revisions in {MIGRATIONS_DIR}")
    return revision


def current_revision(connection: Connection) -> str | None:
    """The revision recorded on `connection`'s database (None when never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


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
