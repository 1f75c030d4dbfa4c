"""Plugins: a third-party transport registered only through the `botrun` entry-point group
shows up in `botrun --help` and runs a whole call against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "thirdparty"


def plugin_env() -> dict[str, str]:
    path = os.pathsep.join([str(FIXTURE), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path}


def test_third_party_transport_is_listed() -> None:
    from helpers_cli import run_botrun

    res = run_botrun("--help", env=plugin_env())
    assert res.returncode == 0, res.stderr
    assert "loopback" in res.stdout
    assert "Third-party test transport" in res.stdout
    res = run_botrun("loopback", "--help", env=plugin_env())
    assert "--seconds" in res.stdout and "--result" in res.stdout and "--agent-url" in res.stdout


async def test_third_party_transport_runs_a_call(tmp_path: Path) -> None:
    from botrun.core.sim import Simulator

    result = tmp_path / "result.json"
    transcript = tmp_path / "t.jsonl"
    async with Simulator() as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "loopback",
            "--seconds",
            "1",
            "--result",
            str(result),
            "--agent-url",
            sim.url,
            "--transcript",
            str(transcript),
            env={**os.environ, **plugin_env()},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        received = sim.session().received_samples
    data = json.loads(result.read_text())
    assert data["joined"] == ["Tess"]
    # The simulator echoes the 1 s tone: the bot spoke about a second at 16 kHz (plus the
    # greeting), and the simulator received the tone at 24 kHz.
    assert data["bot_bytes"] >= 0.9 * 2 * 16000
    assert received >= 24000
    # The live console, as plain lines (stdout is a pipe): who came, who spoke, what was
    # said, the turn's latency, who left, and the summary at exit.
    console = out.decode()
    for expected in (
        "+ Tess joined",
        "Tess is speaking",
        "Tess: ",
        "(reply after ",
        "- Tess left",
        "response latency",
        "bridge processing",
    ):
        assert expected in console, console
    assert "\033[" not in console
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    assert any(x["role"] == "user" and x["participant_name"] == "Tess" for x in lines)


@pytest.mark.parametrize("broken", ["syntax", "import"])
def test_broken_plugin_does_not_break_the_cli(tmp_path: Path, broken: str) -> None:
    from helpers_cli import run_botrun

    dist = tmp_path / "broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[botrun]\nbroken = broken_plugin\n")
    body = "def (:\n" if broken == "syntax" else "import does_not_exist\n"
    (tmp_path / "broken_plugin.py").write_text(body)
    res = run_botrun("--help", env={"PYTHONPATH": str(tmp_path)})
    assert res.returncode == 0
    assert "wav" in res.stdout
    assert "plugin 'broken'" in res.stderr and "failed to load" in res.stderr
