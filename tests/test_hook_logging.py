"""A hook's or tool's expected, handled error is one log line naming it (issue 16
follow-up, item 3); an unexpected exception is one line too, with its traceback at DEBUG at
most once per hook per call."""

from __future__ import annotations

import logging

import pytest

from botrun.core.errors import BotrunError, CallActionError
from botrun.core.hooks import HookSet
from botrun.core.tools import ToolRegistry, make_spec


class Bot:
    def on_dtmf(self, call: object, digit: str, p: object) -> None:
        raise CallActionError("cannot transfer anyone: not in the call")

    async def on_idle(self, call: object, seconds: float) -> None:
        raise KeyError("oops")


async def test_a_handled_call_action_error_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "botrun.hooks")
    hooks = HookSet("mybot.hooks:Bot", Bot, per_call=True, timeout_s=2).for_call()
    assert await hooks.call("on_dtmf", None, "1", None) is None
    records = [r for r in caplog.records if r.name == "botrun.hooks"]
    assert len(records) == 1, [r.getMessage() for r in records]
    rec = records[0]
    assert rec.levelno == logging.WARNING and rec.exc_info is None
    assert "on_dtmf" in rec.getMessage() and "mybot.hooks:Bot" in rec.getMessage()
    assert "cannot transfer anyone: not in the call" in rec.getMessage()
    assert "Traceback" not in caplog.text


async def test_an_unexpected_error_has_one_debug_traceback_per_hook_per_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "botrun.hooks")
    hooks = HookSet("mybot.hooks:Bot", Bot, per_call=True, timeout_s=2).for_call()
    for _ in range(3):
        await hooks.call("on_idle", None, 6.0)
    records = [r for r in caplog.records if r.name == "botrun.hooks"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all(r.exc_info is None for r in warnings)
    assert all("on_idle" in r.getMessage() and "KeyError" in r.getMessage() for r in warnings)
    traced = [r for r in records if r.exc_info]
    assert len(traced) == 1 and traced[0].levelno == logging.DEBUG
    assert caplog.text.count("Traceback") == 1


def refuse() -> str:
    """Always refused."""
    raise BotrunError("the line is busy")


async def test_a_tools_botrun_error_is_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "botrun.tools")
    registry = ToolRegistry([make_spec(refuse)])
    out = await registry.run("refuse", {})
    assert out.error == "tool 'refuse': the line is busy"
    assert "Traceback" not in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None


def crash_sync(n: int = 0) -> str:
    """Fails in its worker thread."""
    raise ValueError(f"bad value {n}")


async def crash_async() -> str:
    """Fails on the loop."""
    raise SystemExit(3)


@pytest.mark.parametrize(
    ("func", "why"), [(crash_sync, "ValueError: bad value 0"), (crash_async, "SystemExit: 3")]
)
async def test_a_failing_tool_is_one_warning_line_with_its_traceback_at_debug(
    caplog: pytest.LogCaptureFixture, func: object, why: str
) -> None:
    """New-user probe item 1: a tool that raises (worker thread or loop) is one WARNING line
    naming the tool and the error, its traceback at DEBUG once per tool per call."""
    caplog.set_level(logging.DEBUG, "botrun.tools")
    registry = ToolRegistry([make_spec(func)]).bind(None)  # type: ignore[arg-type]
    name = func.__name__  # type: ignore[attr-defined]
    for _ in range(2):
        out = await registry.run(name, {})
        assert out.error is not None and why in out.error
    records = [r for r in caplog.records if r.name == "botrun.tools"]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [f"tool {name} failed: {why}"] * 2
    assert all(r.exc_info is None for r in warnings)
    traced = [r for r in records if r.exc_info]
    assert len(traced) == 1 and traced[0].levelno == logging.DEBUG
    # a new call logs the traceback again (once)
    caplog.clear()
    await registry.bind(None).run(name, {})
    assert sum(1 for r in caplog.records if r.exc_info) == 1
