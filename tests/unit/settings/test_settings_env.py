"""A malformed VERIFIER_* variable is a usage error (exit 64) with its stable code, never a traceback."""

from __future__ import annotations

import pytest

from verifier.cli.main import main
from verifier.errors import ConfigError
from verifier.settings import from_environment


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VERIFIER_TOKEN_LIFETIME", "soon"),
        ("VERIFIER_TOKEN_LIFETIME", "-5"),
        ("VERIFIER_CHALLENGE_TTL", "nan"),
        ("VERIFIER_KEEP_EVIDENCE", "many"),
        ("VERIFIER_COLLATERAL_REFRESH_SECONDS", "-1"),
    ],
)
def test_bad_environment_is_exit_64(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    with pytest.raises(ConfigError):
        from_environment({name: value})
    monkeypatch.setenv(name, value)
    assert main(["db", "current"]) == 64
    err = capsys.readouterr().err
    assert "SETTING_INVALID" in err and "Traceback" not in err


def test_selectable_policies_from_the_environment() -> None:
    settings = from_environment(
        {"VERIFIER_SELECTABLE_POLICIES": "prod-snp, nonce-required,", "VERIFIER_DEFAULT_POLICY": "prod-snp"}
    )
    assert settings.selectable_policies == ("prod-snp", "nonce-required")
    assert settings.default_policy == "prod-snp"


def test_database_bounds_from_the_environment() -> None:
    settings = from_environment({"VERIFIER_DB_STATEMENT_TIMEOUT_MS": "1500", "VERIFIER_DB_BUSY_TIMEOUT_MS": "0"})
    assert (settings.db_statement_timeout_ms, settings.db_busy_timeout_ms, settings.db_lock_timeout_ms) == (
        1500,
        0,
        2000,
    )
    with pytest.raises(ConfigError):
        from_environment({"VERIFIER_DB_POOL_SIZE": "-1"})
