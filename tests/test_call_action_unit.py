"""core/action.py on its own: where a call action runs, with real event loops and threads
(issue 16 follow-up 2; the whole flow through the bridge: tests/test_call_sync_actions.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from botrun.core.action import Action, call_action
from botrun.core.errors import CallActionError


class Owner:
    call_id = "call_test"

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.ran_on: list[threading.Thread] = []

    def _action_loop(self) -> asyncio.AbstractEventLoop | None:
        return self.loop

    @call_action(default="")
    async def dial(self, number: str) -> str:
        self.ran_on.append(threading.current_thread())
        if not number.startswith("+"):
            raise CallActionError("expected an E.164 number")
        await asyncio.sleep(0)
        return f"leg-{number}"


def in_thread(fn: Any) -> Any:
    out: list[Any] = []

    def work() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=work)
    t.start()
    return t, out


async def test_on_the_loop_an_action_is_awaited() -> None:
    owner = Owner(asyncio.get_running_loop())
    assert await owner.dial("+1") == "leg-+1"
    with pytest.raises(CallActionError, match=r"E\.164"):
        await owner.dial("1")
    pending = owner.dial("+2")
    with pytest.raises(RuntimeError, match=r"await call.dial\(...\)"):
        pending.result()
    assert await pending == "leg-+2"


async def test_from_a_thread_it_runs_on_the_loop_and_has_run_when_it_returns() -> None:
    owner = Owner(asyncio.get_running_loop())
    t, out = in_thread(lambda: owner.dial("+1").result())
    while t.is_alive():
        await asyncio.sleep(0.01)  # the loop stays free to run the action
    assert out == ["leg-+1"]
    assert owner.ran_on == [threading.current_thread()]  # (the loop's thread)
    t, out = in_thread(lambda: owner.dial("1"))
    while t.is_alive():
        await asyncio.sleep(0.01)
    assert isinstance(out[0], CallActionError)  # raised in the thread that asked


async def test_from_another_loop_it_is_awaited_there_and_runs_on_the_calls() -> None:
    owner = Owner(asyncio.get_running_loop())

    async def elsewhere() -> str:
        return await owner.dial("+3")

    t, out = in_thread(lambda: asyncio.run(elsewhere()))
    while t.is_alive():
        await asyncio.sleep(0.01)
    assert out == ["leg-+3"]
    assert owner.ran_on == [threading.current_thread()]


def test_after_the_calls_loop_closed_an_action_does_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "botrun.call")
    loop = asyncio.new_event_loop()
    loop.close()
    owner = Owner(loop)
    assert owner.dial("+1").result() == ""  # its default
    assert owner.ran_on == []
    assert "call call_test: dial ignored, the call has ended" in caplog.text


async def test_a_done_action_gives_its_value() -> None:
    done = Action.done("say", None)
    assert await done is None
    assert Action.done("dial", "x").result() == "x"
