"""Hardening suite, config side: hostile or absurd config and scenario files end with one
short line and exit 2, never a traceback, an "internal error" or a flood of text.

Issue 13 items 9-10 and issue 12 item 3 (what can be checked at load time is checked there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.core.config import VOICES, load_config
from botrun.core.errors import ConfigError
from botrun.core.sim.scenario import load_scenario

DEPTH = 500  # levels of nesting in a ~1 KB file


def write(tmp_path: Path, text: str, name: str = "bot.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


NESTED = {
    "arrays": "[agent]\nvoice = " + "[" * DEPTH + "]" * DEPTH + "\n",
    "inline tables": "a = " + "{b=" * DEPTH + "1" + "}" * DEPTH + "\n",
}


@pytest.mark.parametrize("kind", sorted(NESTED))
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, NESTED[kind])
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load_config(path)
    assert str(path) in str(info.value)
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_scenario(path)


@pytest.mark.parametrize("depth", [50, 200, 400])
def test_nesting_below_the_parser_limit_is_one_short_line(tmp_path: Path, depth: int) -> None:
    """Deep values that do parse must not break validation or the error formatter."""
    path = write(tmp_path, "[agent]\ngreeting = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "agent.greeting" in msg and "\n" not in msg and len(msg) < 500


def test_cli_deeply_nested_config_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, NESTED["arrays"])
    res = run_botrun("wav", "--config", str(path), "--input", "in.wav", "--output", "o.wav")
    assert res.returncode == 2, res.stderr
    assert "nested too deeply" in res.stderr and "internal error" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_cli_deeply_nested_scenario_exits_2_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, NESTED["inline tables"], "scenario.toml")
    res = run_botrun("agent-sim", "--port", "0", "--scenario", str(path))
    assert res.returncode == 2, res.stderr
    assert "nested too deeply" in res.stderr and "internal error" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


HUGE = 900_000


def test_huge_keyterms_list_is_quoted_as_a_short_excerpt(tmp_path: Path) -> None:
    items = ",".join(f'"term{i}"' for i in range(HUGE))
    path = write(tmp_path, f"[agent.input]\nkeyterms = [{items}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "agent.input.keyterms" in msg and "at most 100 items" in msg
    assert "'term0'" in msg and f"term{HUGE - 1}" not in msg
    assert len(msg) < 500 and "\n" not in msg


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[agent]\ngreeting = ["' + "x" * 2_000_000 + '"]\n', "agent.greeting"),
        ('[agent]\ntools = ["' + "y" * 2_000_000 + '"]\n', "agent.tools"),
        ('[agent]\nvoice = "' + "z" * 2_000_000 + '"\n', "agent.voice"),
        ('[agent]\n"' + "k" * 2_000_000 + '" = 1\n', "unknown key 'agent.kkkk"),
        ("[bridge]\nchunk_ms = [" + ",".join(["1"] * 100_000) + "]\n", "bridge.chunk_ms"),
    ],
)
def test_errors_never_echo_a_huge_value(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert key in msg
    assert len(msg) < 1000 and "\n" not in msg


def test_many_bad_items_are_counted_not_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent.input]\nkeyterms = [" + ",".join(["1"] * 50) + "]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "'agent.input.keyterms.0'" in msg and "and 45 more errors" in msg
    assert len(msg) < 1000


def test_cli_huge_value_error_is_short(tmp_path: Path) -> None:
    items = ",".join(f'"term{i}"' for i in range(HUGE))
    path = write(tmp_path, f"[agent.input]\nkeyterms = [{items}]\n")
    res = run_botrun("wav", "--config", str(path), "--input", "in.wav", "--output", "o.wav")
    assert res.returncode == 2
    assert "agent.input.keyterms" in res.stderr and len(res.stderr) < 1000


def test_huge_value_in_a_scenario_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    path = write(tmp_path, '[session]\nvoices = "' + "v" * 1_000_000 + '"\n', "scenario.toml")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert "session.voices" in str(info.value) and len(str(info.value)) < 1000


# -- issue 12 item 3: values the service would refuse at setup are refused at load time ----


def test_unknown_voice_names_the_key_and_the_allowed_voices(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nvoice = "bob"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "'agent.voice'" in msg and "'bob'" in msg
    assert ", ".join(VOICES) in msg
    assert info.value.exit_code == 2


@pytest.mark.parametrize("voice", VOICES)
def test_every_documented_voice_is_accepted(tmp_path: Path, voice: str) -> None:
    assert load_config(write(tmp_path, f'[agent]\nvoice = "{voice}"\n')).agent.voice == voice


def test_max_silence_below_min_silence_is_refused(tmp_path: Path) -> None:
    text = "[agent.input.turn_detection]\nmin_silence = 2000\nmax_silence = 1000\n"
    with pytest.raises(ConfigError, match=r"max_silence .* must be >= min_silence"):
        load_config(write(tmp_path, text))


def test_cli_unknown_voice_exits_2_before_connecting(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\nvoice = "bob"\n')
    res = run_botrun("wav", "--config", str(path), "--input", "in.wav", "--output", "o.wav")
    assert res.returncode == 2
    assert "agent.voice" in res.stderr and "ivy, james" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
