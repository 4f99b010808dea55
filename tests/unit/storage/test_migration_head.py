"""The server checks the schema revision without alembic (verifier/storage/migrate.py): `HEAD` is the head alembic
finds in verifier/migrations/versions/, the plain read of the version table agrees with alembic's, and serving
imports neither alembic nor signxml (about 12 MB of every worker's RSS)."""

from __future__ import annotations

import subprocess
import sys

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from verifier.storage import migrate


def test_the_written_down_head_is_the_head_of_the_version_scripts() -> None:
    assert migrate.HEAD == migrate.head() == migrate.scripts_head()


def test_the_plain_read_of_the_revision_agrees_with_alembic() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        assert migrate.current_revision(connection) is None  # no version table: never migrated
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        assert migrate.current_revision(connection) is None  # a table without a row
        connection.execute(text("INSERT INTO alembic_version VALUES ('0007')"))
        assert migrate.current_revision(connection) == "0007"
        assert MigrationContext.configure(connection).get_current_revision() == "0007"
        connection.execute(text("INSERT INTO alembic_version VALUES ('0006')"))
        assert migrate.current_revision(connection) not in (migrate.HEAD, None)  # two rows match no head
    engine.dispose()


def test_serving_imports_neither_alembic_nor_signxml() -> None:
    code = (
        "import sys; import verifier.cli.main, verifier.cli.serve, verifier.bootstrap, verifier.transport.grpc.server;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'signxml'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
