"""``botrun web`` end to end in a real browser: headless Chromium (tests/browser_support.py)
opens the page, its fake microphone speaks real espeak-ng speech, and the page talks through
the browser transport, the bridge and botrun's agent client to the simulator, which echoes.

What the fake microphone says (one pass, no loop): 3 s of silence (the call connects), then
sentence A; 5 s of silence (the whole echo of A plays: it starts about 0.8 s after A ends and
lasts as long as A); sentence B, and 2.2 s after it ends sentence C, which the simulator
hears while it echoes B (from about 0.8 s to 4.3 s after B ends): a barge-in. Each margin is
over a second, for a loaded machine. C's reply calls the support bot's lookup_order tool."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from browser_support import chromium, js, wait_js
from scipy.signal import resample_poly
from speech import assert_found_in_order, speak, write_wav

from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import scenario_from_dict

RATE = 16000
TEXT_A = "Hello bot, can you hear me today?"
TEXT_B = "Please tell me about the weather in Paris tomorrow morning."
TEXT_C = "Stop, wait a moment please."
LOOKUP = "botrun.bots.examples.support:lookup_order"


def mic_file(directory: Path) -> tuple[Path, np.ndarray]:
    a = speak(TEXT_A, directory / "a.wav", RATE)
    b = speak(TEXT_B, directory / "b.wav", RATE)
    c = speak(TEXT_C, directory / "c.wav", RATE)
    gap = lambda s: np.zeros(int(s * RATE), dtype=np.int16)  # noqa: E731
    pcm = np.concatenate((gap(3.0), a, gap(5.0), b, gap(2.2), c, gap(3.0)))
    path = directory / "mic.wav"
    write_wav(path, pcm.astype("<i2").tobytes(), RATE)
    return path, a


def scenario() -> Any:
    return scenario_from_dict(
        {
            "name": "web-test",
            "reply": {"delay_ms": 100, "ms_per_char": 20},
            "turns": [
                {"user": TEXT_A, "reply": "You said: " + TEXT_A, "audio": "echo"},
                {"user": TEXT_B, "reply": "You said: " + TEXT_B, "audio": "echo"},
                {
                    "user": TEXT_C,
                    "reply": "Order found.",
                    "audio": "tone",
                    "tool": {"name": "lookup_order", "arguments": {"order_id": "A1001"}},
                },
            ],
        }
    )


async def test_a_whole_conversation_through_headless_chromium(tmp_path: Path) -> None:
    from botrun.bots.web import serve_calls
    from botrun.transports.browser.server import PageServer

    mic, speech_a = mic_file(tmp_path)
    calls = tmp_path / "calls"
    shots = Path(os.environ.get("BOTRUN_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    async with Simulator(scenario()) as sim:
        agent = {"greeting": "", "tools": [LOOKUP]}
        cfg = apply_overrides(config_from_dict({"agent": agent}), {"agent.url": sim.url})
        server = PageServer("127.0.0.1", 0, calls_dir=calls)
        await server.start()
        try:
            task = asyncio.create_task(
                serve_calls(server, cfg, None, record=calls, max_calls=1, signals=False)
            )
            with chromium(tmp_path / "profile", fake_mic=mic) as driver:
                # ?aec=off: the fake microphone holds no echo, and Chrome's echo canceller
                # would reshape the speech the test compares (the page's default is on)
                await asyncio.to_thread(driver.get, server.url + "&aec=off")
                await js(driver, "document.getElementById('start').click();")
                await wait_js(
                    driver,
                    "document.getElementById('conn').dataset.state",
                    "connection",
                    check=lambda v: v == "connected",
                )
                # A's echo plays whole; then B's echo is cut by C (a flush in the page)
                await wait_js(driver, "window.botrun.flushLog.length", "flush", timeout=60)
                await wait_js(
                    driver,
                    "document.querySelectorAll('#transcript li.user:not(.partial)').length",
                    "third user line",
                    timeout=30,
                    check=lambda n: n >= 3,
                )
                # C's reply calls the support bot's tool: the page lists it
                tools = await wait_js(
                    driver, "document.getElementById('tools').innerText", "tool call"
                )
                page = await js(driver, "return window.botrun;")
                dom = await js(driver, "return document.getElementById('transcript').innerText;")
                await asyncio.to_thread(driver.save_screenshot, str(shots / "web-call.png"))
                await js(
                    driver,
                    "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));",
                )
                code = await asyncio.wait_for(task, 30)
                # the page offers the finished call's report
                await wait_js(driver, "document.querySelectorAll('#calls a').length", "report link")
                href = await js(driver, "return document.querySelector('#calls a').href;")
                await asyncio.to_thread(driver.set_window_size, 1300, 1250)
                await asyncio.to_thread(driver.get, href)
                title = await asyncio.to_thread(lambda: driver.title)
                await asyncio.to_thread(driver.save_screenshot, str(shots / "web-report.png"))
        finally:
            await server.stop()
    assert code == 0
    assert (shots / "web-call.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (session,) = sim.sessions.values()
    # The words reach the simulator intact: every voiced 200 ms piece of sentence A is in
    # what the agent heard, in order and nearly unchanged (the browser resamples it twice).
    received = np.frombuffer(session.received_audio, dtype="<i2")
    ref24 = resample_poly(speech_a.astype(np.float64), 3, 2)
    assert_found_in_order(ref24, received, block=4800, min_corr=0.97)
    # The echo of A is played by the page whole, before B's echo was cut by C.
    echo_a = len(session.replies[0].audio) // 2
    first_flush = page["flushLog"][0]
    assert first_flush["played"] >= echo_a
    assert page["stats"]["played"] < sum(len(r.audio) // 2 for r in session.replies)
    # barge-in: the server told the page, which dropped what it still held
    kinds = [e["kind"] for e in page["events"]]
    assert "reply.interrupted" in kinds
    assert page["stats"]["flushes"] >= 1 and first_flush["flushed"] > 0
    assert page["stats"]["played"] <= page["stats"]["received"]
    # the transcript is in the DOM, with the cut reply marked
    for text in (TEXT_A, "You said: " + TEXT_A, TEXT_B, TEXT_C):
        assert text in dom
    assert "interrupted" in dom
    assert "lookup_order" in tools and '"order_id":"A1001"' in tools and "Maria Lopez" in tools
    assert title.startswith("botrun call report")
    # the recording and its report: the timeline read back matches the events
    (call_dir,) = [d for d in calls.iterdir() if d.is_dir()]
    check_report_matches_events(call_dir)


def check_report_matches_events(call_dir: Path) -> None:
    from report_support import marks, recorded_events

    events = recorded_events(call_dir)
    got = marks((call_dir / "report.html").read_text())
    assert not got["problems"], got["problems"]
    started = [e["t"] for e in events if e["kind"] == "speech.started"]
    stopped = [e["t"] for e in events if e["kind"] == "speech.stopped"]
    user = got["user-speech"]
    assert [m["start"] for m in user] == [round(t, 3) for t in started]
    assert [m["end"] for m in user] == [round(t, 3) for t in stopped]
    finals = [e["text"] for e in events if e["kind"] == "transcript.user" and e["final"]]
    assert [m["text"] for m in user if m["text"]] == finals
    replies = got["agent-reply"]
    assert [m["start"] for m in replies] == [
        round(e["t"], 3) for e in events if e["kind"] == "reply.started"
    ]
    lat = [e["latency_ms"] for e in events if e["kind"] == "reply.started" and e["latency_ms"]]
    assert [m["text"] for m in got["latency"]] == [f"{x:.0f} ms" for x in lat]
    assert [m["start"] for m in got["barge-in"]] == [
        round(e["t"], 3) for e in events if e["kind"] == "reply.interrupted"
    ]
    assert got["barge-in"], "the recorded call had a barge-in"
    assert got["waveform-mix"] and got["waveform-bot"]
    (tool,) = [e for e in events if e["kind"] == "tool.call"]
    marked = [(m["text"], m["end"]) for m in got["tool-call"]]
    assert marked == [("lookup_order", round(tool["t"], 3))]


async def test_a_refused_microphone_is_said_on_the_page(tmp_path: Path) -> None:
    from botrun.transports.browser.server import PageServer

    server = PageServer("127.0.0.1", 0)
    await server.start()
    try:
        with chromium(tmp_path / "profile", deny_mic=True) as driver:
            await asyncio.to_thread(driver.get, server.url)
            await js(driver, "document.getElementById('start').click();")
            text = await wait_js(
                driver,
                "!document.getElementById('message').hidden && "
                "document.getElementById('message').textContent",
                "microphone message",
            )
            state = await js(driver, "return document.getElementById('conn').textContent;")
    finally:
        await server.stop()
    assert text.startswith("The microphone was refused.")
    assert state == "no microphone"


async def test_a_second_tab_sees_busy(tmp_path: Path) -> None:
    """A call is under way (a first page, here a plain WebSocket client); a browser tab that
    starts a call is told the bot is busy, and says so."""
    import aiohttp

    from botrun.bots.web import serve_calls
    from botrun.transports.browser.server import PageServer

    async with Simulator() as sim:
        cfg = apply_overrides(config_from_dict({"agent": {"greeting": ""}}), {"agent.url": sim.url})
        server = PageServer("127.0.0.1", 0)
        await server.start()
        task = asyncio.create_task(
            serve_calls(server, cfg, None, record=None, max_calls=1, console=False, signals=False)
        )
        try:
            async with aiohttp.ClientSession() as http:
                first = await http.ws_connect(
                    f"ws://127.0.0.1:{server.port}/ws?token={server.token}"
                )
                assert json.loads((await first.receive()).data)["type"] == "welcome"
                with chromium(tmp_path / "profile") as driver:
                    await asyncio.to_thread(driver.get, server.url)
                    await js(driver, "document.getElementById('start').click();")
                    text = await wait_js(
                        driver,
                        "!document.getElementById('message').hidden && "
                        "document.getElementById('message').textContent",
                        "busy message",
                    )
                    conn = await js(driver, "return document.getElementById('conn').textContent;")
                await first.send_str(json.dumps({"type": "hangup"}))
                assert await asyncio.wait_for(task, 10) == 0
        finally:
            if not task.done():
                task.cancel()
            await server.stop()
    assert text.startswith("This bot is already in a call with another tab or window.")
    assert conn == "busy"
