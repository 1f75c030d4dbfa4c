"""Small CLI behaviours a new user hits (issue 12 item 8): the order errors are reported
in, --log-level in any case, --at/--participant following their --input, and exit code 130
after Ctrl-C from every call command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import run_botrun

from botrun.bots import cli as botrun_cli
from botrun.bots.demo import sample_path
from botrun.bots.runner import SharedOptions, prepare
from botrun.transports.wav.plugin import SPEC as WAV
from botrun.transports.wav.transport import WavTransport


def _wav(path: Path, seconds: float = 0.2) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * int(16000 * seconds))
    return path


def test_a_missing_input_file_is_reported_before_a_missing_api_key(tmp_path: Path) -> None:
    res = run_botrun("wav", "--input", "nope.wav", "--output", "o.wav", cwd=tmp_path)
    assert res.returncode == 2
    assert "input file not found: nope.wav" in res.stderr
    assert "ASSEMBLYAI_API_KEY" not in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["wav", "--log-level", "DEBUG", "--input", "nope.wav"], "input file not found"),
        (["demo", "--log-level", "Info", "--config", "nope.toml"], "config file not found"),
        (["agent-sim", "--log-level", "WARNING", "--scenario", "nope.toml"], "not found"),
        (["serve", "--log-level", "ERROR"], "DAILY_API_KEY"),
    ],
)
def test_log_level_is_accepted_in_any_case(tmp_path: Path, args: list[str], expected: str) -> None:
    res = run_botrun(*args, cwd=tmp_path, env={"DAILY_API_KEY": ""})
    assert "--log-level" not in res.stderr, res.stderr
    assert expected in res.stderr and res.returncode == 2


def _wav_inputs(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> list[tuple[str, float]]:
    """Run `botrun wav ARGV` up to the transport: (participant, start) per input."""
    seen: dict[str, Any] = {}

    def run_transport(spec: Any, shared: SharedOptions, cli_values: dict[str, Any]) -> int:
        seen["values"] = cli_values
        return 0

    monkeypatch.setattr("botrun.bots.runner.run_transport", run_transport)
    botrun_cli.main(["wav", *argv])
    ctx, _ = prepare(WAV, SharedOptions(agent_url="ws://127.0.0.1:1"), seen["values"])
    return [(i.name, i.at_s) for i in WavTransport.from_options(ctx.options).inputs]


def test_at_and_participant_belong_to_the_input_before_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = (str(_wav(tmp_path / f"{n}.wav")) for n in "abc")
    out = ["--output", str(tmp_path / "o.wav")]
    assert _wav_inputs(monkeypatch, ["--input", a, "--input", b, "--at", "2.5", *out]) == [
        ("a", 0.0),
        ("b", 2.5),
    ]
    argv = ["--input", a, "--at", "1", "--input", b, "--participant", "Bo", "--input", c]
    assert _wav_inputs(monkeypatch, [*argv, "--at", "4", *out]) == [
        ("a", 1.0),
        ("Bo", 0.0),
        ("c", 4.0),
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--at", "1", "--input", "a.wav"], "--at 1.0 comes before any --input"),
        (["--input", "a.wav", "--at", "1", "--at", "2"], "two --at values for --input number 1"),
    ],
)
def test_a_misplaced_at_is_a_usage_error(argv: list[str], expected: str) -> None:
    res = run_botrun("wav", *argv)
    assert res.returncode == 2 and expected in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_help_says_at_follows_its_input() -> None:
    res = run_botrun("wav", "--help")
    assert "--input b.wav --at 2.5" in " ".join(res.stdout.split())


def _interrupt_mid_call(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Start a real `botrun` call, wait until the bot has spoken, send SIGINT."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "botrun.bots.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the console line of the greeting: the call is running
            seen.append(line)
            if " bot: " in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(seen) + rest + err


def test_ctrl_c_exits_130_from_demo(tmp_path: Path) -> None:
    code, output = _interrupt_mid_call(["demo", "--output", "o.wav"], tmp_path)
    assert code == 130, output


def test_ctrl_c_exits_130_from_wav(tmp_path: Path) -> None:
    sim = subprocess.Popen(
        [sys.executable, "-m", "botrun.bots.cli", "agent-sim", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sim.stdout is not None
        url = sim.stdout.readline().strip()
        assert url.startswith("ws://"), url
        argv = ["wav", "--input", str(sample_path()), "--output", "o.wav", "--agent-url", url]
        code, output = _interrupt_mid_call(argv, tmp_path)
        assert code == 130, output
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()


async def test_wav_says_where_it_recorded(tmp_path: Path) -> None:
    """``botrun wav`` ends with where the bot's voice is, like ``demo`` (polish item 8)."""
    import asyncio

    from botrun.core.sim import Simulator

    _wav(tmp_path / "in.wav", 0.5)
    (tmp_path / "rec").mkdir()  # an output's directory must exist (botrun creates none)
    async with Simulator(speed=8.0) as sim:
        res = await asyncio.to_thread(
            run_botrun,
            "wav",
            "--input",
            "in.wav",
            "--speed",
            "8",
            "--output",
            "rec/bot.wav",
            "--agent-url",
            sim.url,
            cwd=tmp_path,
        )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "bot voice recorded to rec/bot.wav"
    assert (tmp_path / "rec" / "bot.wav").is_file()
