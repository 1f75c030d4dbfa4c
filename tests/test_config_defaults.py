"""Where a config value comes from (issue 12 item 2): the model's defaults, then the
transport's own defaults, then only the keys a file really writes, then flags. A copied
default.toml or a packaged example config must never override a transport default (it made
every `botrun demo`/`wav` call with --config wait idle_timeout_s = 300 s after the end)."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import run_botrun
from pydantic import BaseModel

from botrun.bots.runner import SharedOptions, build_config
from botrun.core.config import (
    BotConfig,
    default_config_path,
    load_config,
    packaged_configs,
)
from botrun.core.errors import ConfigError
from botrun.core.plugins import transports
from botrun.transports.wav.plugin import SPEC as WAV

PACKAGED = sorted(packaged_configs())


def test_packaged_configs_are_found_by_name() -> None:
    assert {"default", "support", "scheduler"} <= set(PACKAGED)
    assert load_config("support").bot.name == "Support bot"
    with pytest.raises(ConfigError, match=r"packaged configs: .*support"):
        load_config("no-such-bot")


@pytest.mark.parametrize("name", PACKAGED)
def test_packaged_configs_keep_every_transport_default(name: str) -> None:
    specs = transports()
    for spec in specs.values():
        cfg = build_config(SharedOptions(config=Path(name)), spec, list(specs))
        for key, value in spec.bridge_defaults.items():
            assert getattr(cfg.bridge, key) == value, (name, spec.name, key)


def test_a_copy_of_default_toml_chooses_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "my-bot.toml"
    shutil.copy(default_config_path(), copy)
    cfg = build_config(SharedOptions(config=copy), WAV, list(transports()))
    assert cfg.bridge.idle_timeout_s == 0.0 and cfg.bridge.leave_grace_s == 1.5
    assert cfg.model_dump() == build_config(SharedOptions(), WAV, []).model_dump()


def test_a_key_the_user_writes_wins_over_the_transport_default(tmp_path: Path) -> None:
    path = tmp_path / "bot.toml"
    path.write_text("[bridge]\nidle_timeout_s = 12.0\n")
    cfg = build_config(SharedOptions(config=path), WAV, ["wav"])
    assert cfg.bridge.idle_timeout_s == 12.0
    assert cfg.bridge.leave_grace_s == 1.5  # not written: the transport's default holds
    assert load_config(path).bridge.leave_grace_s == 2.0  # no transport: the model's default


def _documented(text: str) -> dict[str, dict[str, Any]]:
    """``# key = value`` lines of default.toml by section (commented sections included)."""
    out: dict[str, dict[str, Any]] = {}
    section = ""
    for line in text.splitlines():
        if m := re.fullmatch(r"(?:# )?\[([a-z_.]+)\]", line):
            section = m.group(1)
            out.setdefault(section, {})
        elif m := re.fullmatch(r"# ([a-z_]+ = .*)", line):
            out[section].update(tomllib.loads(m.group(1)))
    return out


def _model_at(section: str) -> type[BaseModel]:
    model: Any = BotConfig
    for part in section.split("."):
        model = model.model_fields[part].annotation
    return model


def test_default_toml_sets_nothing_and_documents_every_key_with_its_default() -> None:
    text = default_config_path().read_text()
    data = tomllib.loads(text)
    assert all(isinstance(v, dict) and not _leaves(v) for v in data.values()), data
    documented = _documented(text)
    specs = transports()
    seen: set[str] = set()
    for section, keys in documented.items():
        if section in specs:  # transport tables: real option names and defaults
            opts = {o.name: o for o in specs[section].options}
            for key, value in keys.items():
                assert opts[key].default == value, (section, key)
            continue
        model = _model_at(section)
        for key, value in keys.items():
            default = model.model_fields[key].get_default(call_default_factory=True)
            if default is None:  # optional, no default: the comment shows an example
                assert "no default" in text.split(f"# {key} =")[0].splitlines()[-1]
            else:
                assert value == default, (section, key)
            seen.add(f"{section}.{key}")
    expected = {
        f"{sec}.{name}"
        for sec in ("bot", "agent", "agent.input", "agent.input.turn_detection", "bridge")
        for name, field in _model_at(sec).model_fields.items()
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel))
    }
    assert seen == expected


def _leaves(d: dict[str, Any]) -> list[str]:
    return [k for k, v in d.items() if not isinstance(v, dict) or _leaves(v)]


def test_demo_with_a_copy_of_default_toml_leaves_when_the_sample_ends(tmp_path: Path) -> None:
    # (tests/test_demo_tools.py checks the same for `botrun demo --config configs/support.toml`.)
    config = str(tmp_path / "mine.toml")
    shutil.copy(default_config_path(), config)
    # The guard: before the fix this call waited idle_timeout_s = 300 s after the sample.
    res = run_botrun("demo", "--config", config, "--output", str(tmp_path / "o.wav"), timeout=150)
    assert res.returncode == 0, res.stderr
    m = re.search(r"call length ([0-9.]+) s", res.stdout)
    assert m is not None, res.stdout
    assert float(m.group(1)) < 100  # the sample and replies last seconds, not 300 s


def test_serve_passes_a_packaged_config_by_name_to_its_bots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botrun.bots.serve.app import SETTINGS
    from botrun.bots.serve.cli import build

    monkeypatch.setenv("DAILY_API_KEY", "test-daily-key")
    monkeypatch.setenv("DAILY_DIALIN_SECRET", "")
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "test-agent-key")
    monkeypatch.setenv("BOTRUN_API_TOKEN", "t" * 32)
    app = build("127.0.0.1", 0, Path("support"), 1, 60.0, None)
    # Each bot runs `botrun daily --config <this>` in its own working directory.
    assert app[SETTINGS].config == str(packaged_configs()["support"].resolve())
