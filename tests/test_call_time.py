"""Figures are in the call's time (rec5 item 2): a ``botrun wav --speed 4`` call runs four
times faster than real time, and its response latency and tool durations are what the
participants waited in the call, not the wall clock (a 1 s latency printed as 250 ms). What
is wall clock by nature (the bridge's processing time per frame) says so in its label."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import run_botrun
from report_support import recorded_events, summary_rows
from speech import speak

from botrun.core import events as ev
from botrun.core.metrics import CallMetrics
from botrun.core.participants import Roster
from botrun.core.protocol import ToolDone
from botrun.core.reporting import TurnReporter

SPEED = 4.0


def _reporter(scale: float) -> tuple[TurnReporter, list[ev.BridgeEvent]]:
    got: list[ev.BridgeEvent] = []
    roster = Roster("mix")
    roster.join("ann", "Ann")
    transport = type("T", (), {})()
    return TurnReporter(transport, roster, CallMetrics(time_scale=scale), got.append), got


def test_latency_and_tool_time_are_reported_in_call_time() -> None:
    r, got = _reporter(SPEED)
    r.user_turn(speech_stopped_at=100.0)
    r.reply_started("r1")
    turn = r.reply_turn
    assert turn is not None
    r.first_audio(turn, 100.25)  # 250 ms of wall clock: 1 s of the call
    r.tool_done(ToolDone("c1", "lookup", {}, '"ok"', None, 100.0))
    r.end_reply("completed")
    (started,) = [e for e in got if isinstance(e, ev.ReplyStarted)]
    (metrics,) = [e for e in got if isinstance(e, ev.TurnMetrics)]
    (tool,) = [e for e in got if isinstance(e, ev.ToolCalled)]
    assert started.latency_ms == pytest.approx(1000.0)
    assert metrics.latency_ms == pytest.approx(1000.0)
    assert r.metrics.latencies_ms == [pytest.approx(1000.0)]
    assert tool.duration_ms == pytest.approx(400.0)
    lines = r.metrics.summary().splitlines()
    assert any("median 1000 ms" in ln for ln in lines), lines
    (processing,) = [ln for ln in lines if ln.startswith("bridge processing")]
    assert "wall clock" in processing  # (the machine's time, never scaled: said so)


def test_at_real_time_nothing_changes() -> None:
    r, got = _reporter(1.0)
    r.user_turn(speech_stopped_at=100.0)
    r.reply_started("r1")
    assert r.reply_turn is not None
    r.first_audio(r.reply_turn, 100.25)
    (started,) = [e for e in got if isinstance(e, ev.ReplyStarted)]
    assert started.latency_ms == pytest.approx(250.0)
    assert "wall clock" not in r.metrics.summary()


async def test_a_speed_4_call_prints_the_latency_the_call_had(tmp_path: Path) -> None:
    """``botrun wav --speed 4 --record`` against a simulator at the same speed (the support
    bot and its bundled caller, real speech): the latency the console prints, the recording's
    events and ``botrun report`` show is the time between the user's speech stopping and the
    reply starting on the call's own axis (they used to show a quarter of it)."""
    from botrun.bots.demo import sample_path
    from botrun.core.sim import Simulator
    from botrun.core.sim.scenario import load_scenario

    async with Simulator(load_scenario("support"), speed=SPEED) as sim:
        res = await asyncio.to_thread(
            run_botrun, "wav", "--config", "support", "--input", str(sample_path("support")),
            "--output", "out.wav", "--record", "rec", "--speed", f"{SPEED:g}",
            "--agent-url", sim.url, cwd=tmp_path, timeout=120,
        )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    events = recorded_events(tmp_path / "rec")
    timed: list[tuple[float, float]] = []  # (latency ms, its interval on the call's axis)
    stopped: float | None = None
    for e in events:
        if e["kind"] == "speech.stopped":
            stopped = e["t"]
        elif e["kind"] == "reply.started" and e["latency_ms"] is not None:
            assert stopped is not None
            timed.append((e["latency_ms"], e["t"] - stopped))
    assert timed, events
    for latency, on_axis in timed:
        # the same interval measured twice, both in the call's time (not a speed goal)
        assert latency / 1000 == pytest.approx(on_axis, abs=0.15), (latency, on_axis)
    figures = sorted(f"{lat:.0f}" for lat, _ in timed)  # (rounded as the console does)
    printed = re.findall(r"\(reply after (\d+) ms\)", res.stdout)
    assert sorted(printed) == figures, res.stdout
    median = re.search(r"response latency \(you stop speaking -> bot audio out\): median (\d+) ms",
                       res.stdout)  # fmt: skip
    middle = sorted(lat for lat, _ in timed)[len(timed) // 2]
    assert median and median.group(1) == f"{middle:.0f}", res.stdout
    assert "bridge processing (wall clock" in res.stdout, res.stdout
    rep = await asyncio.to_thread(run_botrun, "report", "rec", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    rows = summary_rows((tmp_path / "rec" / "report.html").read_text())
    assert rows["latency (you stop → bot audio)"].startswith(f"median {median.group(1)} ms")


def test_the_report_prints_the_latency_the_console_printed(tmp_path: Path) -> None:
    """The recording's end line kept latencies rounded to 0.1 ms and the report rounded them
    again: 1128.54 ms, printed 1129 by the console, became 1128.5 and then 1128."""
    from types import SimpleNamespace

    from botrun.bots.report import write_report
    from botrun.core.metrics import Turn
    from botrun.core.recording import CallRecorder, summary_figures

    metrics = CallMetrics()
    metrics.turns.append(Turn(speech_stopped_at=10.0, first_audio_at=11.12854))
    console = re.search(r"median (\d+) ms", metrics.summary())
    assert console and console.group(1) == "1129"
    rec = CallRecorder(tmp_path / "rec", transport="test")
    rec.close("done", None, summary_figures(SimpleNamespace(metrics=metrics)))
    path, _ = write_report(tmp_path / "rec")
    rows = summary_rows(path.read_text())
    assert rows["latency (you stop → bot audio)"].startswith("median 1129 ms"), rows


def test_a_wall_clock_timer_says_so_at_another_speed(tmp_path: Path) -> None:
    """The bridge's timers (here ``max_duration_s``) count wall-clock time; on a --speed 4
    call the reason they give says so, next to a call length in the call's time."""
    from botrun.bots.runner import SharedOptions, build_config, call
    from botrun.core.config import apply_overrides
    from botrun.core.plugins import transports
    from botrun.core.sim import Simulator
    from botrun.transports.wav.plugin import SPEC
    from botrun.transports.wav.transport import WavInput, WavTransport

    rate = 16000
    said = speak("Hello, is anybody there?", tmp_path / "in.wav", rate, pad_s=12.0)
    base = build_config(SharedOptions(), SPEC, list(transports()))

    async def run() -> object:
        async with Simulator(speed=SPEED) as sim:
            cfg = apply_overrides(base, {"agent.url": sim.url, "bridge.max_duration_s": 1.0})
            t = WavTransport(
                [WavInput(tmp_path / "in.wav", said.tobytes(), 0.0, "Ann")],
                tmp_path / "out.wav", rate, SPEED,
            )  # fmt: skip
            return await call(t, cfg, None, None, console=False, signals=False)

    summary: Any = asyncio.run(run())
    assert summary.reason == "maximum call duration reached (1 s of wall clock)"
    assert summary.metrics.call_length_s() >= SPEED * 1.0  # (the call's time: 4 s and more)
