"""The event loop `verifier serve` and each of its workers run the gRPC server on (`Settings.event_loop`).

`auto` (the default) and `uvloop`: uvloop (libuv; the loop, its handles and its selector in C instead of asyncio's
Python), a declared dependency wherever it builds; `auto` falls back to asyncio's own loop where it is not installed
(Windows), `uvloop` refuses to start then (EVENT_LOOP_UNAVAILABLE). `asyncio`: the standard library's loop. gRPC's
asyncio stack runs on any asyncio loop (grpc/grpc#22311). Measured on this project's 2-core machine, 64 clients, one
process, alternating pairs: the service a median 6 % more appraisals per second on uvloop (Nitro and TDX, seven
pairs: six faster, one slower), the bare handler of the side-by-side benchmark 8-21 % (four pairs; it spends a larger
share of its time in the loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]
log = logging.getLogger(__name__)


def parse_choice(text: str) -> str:
    """A loop name as given (VERIFIER_EVENT_LOOP, any case, blanks around): one of `EVENT_LOOPS`. Raises
    ConfigError SETTING_INVALID otherwise."""
    choice = text.strip().lower()
    if choice not in EVENT_LOOPS:
        raise ConfigError("SETTING_INVALID", f"the event loop is one of {', '.join(EVENT_LOOPS)}, got {text[:20]!r}")
    return choice


def loop_factory(choice: str) -> LoopFactory | None:
    """The factory of the loop `choice` names (None: asyncio's default). Raises ConfigError EVENT_LOOP_UNAVAILABLE
    for `uvloop` when it is not installed, SETTING_INVALID for a name outside `EVENT_LOOPS`."""
    if parse_choice(choice) == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if parse_choice(choice) == "uvloop":
            raise ConfigError(
                "EVENT_LOOP_UNAVAILABLE", "--event-loop uvloop: uvloop is not installed (use auto or asyncio)"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(factory: LoopFactory | None) -> str:
    """What the log line at start-up names: `uvloop` or `asyncio`."""
    return "asyncio" if factory is None else factory.__module__.split(".")[0]


def run(main: Callable[[], Coroutine[Any, Any, T]], choice: str) -> T:
    """`asyncio.run(main())` on the loop `choice` names, the loop chosen (and refused) before `main` is called.
    Raises what `loop_factory` raises, and whatever `main` raises."""
    factory = loop_factory(choice)
    log.info("event loop: %s", loop_name(factory))
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
