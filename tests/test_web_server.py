"""The page's server and the browser transport against bad input, with a real aiohttp
client on loopback, the real bridge and the simulator (no browser needed here): the token,
cross-origin WebSockets, a second tab, malformed page messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.sim import Simulator


class Call:
    def __init__(self, server: Any, sim: Any, task: asyncio.Task[int]) -> None:
        self.server, self.sim, self.task = server, sim, task

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def ws_url(self, token: bool = True) -> str:
        q = f"?token={self.server.token}" if token else ""
        return f"ws://127.0.0.1:{self.server.port}/ws{q}"


@pytest_asyncio.fixture
async def web_call(tmp_path: Path) -> AsyncIterator[Call]:
    """``botrun web``'s loop (one call) with the simulator, no console."""
    from botrun.bots.web import serve_calls
    from botrun.transports.browser.server import PageServer

    async with Simulator() as sim:
        cfg = apply_overrides(config_from_dict({"agent": {"greeting": ""}}), {"agent.url": sim.url})
        server = PageServer("127.0.0.1", 0, calls_dir=tmp_path / "calls")
        await server.start()
        task = asyncio.create_task(
            serve_calls(
                server, cfg, None, record=tmp_path / "calls", max_calls=1, console=False,
                signals=False,
            )
        )  # fmt: skip
        try:
            yield Call(server, sim, task)
        finally:
            if not task.done():
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await server.stop()


async def _messages(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 10) -> Any:
    async def scan() -> Any:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == kind:
                    return data
        raise AssertionError(f"socket closed before {kind!r}")

    return await asyncio.wait_for(scan(), timeout)


async def _page_until_ended(ws_url: str) -> None:
    """A page joins (``welcome``, then ``hello`` at 16 kHz) and stays until the bot ends
    the call (the page never hangs up)."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url)
        await _messages(ws, "welcome")
        await ws.send_str(json.dumps({"type": "hello", "rate": 16000}))
        await _messages(ws, "ended", timeout=30)


def _serving(server: Any, cfg: Any, calls: Path, max_calls: int) -> asyncio.Task[int]:
    """``botrun web``'s call loop on ``server``, recording under ``calls``, quietly."""
    from botrun.bots.web import serve_calls

    return asyncio.create_task(
        serve_calls(server, cfg, None, record=calls, max_calls=max_calls, console=False,
                    signals=False)
    )  # fmt: skip


async def test_every_request_needs_the_token(web_call: Call) -> None:
    # (unsafe: the default jar keeps no cookie for an IP address such as 127.0.0.1)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for path in ("/", "/static/app.js", "/calls", "/ws"):
            async with http.get(web_call.base + path) as r:
                assert r.status == 403, path
                assert "token" in await r.text()
            async with http.get(web_call.base + path + "?token=wrong") as r:
                assert r.status == 403, path
        async with http.get(f"{web_call.base}/?token={web_call.server.token}") as r:
            assert r.status == 200
            assert "Start call" in await r.text()
        # the page's own requests then carry the token as a cookie
        async with http.get(web_call.base + "/static/worklet.js") as r:
            assert r.status == 200
            assert "registerProcessor" in await r.text()
        async with http.get(web_call.base + "/static/../server.py") as r:
            assert r.status in (403, 404)


async def test_a_websocket_from_another_origin_is_refused(web_call: Call) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(web_call.ws_url(), headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403


async def test_a_second_tab_is_told_busy(web_call: Call) -> None:
    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(web_call.ws_url())
        await _messages(first, "welcome")
        second = await http.ws_connect(web_call.ws_url())
        assert (await _messages(second, "busy"))["type"] == "busy"
        await second.receive()
        assert second.closed and second.close_code == 1013
        assert web_call.server.busy_refusals == 1
        # the first tab's call goes on, and ends when it hangs up
        await first.send_str(json.dumps({"type": "hangup"}))
        assert (await _messages(first, "ended"))["reason"] == "hung up on the page"
        assert await asyncio.wait_for(web_call.task, 10) == 0


async def test_malformed_page_messages_are_logged_dropped_and_survived(
    web_call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    from botrun.transports.browser.messages import MAX_BINARY

    caplog.set_level(logging.WARNING, logger="botrun.browser")
    rate = 16000
    voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2").tobytes()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(web_call.ws_url())
        await _messages(ws, "welcome")
        await ws.send_bytes(voiced[:640])  # audio before hello: no rate to read it at
        for bad in (
            "not json",
            "[1, 2]",
            '{"type": "bogus"}',
            '{"type": "hello", "rate": "fast"}',
            '{"type": "hello", "rate": 5}',
            '{"type": "mute", "muted": "yes"}',
            "x" * 5000,
        ):
            await ws.send_str(bad)
        await ws.send_str(json.dumps({"type": "hello", "rate": rate}))
        await ws.send_bytes(voiced[:641])  # odd length: not PCM16
        await ws.send_bytes(bytes(MAX_BINARY + 2))  # oversized
        for i in range(0, len(voiced), 640):  # and the call goes on: 1 s of voice, paced
            await ws.send_bytes(voiced[i : i + 640])
            await asyncio.sleep(0.02)
        await ws.send_str(json.dumps({"type": "hangup"}))
        await _messages(ws, "ended")
    assert await asyncio.wait_for(web_call.task, 10) == 0
    (session,) = web_call.sim.sessions.values()
    assert session.received_samples >= 0.9 * 24000  # the second of voice reached the agent
    dropped = [r for r in caplog.records if "dropped a message from the page" in r.getMessage()]
    assert len(dropped) == 5  # each logged up to five, then at debug level
    summary = [r for r in caplog.records if "malformed messages from the page" in r.getMessage()]
    assert len(summary) == 1 and "dropped 10 malformed" in summary[0].getMessage()


async def test_an_oversized_page_message_is_dropped_and_the_call_goes_on(
    web_call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 1: 600 kB of audio (over the page protocol's 192 kB, under the socket's
    hard limit) is dropped and counted; the call does not end."""
    caplog.set_level(logging.WARNING, logger="botrun.browser")
    rate = 16000
    voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2").tobytes()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(web_call.ws_url())
        await _messages(ws, "welcome")
        await ws.send_str(json.dumps({"type": "hello", "rate": rate}))
        await ws.send_bytes(bytes(600_000))
        for i in range(0, len(voiced), 640):  # the call goes on: 1 s of voice, paced
            await ws.send_bytes(voiced[i : i + 640])
            await asyncio.sleep(0.02)
        await ws.send_str(json.dumps({"type": "hangup"}))
        assert (await _messages(ws, "ended"))["reason"] == "hung up on the page"
    assert await asyncio.wait_for(web_call.task, 10) == 0
    (session,) = web_call.sim.sessions.values()
    assert session.received_samples >= 0.9 * 24000
    text = caplog.text
    assert "audio message of 600000 bytes (limit 192000)" in text
    assert "dropped 1 malformed" in text and "connection closed" not in text


async def test_a_second_hello_is_dropped_and_the_rate_stays(
    web_call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 2: a ``hello`` mid-call does not change the microphone's rate (16 kHz audio
    read as 48 kHz would reach the agent time-stretched, a third as long)."""
    caplog.set_level(logging.WARNING, logger="botrun.browser")
    rate = 16000
    voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2").tobytes()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(web_call.ws_url())
        await _messages(ws, "welcome")
        await ws.send_str(json.dumps({"type": "hello", "rate": rate}))
        await ws.send_str(json.dumps({"type": "hello", "rate": 48000}))
        for i in range(0, len(voiced), 640):  # 1 s of 16 kHz voice, paced
            await ws.send_bytes(voiced[i : i + 640])
            await asyncio.sleep(0.02)
        await ws.send_str(json.dumps({"type": "hangup"}))
        await _messages(ws, "ended")
    assert await asyncio.wait_for(web_call.task, 10) == 0
    (session,) = web_call.sim.sessions.values()
    assert session.received_samples >= 0.9 * 24000  # a whole second at the agent's 24 kHz
    assert "dropped a message from the page: a second hello (rate 48000 Hz" in caplog.text
    assert "dropped 1 malformed messages from the page: {'a second hello': 1}" in caplog.text


async def test_a_page_message_over_the_hard_limit_closes_with_a_reason(
    web_call: Call, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe item 1: beyond the socket's hard limit (memory safety) the socket closes (1009)
    and the log says why."""
    from botrun.transports.browser.messages import MAX_FRAME

    caplog.set_level(logging.WARNING, logger="botrun.browser")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(web_call.ws_url())
        await _messages(ws, "welcome")
        await ws.send_str(json.dumps({"type": "hello", "rate": 16000}))
        with contextlib.suppress(ConnectionError):  # (the server may close mid-send)
            await ws.send_bytes(bytes(MAX_FRAME + 2))
        with contextlib.suppress(AssertionError):
            await _messages(ws, "never", timeout=30)
        assert ws.closed
    assert await asyncio.wait_for(web_call.task, 10) == 0
    assert f"over the hard limit of {MAX_FRAME} bytes" in caplog.text


async def test_botrun_browser_is_one_call_with_the_first_page(tmp_path: Path) -> None:
    """The ``browser`` transport command: serves the page, the call is the first tab's, and
    the command ends when it hangs up; ``--record`` works for it like for any transport."""
    import os
    import re
    import sys

    from botrun.transports.browser.plugin import DEFAULT_PORT

    async with Simulator() as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botrun.bots.cli", "browser", "--port", "0",
            "--agent-url", sim.url, "--record", str(tmp_path / "rec"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        )  # fmt: skip
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        url = re.search(r"http://127\.0\.0\.1:(\d+)/\S+", line)
        assert url, line
        # probe item 5: --port 0 picks a free port (not the default 7870) and prints it
        assert int(url.group(1)) not in (0, DEFAULT_PORT), line
        ws_url = url.group(0).replace("http://", "ws://").replace("/?token", "/ws?token")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url)
            await _messages(ws, "welcome")
            await ws.send_str(json.dumps({"type": "hangup"}))
            await _messages(ws, "ended")
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "call recorded to" in out.decode()
    events = (tmp_path / "rec" / "events.jsonl").read_text()
    assert '"participant.joined"' in events and '"recording.end"' in events


MAX_S = 2.0  # the call's max_duration_s, in the tests of the wait before a page opens
PAGE_LATE_S = 6.0  # how long nobody opens the page: past MAX_S, so the wait would use it up


async def test_botrun_browser_counts_the_call_from_the_page_not_the_wait(tmp_path: Path) -> None:
    """Probe 5 item 1: the page opened after longer than ``max_duration_s``. The command still
    waits for it (the wait is not the call), the call then lasts ``max_duration_s`` from the
    page's join, and the console's call length is the recording's (the wait is not in it)."""
    import os
    import re
    import sys

    from botrun.bots.report import load_recording

    config = tmp_path / "bot.toml"
    config.write_text(f"[bridge]\nmax_duration_s = {MAX_S}\n")
    async with Simulator() as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "botrun.bots.cli", "browser", "--port", "0",
            "--agent-url", sim.url, "--config", str(config), "--record", str(tmp_path / "rec"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        )  # fmt: skip
        assert proc.stdout is not None
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            url = re.search(r"http://127\.0\.0\.1:\d+/\S+", line)
            assert url, line
            ws_url = url.group(0).replace("http://", "ws://").replace("/?token", "/ws?token")
            await asyncio.sleep(PAGE_LATE_S)  # nobody opens the page for a while
            assert proc.returncode is None, "botrun browser ended before the page opened"
            await _page_until_ended(ws_url)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
    assert proc.returncode == 0, err.decode()
    recording = load_recording(tmp_path / "rec")
    assert recording.end is not None, recording.problems
    assert recording.end["reason"] == f"maximum call duration reached ({MAX_S:.0f} s)"
    length = re.search(r"call length ([\d.]+) s", out.decode())
    assert length, out.decode()
    # the console counts from the page's join, like the recording (which starts there)
    recorded_s = float(recording.end["t"])
    assert abs(float(length.group(1)) - recorded_s) < PAGE_LATE_S / 2, (length[0], recorded_s)


async def test_botrun_web_max_duration_counts_from_the_page(tmp_path: Path) -> None:
    """Probe 5 item 1, ``botrun web``: a call nobody opened the page for longer than
    ``max_duration_s`` still waits for it, then ends ``max_duration_s`` after the page
    joined (the reason is the recording's)."""
    from botrun.bots.report import load_recording
    from botrun.transports.browser.server import PageServer

    calls = tmp_path / "calls"
    async with Simulator() as sim:
        cfg = apply_overrides(
            config_from_dict({"agent": {"greeting": ""}, "bridge": {"max_duration_s": MAX_S}}),
            {"agent.url": sim.url},
        )
        server = PageServer("127.0.0.1", 0, calls_dir=calls)
        await server.start()
        task = _serving(server, cfg, calls, max_calls=1)
        try:
            await asyncio.sleep(PAGE_LATE_S)  # nobody opens the page for a while
            assert not task.done(), "the call ended before a page opened"
            await _page_until_ended(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
            assert await asyncio.wait_for(task, 30) == 0
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await server.stop()
    (call_dir,) = calls.iterdir()
    recording = load_recording(call_dir)
    assert recording.end is not None, recording.problems
    assert recording.end["reason"] == f"maximum call duration reached ({MAX_S:.0f} s)"


async def test_the_bot_hanging_up_ends_the_page_call(tmp_path: Path) -> None:
    """The agent calls the built-in end_call: the browser transport tells the page why and
    the call ends without the page hanging up (hang_up = leaving)."""
    from botrun.bots.web import serve_calls
    from botrun.core.sim.scenario import scenario_from_dict
    from botrun.transports.browser.server import PageServer

    scenario = scenario_from_dict(
        {
            "reply": {"default": "tone", "ms_per_char": 20},
            "turns": [{"user": "bye", "reply": "Goodbye!", "tool": {"name": "end_call"}}],
        }
    )
    rate = 16000
    voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2").tobytes()
    async with Simulator(scenario) as sim:
        cfg = apply_overrides(
            config_from_dict({"agent": {"greeting": "", "tools": ["end_call"]}}),
            {"agent.url": sim.url},
        )
        server = PageServer("127.0.0.1", 0)
        await server.start()
        try:
            task = asyncio.create_task(
                serve_calls(server, cfg, None, record=tmp_path / "rec", max_calls=1,
                            console=False, signals=False)
            )  # fmt: skip
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
                await _messages(ws, "welcome")
                await ws.send_str(json.dumps({"type": "hello", "rate": rate}))
                audio = voiced + bytes(2 * rate)  # a second of voice, a second of silence
                for i in range(0, len(audio), 640):
                    await ws.send_bytes(audio[i : i + 640])
                    await asyncio.sleep(0.02)
                ended = await _messages(ws, "ended", timeout=20)
            assert await asyncio.wait_for(task, 10) == 0
        finally:
            await server.stop()
    assert ended["reason"] == "hang_up"
    (call_dir,) = (tmp_path / "rec").iterdir()
    events = (call_dir / "events.jsonl").read_text()
    assert '"call.action"' in events and '"hang_up"' in events


async def test_botrun_web_runs_call_after_call_and_reports_each(tmp_path: Path) -> None:
    """The ``botrun web`` command itself: the simulator, the page's server, a call (here a
    plain WebSocket client that speaks a second and hangs up), its report; Ctrl-C ends it."""
    import os
    import re
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botrun.bots.cli", "web", "--port", "0",
        "--record", str(tmp_path / "calls"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    try:
        while not lines or "open http" not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
            assert lines[-1], f"botrun web ended: {lines}"
        url = re.search(r"http://\S+", lines[-1])
        assert url, lines
        base, token = url.group(0).split("/?token=")
        rate = 16000
        voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{base.replace('http', 'ws')}/ws?token={token}")
            await _messages(ws, "welcome")
            await ws.send_str(json.dumps({"type": "hello", "rate": rate}))
            audio = voiced.tobytes() + bytes(rate)
            for i in range(0, len(audio), 640):
                await ws.send_bytes(audio[i : i + 640])
                await asyncio.sleep(0.02)
            await ws.send_str(json.dumps({"type": "hangup"}))
            await _messages(ws, "ended")
            while True:  # the report of the finished call is listed for the page
                line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
                lines.append(line)
                if "report:" in line:
                    break
            async with http.get(f"{base}/calls?token={token}") as r:
                (listed,) = (await r.json())["calls"]
            async with http.get(f"{base}{listed['report']}?token={token}") as r:
                assert r.status == 200 and "Timeline" in await r.text()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    (call_dir,) = (tmp_path / "calls").iterdir()  # the call; not the one waiting at Ctrl-C
    assert (call_dir / "report.html").is_file()
    # one call, one summary: the call waiting for a page at Ctrl-C was never made
    printed = "".join(lines) + out.decode()
    assert printed.count("call length") == 1, printed
    # probe item 4: a true summary at Ctrl-C, not "no call was made" after a call was made
    assert "no call was made" not in printed, printed
    assert f"1 call made; recorded under {tmp_path / 'calls'}" in out.decode()


async def test_a_call_waiting_for_a_page_has_no_folder_yet(tmp_path: Path) -> None:
    """Issue 19: ``botrun web`` makes a call's recording folder when its call starts (a page
    takes it), not while the next call waits for a page: no empty call-...-2 folder."""
    from botrun.transports.browser.server import PageServer

    calls = tmp_path / "calls"
    async with Simulator() as sim:
        cfg = apply_overrides(config_from_dict({"agent": {"greeting": ""}}), {"agent.url": sim.url})
        server = PageServer("127.0.0.1", 0, calls_dir=calls)
        await server.start()
        task = _serving(server, cfg, calls, max_calls=2)
        try:

            async def waiting() -> Any:  # the transport of a call waiting for a page
                while server._waiting is None or not server._waiting.available:
                    await asyncio.sleep(0.05)
                return server._waiting

            first = await asyncio.wait_for(waiting(), 20)
            assert not calls.exists() or list(calls.iterdir()) == []
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
                await _messages(ws, "welcome")
                await ws.send_str(json.dumps({"type": "hello", "rate": 16000}))
                await ws.send_bytes(bytes(640 * 10))
                await ws.send_str(json.dumps({"type": "hangup"}))
                await _messages(ws, "ended")
            while await asyncio.wait_for(waiting(), 20) is first:  # the next call waits
                await asyncio.sleep(0.05)
            # the finished call has its folder (and report); the waiting one has none
            (done,) = calls.iterdir()
            assert (done / "events.jsonl").is_file()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await server.stop()


async def _start_web(tmp_path: Path, *args: str) -> tuple[Any, list[str]]:
    """``botrun web --port 0 ARGS`` until it prints the URL to open; (process, lines)."""
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botrun.bots.cli", "web", "--port", "0",
        "--record", str(tmp_path / "calls"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "open http" not in lines[-1]:
        lines.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
        if not lines[-1]:
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"botrun web ended: {lines} {err.decode()}")
    return proc, lines


async def test_web_stopped_before_any_call_prints_no_summary_and_leaves_no_folder(
    tmp_path: Path,
) -> None:
    """Issue 19: Ctrl-C with no call made prints no call summary (no phantom "call length
    ..., 0 agent replies") and leaves no recording folder behind."""
    import signal

    proc, lines = await _start_web(tmp_path, "--log-level", "debug")
    assert proc.stderr is not None
    while True:  # the bot is waiting for a page (and Ctrl-C is the call's to handle)
        line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
        assert line, "botrun web ended"
        if "--joined--> waiting" in line:
            break
    assert not (tmp_path / "calls").exists() or not list((tmp_path / "calls").iterdir())
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    printed = "".join(lines) + out.decode()
    assert "call length" not in printed and "agent replies" not in printed, printed
    assert "no call was made" in printed
    assert not (tmp_path / "calls").exists() or not list((tmp_path / "calls").iterdir())


async def test_web_on_every_interface_prints_a_url_that_opens(tmp_path: Path) -> None:
    """Issue 19: ``--host 0.0.0.0`` prints an address a browser can open (loopback on this
    machine, and this machine's name for others), not http://0.0.0.0:..."""
    import re
    import signal

    proc, lines = await _start_web(tmp_path, "--host", "0.0.0.0")
    try:
        url = re.search(r"http://\S+", lines[-1])
        assert url and "0.0.0.0" not in url.group(0), lines
        async with aiohttp.ClientSession() as http, http.get(url.group(0)) as r:
            assert r.status == 200 and "<html" in (await r.text()).lower()
        nxt = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()  # type: ignore[union-attr]
        assert nxt.startswith("from another machine: http://") and "0.0.0.0" not in nxt
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), 30)


def test_web_help_describes_every_option() -> None:
    """Issue 19: ``web --help`` says what ``--port`` (and every other option) is."""
    import click
    from click.testing import CliRunner

    from botrun.bots.web import command

    out = CliRunner().invoke(command, ["--help"], terminal_width=200).output
    assert "--port INTEGER RANGE Port of the page" in " ".join(out.split()), out
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{param.opts} has no help text"
