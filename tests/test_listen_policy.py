"""The listen policy names someone nobody in the call is called: say so, once (polish item 3:
`[bridge] listen = "nobody"` gave a deaf bot and no warning)."""

from __future__ import annotations

import asyncio
import os
import sys
import wave
from pathlib import Path

from botrun.core.participants import Roster


def test_roster_warns_once_when_nobody_matches_the_listen_name() -> None:
    roster = Roster("Nobody")
    assert roster.unmatched_listen() is None  # nobody present yet: nothing to say
    roster.join("p1", "alice")
    warning = roster.unmatched_listen()
    assert warning is not None and "'Nobody'" in warning and "'alice'" in warning
    roster.join("p2", "bob")
    assert roster.unmatched_listen() is None  # once per call


def test_no_warning_when_the_name_matches_or_the_policy_is_not_a_name() -> None:
    matched = Roster("ALICE")
    matched.join("p1", "alice")
    assert matched.unmatched_listen() is None
    for policy in ("mix", "first"):
        roster = Roster(policy)
        roster.join("p1", "alice")
        assert roster.unmatched_listen() is None


async def _wav_call(tmp_path: Path, listen: str, url: str) -> str:
    with wave.open(str(tmp_path / "carol.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 8000)
    (tmp_path / "bot.toml").write_text(f'[bridge]\nlisten = "{listen}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "wav",
        "--config",
        "bot.toml",
        "--input",
        "carol.wav",
        "--speed",
        "8",
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
    assert proc.returncode == 0, err.decode()
    return out.decode() + err.decode()


async def test_a_deaf_bot_says_whom_it_waits_for(tmp_path: Path) -> None:
    from botrun.core.sim import Simulator

    async with Simulator(speed=8.0) as sim:
        deaf = await _wav_call(tmp_path, "nobody", sim.url)
        heard = await _wav_call(tmp_path, "carol", sim.url)
    warnings = [line for line in deaf.splitlines() if "listen = 'nobody'" in line]
    assert len(warnings) == 1, deaf
    assert "WARNING" in warnings[0] and "'carol'" in warnings[0]
    assert "listen =" not in heard
