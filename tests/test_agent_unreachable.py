"""The end-of-call summary tells an unreachable voice agent (nothing listening, DNS failure)
from one that was reached and stayed silent (polish item 7: both said "never answered")."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import wave
from pathlib import Path

from agent_server import AgentServer, Conn


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    return path


async def _wav_call(tmp_path: Path, url: str) -> tuple[int, str]:
    """``botrun wav`` against ``url`` (a real subprocess); returns the exit code and stdout
    (where the summary goes) + stderr."""
    _wav(tmp_path / "in.wav")
    (tmp_path / "bot.toml").write_text("[agent]\nready_timeout_s = 1.0\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "wav",
        "--config",
        "bot.toml",
        "--input",
        "in.wav",
        "--output",
        "out.wav",
        "--agent-url",
        url,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_nothing_listening_says_could_not_reach(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, output = await _wav_call(tmp_path, f"ws://127.0.0.1:{port}/v1/ws")
    assert code != 0, output
    assert "could not reach the voice agent" in output.splitlines()  # the summary
    error = output.strip().splitlines()[-1]
    assert error.startswith(
        f"botrun: error: could not reach the voice agent at ws://127.0.0.1:{port}"
    )
    assert "never answered" not in output
    # probe item 7: the empty recording is not announced as the bot's voice
    assert "bot voice recorded" not in output
    assert "no bot audio was recorded (out.wav holds no audio)" in output.splitlines()


async def test_a_silent_agent_never_answered(tmp_path: Path) -> None:
    async def never_ready(conn: Conn) -> None:
        await conn.next()  # the session.update, never answered
        await conn.closed.wait()

    async with AgentServer([never_ready]) as srv:
        code, output = await _wav_call(tmp_path, srv.url)
    assert code != 0, output
    assert "the voice agent never answered (no session.ready)" in output.splitlines()
    assert "could not reach" not in output
