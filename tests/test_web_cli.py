"""``botrun web`` as a command, run as a user runs it (a subprocess, Ctrl-C), with a plain
WebSocket client as the page: secrets masked in simulator mode, ``--record`` errors, what
is left on disk, the call's clock and folder name, ``--help`` (issue: new-user probe of
``botrun web``, items 1-5)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

WAIT_S = 5.0  # how long nobody opens the page, in the test of the call's start
SECRET = "sk-probe-0123456789abcdef"  # (a fake key: the test only checks it never shows)


async def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    base_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "botrun.bots.cli", "web", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**base_env, **(env or {})},
    )  # fmt: skip
    return proc


async def _until(proc: Any, lines: list[str], text: str) -> str:
    """Read the command's stdout into ``lines`` until a line holds ``text``."""
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        if not line:
            _, err = await proc.communicate()
            raise AssertionError(f"botrun web ended before {text!r}: {lines} {err.decode()}")
        lines.append(line)
        if text in line:
            return line


async def _message(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 30) -> Any:
    async def scan() -> Any:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == kind:
                    return data
        raise AssertionError(f"socket closed before {kind!r}")

    return await asyncio.wait_for(scan(), timeout)


async def _event(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 30) -> Any:
    """The page's next bridge event of ``kind``."""

    async def scan() -> Any:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if data.get("type") == "event" and data.get("kind") == kind:
                    return data
        raise AssertionError(f"socket closed before event {kind!r}")

    return await asyncio.wait_for(scan(), timeout)


def _speech(rate: int = 16000) -> bytes:
    """A second of a voiced tone, then a second of silence (one user turn)."""
    voiced = (np.sin(np.arange(rate) * 2 * np.pi * 200 / rate) * 8000).astype("<i2")
    return voiced.tobytes() + bytes(2 * rate)


async def _send_audio(ws: aiohttp.ClientWebSocketResponse, audio: bytes) -> None:
    for i in range(0, len(audio), 640):
        await ws.send_bytes(audio[i : i + 640])
        await asyncio.sleep(0.02)


def _page_url(line: str) -> tuple[str, str]:
    url = re.search(r"http://\S+", line)
    assert url, line
    base, token = url.group(0).split("/?token=")
    return base, token


LEAKY_TOOL = '''
import os

from botrun.core.tools import tool


@tool
def reveal() -> str:
    """Tell the caller the service key (a careless tool)."""
    return "the key is " + os.environ["ASSEMBLYAI_API_KEY"]
'''

LEAKY_SCENARIO = """
name = "leak"
[reply]
default = "tone"
ms_per_char = 5
tool_transition = "One moment."
tool_result = "Here is what I found: {result}"

[[turns]]
user = "What is the key?"
tool = { name = "reveal" }
"""


async def test_web_masks_secrets_in_simulator_mode(tmp_path: Path) -> None:
    """Item 1: with the simulator (no --agent-url), a tool result quoting ASSEMBLYAI_API_KEY
    from the environment is masked on the console, in the transcript, the recording and the
    report, as ``botrun wav`` masks it."""
    (tmp_path / "leaky.py").write_text(LEAKY_TOOL)
    (tmp_path / "bot.toml").write_text('[agent]\ngreeting = ""\ntools = ["leaky:reveal"]\n')
    (tmp_path / "leak.toml").write_text(LEAKY_SCENARIO)
    proc = await _start(
        tmp_path, "--config", "bot.toml", "--scenario", "leak.toml",
        "--record", "calls", "--transcript", "talk.jsonl",
        env={"ASSEMBLYAI_API_KEY": SECRET},
    )  # fmt: skip
    lines: list[str] = []
    try:
        base, token = _page_url(await _until(proc, lines, "open http"))
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{base.replace('http', 'ws')}/ws?token={token}")
            await _message(ws, "welcome")
            await ws.send_str(json.dumps({"type": "hello", "rate": 16000}))
            await _send_audio(ws, _speech())
            called = await _event(ws, "tool.call")
            assert called["name"] == "reveal", called
            assert SECRET not in json.dumps(called), called  # (the page is shown it too)
            await _event(ws, "transcript.agent")  # the agent read the result out
            await ws.send_str(json.dumps({"type": "hangup"}))
            await _message(ws, "ended")
        await _until(proc, lines, "report:")
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    printed = "".join(lines) + out.decode() + err.decode()
    assert "reveal" in printed, printed  # the console showed the tool call...
    assert SECRET not in printed, printed  # ...with the key masked
    assert "***" in printed, printed
    (call_dir,) = (tmp_path / "calls").iterdir()
    events = (call_dir / "events.jsonl").read_text()
    assert '"reveal"' in events and "***" in events, events
    written = {
        "events.jsonl": events,
        "report.html": (call_dir / "report.html").read_text(),
        "the transcript": (tmp_path / "talk.jsonl").read_text(),
    }
    for what, text in written.items():
        assert SECRET not in text, what


async def test_web_record_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    """Item 2: a --record folder that cannot be made is a one-line error, exit 2, like
    ``botrun wav --record`` (not ``internal error: FileNotFoundError``)."""
    (tmp_path / "s16.wav").write_bytes(b"RIFF")
    cases = {
        "s16.wav/sub": "cannot record to s16.wav/sub: Not a directory",
        "/proc/calls": "cannot record to /proc/calls: ",
    }
    for record, expected in cases.items():
        proc = await _start(tmp_path, "--record", record)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        text = err.decode()
        assert proc.returncode == 2, (record, text)
        assert expected in text and "internal error" not in text, text
        assert len(text.strip().splitlines()) == 1, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s16.wav"]  # nothing made


async def test_web_with_no_call_leaves_no_record_folder(tmp_path: Path) -> None:
    """Item 3: waiting for a page makes no --record folder, and Ctrl-C before anybody
    opened the page leaves none: "waiting for a page leaves nothing on disk". (Item 5: a
    config's agent.url, which web does not use without --agent-url, gets a note.)"""
    (tmp_path / "bot.toml").write_text('[agent]\nurl = "wss://agent.example/v1/ws"\n')
    proc = await _start(
        tmp_path, "--config", "bot.toml", "--record", "calls", "--log-level", "debug"
    )
    lines: list[str] = []
    await _until(proc, lines, "open http")
    assert proc.stderr is not None
    logged = []
    while True:  # the bot is waiting for a page
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line, "botrun web ended"
        logged.append(line)
        if "--joined--> waiting" in line:
            break
    assert "the config's agent.url (wss://agent.example/v1/ws) is used only" in "".join(logged)
    assert not (tmp_path / "calls").exists()  # the folder is made when a call starts
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130, err.decode()
    assert "no call was made" in out.decode()
    assert not (tmp_path / "calls").exists(), list((tmp_path / "calls").iterdir())


async def test_a_call_cut_by_ctrl_c_has_its_report_and_counts_from_its_start(
    tmp_path: Path,
) -> None:
    """Items 3 and 4: a call ended by Ctrl-C gets its report.html (``--help`` says every
    call's folder has one); the call's folder is named after when the page took the call,
    not when the wait began, and the console's call length is the report's (the wait is
    not counted)."""
    from datetime import UTC, datetime

    from botrun.bots.report import load_recording

    proc = await _start(tmp_path, "--record", "calls")
    lines: list[str] = []
    try:
        base, token = _page_url(await _until(proc, lines, "open http"))
        await asyncio.sleep(WAIT_S)  # nobody opens the page for a while
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{base.replace('http', 'ws')}/ws?token={token}")
            taken = datetime.now(UTC).replace(microsecond=0)
            await _message(ws, "welcome")
            await ws.send_str(json.dumps({"type": "hello", "rate": 16000}))
            await _send_audio(ws, _speech())
            await _event(ws, "transcript.agent")  # a turn: the simulator echoed it
            proc.send_signal(signal.SIGINT)  # Ctrl-C with the call under way
            await _message(ws, "ended")
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 130, err.decode()
    printed = "".join(lines) + out.decode()
    (call_dir,) = (tmp_path / "calls").iterdir()
    assert (call_dir / "report.html").is_file(), printed
    assert "report:" in printed, printed
    named = datetime.strptime(call_dir.name.rsplit("-", 1)[0], "call-%Y%m%d-%H%M%S")
    # (named when the page took the call: not WAIT_S earlier, when the wait began)
    assert abs((named.replace(tzinfo=UTC) - taken).total_seconds()) <= 2, (call_dir, taken)
    length = re.search(r"call length ([\d.]+) s", printed)
    assert length, printed
    recording = load_recording(call_dir)
    assert recording.end is not None, recording.problems
    recorded_s = float(recording.end["t"])  # the recording's end line: the call's own axis
    # the console's length and the recording count from the same start: the console's does
    # not hold the WAIT_S the page was not open
    assert abs(float(length.group(1)) - recorded_s) < WAIT_S / 2, (length.group(0), recorded_s)


def test_web_help_says_what_agent_url_defaults_to() -> None:
    """Item 5: ``web --help`` does not promise the config's agent.url: without --agent-url
    web talks to the local simulator, whatever the config says."""
    from click.testing import CliRunner

    from botrun.bots.web import command

    out = " ".join(CliRunner().invoke(command, ["--help"], terminal_width=200).output.split())
    assert "the config's agent.url, else" not in out, out
    assert "Without it the local simulator answers" in out, out
