"""`verifier serve --at RFC3339` (VERIFIER_FIXED_TIME), in process: the setting from its flag and its variable, refused
without `--dev` (FIXED_CLOCK_NEEDS_DEV, exit 64) before anything is built or forked, said loudly, and a worker's app
appraising at the fixed instant while its challenges keep real time (with the bare fixed clock they never expire)."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from verifier.bootstrap import build_app, build_signer, fixed_clock
from verifier.challenges import ConsumeOutcome
from verifier.cli import serve as serve_cmd
from verifier.cli.main import build_parser, main
from verifier.clock import FixedClock
from verifier.error_catalog import code_info
from verifier.errors import ConfigError, ErrorKind
from verifier.recording import RecordingUnit
from verifier.settings import Settings, apply_flags, from_environment
from verifier.storage.migrate import upgrade

TEXT = "2024-09-07T14:37:39Z"
AT = dt.datetime(2024, 9, 7, 14, 37, 39, tzinfo=dt.UTC)


def test_the_setting_from_its_flag_and_its_variable() -> None:
    assert Settings().fixed_time is None
    assert from_environment({"VERIFIER_FIXED_TIME": TEXT}).fixed_time == AT
    assert from_environment({"VERIFIER_FIXED_TIME": "2024-09-07T16:37:39+02:00"}).fixed_time == AT
    args = build_parser().parse_args(["serve", "--at", TEXT])
    assert apply_flags(Settings(), args, serve_cmd.serve_settings()) == from_environment({"VERIFIER_FIXED_TIME": TEXT})


@pytest.mark.parametrize("text", ["yesterday", "2024-09-07T14:37:39", "2024-09-07"])
def test_a_malformed_time_is_a_usage_error(
    text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_environment({"VERIFIER_FIXED_TIME": text})
    assert caught.value.code == "SETTING_INVALID"
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--at", text])
    assert stop.value.code == 64
    assert "--at" in capsys.readouterr().err
    monkeypatch.setenv("VERIFIER_FIXED_TIME", text)
    assert main(["serve"]) == 64
    err = capsys.readouterr().err
    assert "SETTING_INVALID" in err and "Traceback" not in err


def test_a_fixed_clock_needs_development() -> None:
    assert fixed_clock(Settings()) is None
    assert fixed_clock(Settings(development=True)) is None
    with pytest.raises(ConfigError) as caught:
        fixed_clock(Settings(fixed_time=AT))
    assert caught.value.code == "FIXED_CLOCK_NEEDS_DEV" and "--dev" in caught.value.message
    assert code_info("FIXED_CLOCK_NEEDS_DEV").kind is ErrorKind.REQUEST
    clock = fixed_clock(Settings(fixed_time=AT, development=True))
    assert isinstance(clock, FixedClock) and clock.now() == AT


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_without_dev_is_refused_before_anything_is_built(
    workers: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("built or forked despite the refusal")

    monkeypatch.setattr(serve_cmd, "build_server_app", never)
    monkeypatch.setattr(serve_cmd, "Supervisor", never)
    url = f"sqlite:///{tmp_path / 'verifier.db'}"
    assert main(["serve", "--db", url, "--workers", workers, "--at", TEXT]) == 64
    err = capsys.readouterr().err
    assert "verifier: FIXED_CLOCK_NEEDS_DEV:" in err and "Traceback" not in err


def test_serving_with_a_fixed_clock_says_so_and_turns_retention_off(caplog: pytest.LogCaptureFixture) -> None:
    assert serve_cmd.with_fixed_clock(Settings()) == Settings()
    settings = Settings(development=True, fixed_time=AT)
    with caplog.at_level(logging.WARNING, logger="verifier.cli.serve"):
        served = serve_cmd.with_fixed_clock(settings)
    assert served.fixed_time == AT and served.retention_interval_s == 0 and settings.retention_interval_s == 3600
    assert f"DEVELOPMENT MODE: the appraisal clock is fixed at {TEXT}" in caplog.text


def _consume(recorder: Any, nonce: bytes) -> ConsumeOutcome:
    """Consume `nonce` in a unit of work, at the fixed instant as the service passes it."""

    def work(unit: RecordingUnit) -> ConsumeOutcome:
        return unit.consume(nonce, at=AT)

    outcome: ConsumeOutcome = recorder.run(work)
    return outcome


def test_a_worker_appraises_at_the_fixed_time_and_its_challenges_keep_real_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'verifier.db'}"
    upgrade(url)
    ttl = dt.timedelta(seconds=0.3)
    settings = Settings(database_url=url, development=True, offline=True, fixed_time=AT, challenge_ttl=ttl)
    signer = build_signer(settings)
    components = serve_cmd.build_worker(settings, signer)
    try:
        service = components.service
        assert service.clock.now() == AT and service.signer is signer
        assert components.hot is not None and components.hot._clock.now() == AT  # the snapshot's cutoff too
        before = dt.datetime.now(dt.UTC)
        used, expiring = service.create_challenge(), service.create_challenge()
        assert before <= used.created_at <= dt.datetime.now(dt.UTC) and used.expires_at == used.created_at + ttl
        assert _consume(service.appraisals, used.nonce) is ConsumeOutcome.OK
        assert _consume(service.appraisals, used.nonce) is ConsumeOutcome.ALREADY_USED
        with service.appraisals.begin() as unit:  # type: ignore[union-attr]
            assert unit.consume(b"\x00" * 32, at=AT) is ConsumeOutcome.UNKNOWN
        time.sleep(max(0.0, (expiring.expires_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.05)
        assert _consume(service.appraisals, expiring.nonce) is ConsumeOutcome.EXPIRED
    finally:
        components.close()
    # The bare fixed clock (what the benchmark's shim did): a challenge made at the fixed instant never expires.
    frozen = build_app(settings, clock=FixedClock(AT))
    try:
        challenge = frozen.service.create_challenge()
        assert challenge.created_at == AT
        time.sleep(ttl.total_seconds() + 0.05)
        assert _consume(frozen.service.appraisals, challenge.nonce) is ConsumeOutcome.OK
    finally:
        frozen.close()
