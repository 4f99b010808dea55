"""verifier/event_loop.py: which loop each setting gives, the refusal of a missing uvloop, and `run`."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from verifier import event_loop
from verifier.errors import ConfigError
from verifier.settings.parsers import _event_loop


def test_auto_and_uvloop_give_uvloop_where_it_is_installed() -> None:
    assert event_loop.loop_factory("auto") is uvloop.new_event_loop
    assert event_loop.loop_factory("uvloop") is uvloop.new_event_loop
    assert event_loop.loop_name(event_loop.loop_factory("auto")) == "uvloop"


def test_asyncio_gives_the_standard_loop() -> None:
    assert event_loop.loop_factory("asyncio") is None
    assert event_loop.loop_name(None) == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert event_loop.loop_factory("auto") is None
    with pytest.raises(ConfigError) as refused:
        event_loop.loop_factory("uvloop")
    assert refused.value.code == "EVENT_LOOP_UNAVAILABLE"


def test_an_unknown_loop_is_a_setting_error() -> None:
    with pytest.raises(ConfigError) as refused:
        event_loop.loop_factory("trio")
    assert refused.value.code == "SETTING_INVALID"


@pytest.mark.parametrize(("choice", "loop_type"), [("auto", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_run_runs_the_coroutine_on_the_chosen_loop(choice: str, loop_type: type) -> None:
    async def main() -> type:
        return type(asyncio.get_running_loop())

    ran = event_loop.run(main, choice)
    assert issubclass(ran, loop_type)
    assert (ran is uvloop.Loop) == (choice == "auto")


def test_a_refused_loop_never_calls_main(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop is chosen first: a refusal leaves no coroutine created and never awaited."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    called = []

    async def main() -> None:
        called.append(True)

    with pytest.raises(ConfigError):
        event_loop.run(lambda: (called.append(False), main())[1], "uvloop")
    assert called == []


@pytest.mark.parametrize(("text", "choice"), [("auto", "auto"), (" UVLOOP ", "uvloop"), ("asyncio", "asyncio")])
def test_the_environment_variable_takes_the_three_names(text: str, choice: str) -> None:
    assert _event_loop(text) == choice


def test_the_environment_variable_refuses_other_names() -> None:
    with pytest.raises(ConfigError) as refused:
        _event_loop("tokio")
    assert refused.value.code == "SETTING_INVALID"
