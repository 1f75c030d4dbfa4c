"""`botrun demo --help` tells what --agent-url and the config's agent.url really do: the
demo talks to the local simulator unless --agent-url is given, and says so when the
config's agent.url is not used (probe item 5)."""

from __future__ import annotations

from pathlib import Path

from helpers_cli import run_botrun


def _flat(text: str) -> str:
    return " ".join(text.split())  # independent of the terminal's width


def test_demo_help_describes_agent_url_as_it_is_used() -> None:
    res = run_botrun("demo", "--help")
    assert res.returncode == 0, res.stderr
    text = _flat(res.stdout)
    assert "[default: the config's agent.url" not in text
    assert "instead of the local simulator" in text
    assert "the config's agent.url is NOT used" in text
    wav = _flat(run_botrun("wav", "--help").stdout)  # the transport commands use the config's
    assert "[default: the config's agent.url, else the backend's" in wav


def test_demo_says_the_configs_agent_url_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "bot.toml").write_text('[agent]\nurl = "ws://127.0.0.1:1/?token=tok-9876543"\n')
    res = run_botrun("demo", "--config", "bot.toml", "--output", "o.wav", cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "agent simulator listening on" in res.stdout
    note = [line for line in res.stderr.splitlines() if line.startswith("note:")]
    assert len(note) == 1, res.stderr
    assert "ws://127.0.0.1:1" in note[0] and "--agent-url" in note[0]
    assert "tok-9876543" not in res.stdout + res.stderr  # its credentials masked


def test_demo_without_a_config_url_prints_no_note(tmp_path: Path) -> None:
    res = run_botrun("demo", "--output", "o.wav", cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "note:" not in res.stderr
