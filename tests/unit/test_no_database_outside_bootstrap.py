"""Issue 12 (structure): the CLI and the transport never make a `Database` themselves; `bootstrap.open_database`
does, so the database bounds (timeouts, pool, deadline) of the settings apply to every CLI command too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from verifier import bootstrap
from verifier.cli.main import main
from verifier.settings import Settings
from verifier.storage.engine import Database

PACKAGE = Path(bootstrap.__file__).resolve().parent


@pytest.mark.parametrize("folder", ["cli", "transport"])
def test_no_database_constructed_under(folder: str) -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bDatabase\(", line)
    ]
    assert found == [], "construct databases with verifier.bootstrap.open_database"


def test_open_database_applies_the_bounds(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", db_busy_timeout_ms=1234, db_deadline_s=0)
    database = bootstrap.open_database(settings)
    try:
        assert database._busy_timeout_ms == 1234
    finally:
        database.dispose()


def test_cli_commands_open_the_database_with_the_environment_bounds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, Any]] = []

    class Recording(Database):
        def __init__(self, url: str, **kwargs: Any) -> None:
            seen.append(kwargs)
            super().__init__(url, **kwargs)

    monkeypatch.setattr(bootstrap, "Database", Recording)
    monkeypatch.setenv("VERIFIER_DB_BUSY_TIMEOUT_MS", "1234")
    monkeypatch.setenv("VERIFIER_DB_POOL_SIZE", "2")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "upgrade", "--db", url]) == 0
    for argv in (
        ["tokens", "list"],
        ["audit", "list"],
        ["refs", "list"],
        ["policy", "list"],
        ["workloads", "list"],
        ["db", "prune"],
    ):
        seen.clear()
        assert main([*argv, "--db", url]) == 0, argv
        assert seen and all(k["busy_timeout_ms"] == 1234 and k["pool_size"] == 2 for k in seen), argv
    capsys.readouterr()
