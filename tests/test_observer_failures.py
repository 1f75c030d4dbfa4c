"""A failing observer (new-user probe item 4): a plugin's ``botrun_observe`` that raises is
one WARNING line naming the plugin the first time (then counted, every 100th logged), its
traceback at DEBUG; the call goes on and the other plugins and observers still get every
event. Run through the runner, as ``botrun wav`` runs a call: the real plugin manager, the
WAV transport, the simulator and espeak-ng speech."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from speech import speak
from test_bridge_e2e import RATE, Recorder, RecordingWav, config

from botrun.core import events as ev
from botrun.core.config import apply_overrides
from botrun.core.hookspecs import hookimpl
from botrun.core.observers import LOG_EVERY, ObserverFailures
from botrun.core.plugins import get_plugin_manager
from botrun.core.sim import Simulator
from botrun.transports.wav.transport import WavInput


class FlakyPlugin:
    """A plugin whose observer raises on every event."""

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def botrun_observe(self, event: Any) -> None:
        self.seen += 1
        raise RuntimeError("observer bug")


class GoodPlugin:
    def __init__(self) -> None:
        self.kinds: list[str] = []

    @hookimpl
    def botrun_observe(self, event: Any) -> None:
        self.kinds.append(event.kind)


def broken_observer(event: Any) -> None:
    """An observer handed to the call (not a plugin) that raises on every event."""
    raise KeyError("no such field")


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    path = tmp_path / "hello.wav"
    speak("Hello, can you hear me?", path)
    return path


async def test_a_failing_plugin_observer_is_one_warning_naming_the_plugin(
    tmp_path: Path, speech: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from botrun.bots.runner import call
    from botrun.transports.wav.wavio import read_wav_mono16

    caplog.set_level(logging.DEBUG, "botrun")
    flaky, good = FlakyPlugin(), GoodPlugin()
    pm = get_plugin_manager()
    pm.register(good, name="good-plugin")
    pm.register(flaky, name="flaky-plugin")  # registered last: pluggy calls it first
    transport = RecordingWav(
        [WavInput(speech, read_wav_mono16(speech, RATE), 0.0, "Ann")], tmp_path / "o.wav", RATE
    )
    rec = Recorder()
    try:
        async with Simulator() as sim:
            cfg = apply_overrides(
                config(),
                {"agent.url": sim.url, "bridge.idle_timeout_s": 0.0, "bridge.leave_grace_s": 1.0},
            )
            summary = await call(
                transport,
                cfg,
                None,
                None,
                console=False,
                observers=[rec, broken_observer],
                signals=False,
            )
    finally:
        pm.unregister(flaky)
        pm.unregister(good)
    # the call went on: the agent answered, and every event reached the other plugin
    assert len(summary.metrics.turns) >= 1
    assert flaky.seen > 1 and good.kinds == [e.kind for e in rec.events]
    assert ev.REPLY_STARTED in good.kinds
    records = [r for r in caplog.records if "observer" in r.getMessage()]
    problems = [r for r in records if r.levelno >= logging.WARNING]
    assert len(problems) == 2, [r.getMessage() for r in problems]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in problems)
    plugin, plain = (r.getMessage() for r in problems)
    assert "plugin 'flaky-plugin'" in plugin and "FlakyPlugin.botrun_observe" in plugin
    assert "RuntimeError: observer bug" in plugin and "<function" not in plugin
    assert "observer test_observer_failures.broken_observer failed on" in plain
    assert "KeyError: 'no such field'" in plain
    traced = [r for r in records if r.exc_info]
    assert len(traced) == 2 and all(r.levelno == logging.DEBUG for r in traced)


def test_failures_are_counted_and_every_hundredth_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "botrun.observers")
    failures = ObserverFailures()
    for _ in range(2 * LOG_EVERY + 1):
        failures.failed("obs", lambda: "my observer", "reply.done", ValueError("x"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith("observer my observer failed on reply.done: ValueError: x")
    assert f"has failed {LOG_EVERY} times" in warnings[1]
    assert f"has failed {2 * LOG_EVERY} times" in warnings[2]
    assert failures.counts["obs"] == 2 * LOG_EVERY + 1
