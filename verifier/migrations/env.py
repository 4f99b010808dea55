"""Alembic environment: uses the connection or URL that verifier.storage.migrate passes in `attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from verifier.storage.engine import Database
from verifier.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or use `verifier db upgrade`")
    db = Database(url)
    try:
        with db.engine.begin() as connection:
            _configure(connection)
    finally:
        db.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
