"""What a config file or a flag may hold, checked at load with one line that names the culprit
(polish items 4 and 6): flag errors name the flag (not a file the user never passed), booleans
are booleans, floats are finite, keyterms are short non-empty phrases, and every installed
transport's table is checked whichever command runs."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.core.config import load_config
from botrun.core.errors import ConfigError


def _silence(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    return path


def _one_line_error(res: object) -> str:
    stderr: str = res.stderr  # type: ignore[attr-defined]
    assert res.returncode == 2, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("wav", "--input", "IN", "--speed", "0"), "botrun: error: --speed: must be ≥ 0.1"),
        (("wav", "--input", "IN", "--rate", "99999"), "botrun: error: --rate: must be ≤ 48000"),
        (("wav", "--input", "IN", "--at", "-1"), "botrun: error: --at: must be ≥ 0"),
        (
            ("daily", "--room", "https://x.daily.co/r", "--join-timeout-s", "0"),
            "botrun: error: --join-timeout-s: must be ≥ 0.1",
        ),
        (
            ("daily", "--room", "https://x.daily.co/r", "--dial-out-retries", "-1"),
            "botrun: error: --dial-out-retries: must be ≥ 0",
        ),
    ],
)
def test_a_bad_flag_is_named_and_no_file_is_blamed(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    wav = _silence(tmp_path / "in.wav")
    argv = [str(wav) if a == "IN" else a for a in args]
    line = _one_line_error(run_botrun(*argv, cwd=tmp_path))
    assert line == expected
    assert "default.toml" not in line and "command line" not in line


def test_a_bad_table_value_still_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text("[wav]\nspeed = 0\n")
    line = _one_line_error(
        run_botrun("wav", "--input", str(_silence(tmp_path / "in.wav")), "--config", str(cfg))
    )
    assert str(cfg) in line and "'wav.speed'" in line


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[agent.input.turn_detection]\ninterrupt_response = "yes"\n', "interrupt_response"),
        ("[agent.input.turn_detection]\ninterrupt_response = 1\n", "interrupt_response"),
        ("[bridge]\nmax_duration_s = inf\n", "bridge.max_duration_s"),
        ("[bridge]\nidle_timeout_s = nan\n", "bridge.idle_timeout_s"),
        ("[agent]\ntool_timeout_s = inf\n", "agent.tool_timeout_s"),
        ('[agent.input]\nkeyterms = ["refund", ""]\n', "agent.input.keyterms.1"),
        ('[agent.input]\nkeyterms = ["   "]\n', "agent.input.keyterms.0"),
        (f'[agent.input]\nkeyterms = ["{"k" * 5000}"]\n', "agent.input.keyterms.0"),
    ],
)
def test_loose_values_are_refused_at_load(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert key in message and str(path) in message
    assert len(message) < 400  # a 5,000-character keyterm is not echoed whole


def test_sensible_values_still_load(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    term = "x" * 50  # the longest keyterm accepted
    path.write_text(
        "[agent.input]\n"
        f'keyterms = ["order number", "{term}"]\n'
        "[agent.input.turn_detection]\ninterrupt_response = false\n"
        "[bridge]\nmax_duration_s = 60\n"
    )
    cfg = load_config(path)
    assert cfg.agent.input.keyterms == ["order number", term]
    assert cfg.agent.input.turn_detection.interrupt_response is False
    assert cfg.bridge.max_duration_s == 60.0


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[daily]\naudio_out = "speaker"\n', "'daily.audio_out'"),
        ("[daily]\nbogus = 1\n", "unknown key 'daily.bogus'"),
        ("[daily]\njoin_timeout_s = inf\n", "'daily.join_timeout_s'"),
        ('[wav]\nspeed = "fast"\n', "'wav.speed'"),
    ],
)
def test_every_transport_table_is_checked_whichever_command_runs(
    tmp_path: Path, table: str, expected: str
) -> None:
    """A bad [daily] table is an error for `botrun wav` too (it was reported only when
    running `daily`); nothing runs and the error names the file."""
    cfg = tmp_path / "bot.toml"
    cfg.write_text(table)
    out = tmp_path / "out.wav"
    line = _one_line_error(
        run_botrun(
            "wav",
            "--input",
            str(_silence(tmp_path / "in.wav")),
            "--output",
            str(out),
            "--config",
            str(cfg),
            cwd=tmp_path,
        )
    )
    assert expected in line and str(cfg) in line
    assert not out.exists()
