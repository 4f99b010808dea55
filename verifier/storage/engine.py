"""Database connection: URL normalization, engine set-up, transactional sessions and error translation.

Every driver `OperationalError` leaving `Database.session()` or `Database.check()` becomes an
`UnavailableError("DATABASE_UNAVAILABLE")` whose message never contains the URL's password.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from ..errors import ConfigError, UnavailableError

DEFAULT_DATABASE_URL = "sqlite:///verifier.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_PG_PREFIXES = ("postgresql://", "postgres://")


def normalize_url(url: str) -> str:
    """Map bare PostgreSQL URLs to the psycopg 3 driver; leave everything else unchanged."""
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _parse(url: str) -> URL:
    try:
        return make_url(normalize_url(url))
    except (exc.ArgumentError, ValueError):
        raise ConfigError("DATABASE_URL_INVALID", "the database URL does not parse") from None


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, safe for logs and error messages."""
    try:
        return _parse(url).render_as_string(hide_password=True)
    except ConfigError:
        return "<unparseable database URL>"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


class Database:
    """One engine per process; `session()` is a unit of work that commits on success and rolls back on error."""

    def __init__(self, url: str, *, engine_options: Mapping[str, Any] | None = None) -> None:
        """`engine_options` are extra `create_engine` keywords (pool sizes, timeouts)."""
        parsed = _parse(url)
        options = dict(engine_options or {})
        self.url = parsed.render_as_string(hide_password=False)
        self._password = parsed.password or ""
        self._redacted = parsed.render_as_string(hide_password=True)
        try:
            if parsed.get_backend_name() == "sqlite":
                self.engine: Engine = create_engine(parsed, **options)
                event.listen(self.engine, "connect", _on_sqlite_connect)
            else:
                self.engine = create_engine(parsed, **{"pool_pre_ping": True, **options})
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            raise ConfigError("DATABASE_URL_INVALID", f"cannot use {self._redacted}: {type(error).__name__}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def redacted_url(self) -> str:
        return self._redacted

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn driver connectivity errors into `UnavailableError` with a password-free message."""
        try:
            yield
        except exc.OperationalError as error:
            if "no such table" in str(error.orig):  # SQLite's way of saying "not migrated"
                raise UnavailableError(
                    "DATABASE_NOT_MIGRATED", f"database {self._redacted} has no schema; run `verifier db upgrade`"
                ) from None
            detail = self._scrub(str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else "")
            raise UnavailableError(
                "DATABASE_UNAVAILABLE", f"database {self._redacted} unavailable: {detail or type(error.orig).__name__}"
            ) from None
        except exc.TimeoutError:
            raise UnavailableError(
                "DATABASE_UNAVAILABLE", f"database {self._redacted} unavailable: connection pool exhausted"
            ) from None
        except exc.ProgrammingError as error:
            if getattr(error.orig, "sqlstate", None) == "42P01":  # undefined_table
                raise UnavailableError(
                    "DATABASE_NOT_MIGRATED", f"database {self._redacted} has no schema; run `verifier db upgrade`"
                ) from None
            raise

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.translate_errors(), self._sessions.begin() as session:
            yield session

    def check(self) -> None:
        """Raise `UnavailableError` unless the database answers and is migrated to the head revision."""
        from .migrate import current_revision, head

        with self.translate_errors(), self.engine.connect() as connection:
            revision = current_revision(connection)
        expected = head()
        if revision != expected:
            raise UnavailableError(
                "DATABASE_NOT_MIGRATED",
                f"database {self._redacted} is at revision {revision or 'none'}, expected {expected}; "
                "run `verifier db upgrade`",
            )

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self._redacted!r})"
