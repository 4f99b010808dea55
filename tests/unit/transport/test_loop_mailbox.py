"""LoopMailbox: outcomes posted from other threads run on the loop, in order, with one wake-up per burst."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from verifier.transport.grpc.loop_mailbox import LoopMailbox


def test_a_burst_from_another_thread_runs_in_order_with_one_wake_up() -> None:
    async def scenario() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        mailbox, seen, wakes = LoopMailbox(loop), [], 0
        real = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            nonlocal wakes
            wakes += 1
            return real(callback, *args)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        finished = loop.create_future()

        def burst() -> None:  # the committing thread ends a batch of 50
            for index in range(50):
                mailbox.post(seen.append, index)
            mailbox.post(finished.set_result, None)

        thread = threading.Thread(target=burst)
        thread.start()
        thread.join()  # on the loop: the whole burst is posted while the loop cannot drain, as in a busy server
        await finished
        mailbox.post(seen.append, 50)  # a later burst wakes the loop again
        await asyncio.sleep(0.01)
        return seen, wakes

    seen, wakes = asyncio.run(scenario())
    assert seen == list(range(51))
    assert wakes == 2  # the burst's first post and the later one; a timing-free count (it was a range)


def test_a_failing_callback_is_reported_and_the_others_run() -> None:
    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        mailbox, seen = LoopMailbox(loop), []

        def fail() -> None:
            raise ValueError("boom")

        mailbox.post(fail)
        mailbox.post(seen.append, "after")
        await asyncio.sleep(0.01)
        return seen, reported

    seen, reported = asyncio.run(scenario())
    assert seen == ["after"] and isinstance(reported[0]["exception"], ValueError)


def test_a_closed_loop_refuses_and_the_mailbox_stays_usable_for_the_error() -> None:
    loop = asyncio.new_event_loop()
    mailbox = LoopMailbox(loop)
    loop.close()
    for _ in range(2):  # not left "scheduled": each post tries (and fails) again
        with pytest.raises(RuntimeError):
            mailbox.post(print, "never")
