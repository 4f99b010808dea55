"""verifier.cli.output (aligned tables, progress) and verifier.cli.remote (the `--server` flags and their rules)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from verifier.cli.common import UsageError, add_db_flag
from verifier.cli.output import format_table, progress
from verifier.cli.remote import TOKEN_ENV, Remote, add_server_flags, remote_from


def test_a_table_is_aligned_with_missing_values_as_dashes() -> None:
    rows = [{"id": 1, "kind": "nitro.pcr0", "ok": True}, {"id": 22, "kind": "tdx.mrtd", "label": "a\tb"}]
    text = format_table(rows, ["id", "kind", "label"])
    assert text.splitlines() == [
        "ID  KIND        LABEL",
        "1   nitro.pcr0  -",
        "22  tdx.mrtd    a b",
    ]
    assert format_table([{"ok": False}], ["ok"], ["Approved"]) == "Approved\nno\n"
    with pytest.raises(ValueError, match="one header per column"):
        format_table([], ["a", "b"], ["A"])


def test_progress_off_a_terminal_writes_one_line_per_tenth() -> None:
    out = io.StringIO()
    for done in range(1, 101):
        progress(done, 100, "impact", out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "impact: 10/100" and lines[-1] == "impact: 100/100" and len(lines) == 10
    progress(0, 0, "nothing", out)
    assert out.getvalue().count("\n") == 10


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_db_flag(parser)
    add_server_flags(parser)
    return parser.parse_args(argv)


def test_without_server_the_command_works_on_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert remote_from(_parse([])) is None
    with pytest.raises(UsageError, match="--ca-cert only make sense with --server"):
        remote_from(_parse(["--ca-cert", "ca.pem"]))


def test_server_flags_and_their_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(UsageError, match="needs a credential"):
        remote_from(_parse(["--server", "h:1"]))
    with pytest.raises(UsageError, match="exclusive"):
        remote_from(_parse(["--server", "h:1", "--db", "sqlite://", "--token-file", "t"]))
    with pytest.raises(UsageError, match="go together"):
        remote_from(_parse(["--server", "h:1", "--client-cert", "c.pem"]))
    remote = remote_from(_parse(["--server", "h:1", "--token-file", "t", "--server-name", "verifier"]))
    assert remote == Remote("h:1", token_file=Path("t"), server_name="verifier")
    monkeypatch.setenv(TOKEN_ENV, "secret")
    assert remote_from(_parse(["--server", "h:1"])) == Remote("h:1")
