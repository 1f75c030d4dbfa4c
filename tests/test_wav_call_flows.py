"""Whole call flows through the real ``botrun wav`` command (issue 16 item 6): the real WAV
transport (not a test subclass), the bridge, the bot's tools and hooks, and the local
simulator on loopback. What a user gets offline: a ``--dtmf`` schedule reaching a hook and
the agent, and a transfer shown in the call summary, the caller leaving with it.
(``end_call`` ending the run once the goodbye has played: tests/test_call_e2e.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import wave
from pathlib import Path
from typing import Any

from speech import speak

from botrun.core.sim import Simulator
from botrun.core.sim.scenario import scenario_from_dict

TESTS = Path(__file__).resolve().parent
RATE = 16000


async def botrun_wav(tmp_path: Path, agent_url: str, *args: str) -> tuple[int, str, str]:
    """``botrun wav`` as a user runs it (tests/ importable for the hooks), to its end."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "wav",
        "--output",
        str(tmp_path / "bot.wav"),
        "--agent-url",
        agent_url,
        "--transcript",
        str(tmp_path / "t.jsonl"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def spoken(tmp_path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    return [(x["role"], x.get("text")) for x in lines if x["role"] in ("user", "agent")]


def recorded_seconds(tmp_path: Path) -> float:
    """The length of the bot's recording (opened as a WAV: it was closed cleanly)."""
    with wave.open(str(tmp_path / "bot.wav"), "rb") as w:
        assert w.getframerate() == RATE
        return w.getnframes() / RATE


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bot.toml"
    path.write_text(text)
    return str(path)


async def test_a_keypad_schedule_reaches_the_hook_and_the_agent(tmp_path: Path) -> None:
    caller = tmp_path / "caller.wav"
    with wave.open(str(caller), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\0\0" * RATE * 6)
    cfg = config(tmp_path, '[agent]\ngreeting = ""\n[bot]\nhooks = "call_hooks:Keypad"\n')
    async with Simulator() as sim:
        rc, _, err = await botrun_wav(
            tmp_path,
            sim.url,
            "--config",
            cfg,
            "--input",
            str(caller),
            "--phone",
            "+14155550123",
            "--dtmf",
            "1.5:1",
        )
        events = sim.session().events
    assert rc == 0, err[-3000:]
    assert "reply.create" in events  # the hook's say() went to the agent
    assert ("agent", "You pressed 1.") in spoken(tmp_path)


async def test_a_transfer_is_shown_in_the_summary_and_the_caller_leaves(tmp_path: Path) -> None:
    caller = tmp_path / "caller.wav"
    speak("Put me through to sales.", caller, pad_s=30.0)
    scenario = scenario_from_dict(
        {
            "turns": [
                {
                    "user": "Put me through to sales.",
                    "reply": "Transferring you to sales now.",
                    "tool": {"name": "transfer_call", "arguments": {"target": "sales"}},
                }
            ]
        }
    )
    cfg = config(
        tmp_path,
        '[agent]\ngreeting = ""\ntools = ["transfer_call"]\n'
        '[[transfer]]\nname = "sales"\nto = "sip:sales@pbx.example.com"\n',
    )
    async with Simulator(scenario) as sim:
        rc, out, err = await botrun_wav(tmp_path, sim.url, "--config", cfg, "--input", str(caller))
        calls: list[dict[str, Any]] = sim.session().tool_calls
    assert rc == 0, err[-3000:]
    assert [c["name"] for c in calls] == ["transfer_call"]
    assert "call action: transfer sales (sip:sales@pbx.example.com) (done)" in out + err
    # The caller left with the transfer (as on Daily), so the call ended long before the
    # caller's file (30 s of line noise after the request) ran out.
    lines = out.splitlines()
    tool = next(i for i, x in enumerate(lines) if "tool transfer_call(" in x)
    assert any(x.endswith("- caller left") for x in lines[tool:])
    (length,) = re.findall(r"^call length ([\d.]+) s", out, re.M)
    assert float(length) < 25.0
    assert recorded_seconds(tmp_path) < 25.0  # and its recording was closed cleanly
