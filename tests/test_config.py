"""Bot configuration: typed validation, clear errors naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.core.config import (
    apply_overrides,
    default_config_path,
    load_config,
    transport_options,
)
from botrun.core.errors import ConfigError
from botrun.core.plugin_types import Option, TransportSpec


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bot.toml"
    p.write_text(text)
    return p


def test_default_config_is_valid_and_documented() -> None:
    cfg = load_config(None)
    assert cfg.agent.voice == "ivy"
    assert cfg.bridge.listen == "mix" and cfg.bridge.chunk_ms == 20
    text = default_config_path().read_text()
    # every key of every section is explained by a comment line right above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#") and not line.startswith("["):
            assert lines[i - 1].startswith("#"), f"undocumented key: {line}"


def test_values_are_typed(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
[agent]
greeting = "Hello"
tools = ["pkg.mod:fn"]
[agent.input]
keyterms = ["botrun", "Daily"]
[agent.input.turn_detection]
vad_threshold = 0.7
min_silence = 500
interrupt_response = false
[bridge]
listen = "Alice"
chunk_ms = 40
""",
        )
    )
    assert cfg.agent.input.turn_detection.vad_threshold == 0.7
    assert cfg.agent.input.turn_detection.interrupt_response is False
    assert cfg.agent.input.keyterms == ["botrun", "Daily"]
    assert cfg.bridge.listen == "Alice" and cfg.bridge.chunk_ms == 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[agent.input.turn_detection]\nvad_threshold = 1.5\n",
            "'agent.input.turn_detection.vad_threshold': input should be less than or equal to 1",
        ),
        ('[bridge]\nchunk_ms = "fast"\n', "'bridge.chunk_ms'"),
        ("[bridge]\nchunk_ms = 25\n", "multiple of 10"),
        ('[agent]\nvoise = "ivy"\n', "unknown key 'agent.voise' (did you mean 'voice'?)"),
        ("[agnet]\n", "unknown key 'agnet' (did you mean 'agent'?)"),
        ('[agent]\ntools = ["no_colon"]\n', "expected 'package.module:function'"),
        ('[agent]\nurl = "http://x"\n', "ws:// or wss://"),
    ],
)
def test_bad_values_name_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg
    assert expected in msg
    assert info.value.exit_code == 2


def test_invalid_toml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ngreeting = "ok"\nvoice = \n')
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 3"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_cli_overrides_file(tmp_path: Path) -> None:
    text = '[agent]\nurl = "ws://127.0.0.1:1/a"\n[bot]\nname = "A"\n'
    cfg = load_config(write(tmp_path, text))
    cfg2 = apply_overrides(cfg, {"agent.url": "ws://127.0.0.1:2/b", "bot.name": None})
    assert cfg2.agent.url == "ws://127.0.0.1:2/b"
    assert cfg2.bot.name == "A"


SPEC = TransportSpec(
    name="fake",
    help="x",
    factory=lambda ctx: None,  # type: ignore[arg-type,return-value]
    options=(
        Option("room", "room", required=True),
        Option("join_timeout_s", "t", type=float, default=30.0, min=1),
        Option("audio_out", "o", choices=("virtual-mic", "custom-track"), default="virtual-mic"),
        Option("token", "tok", secret=True, config=False),
        Option("at", "offsets", type=float, multiple=True, min=0),
    ),
)


def test_transport_table_and_flags(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, '[fake]\nroom = "r1"\njoin_timeout_s = 5\n'), transport_names=["fake"]
    )
    opts = transport_options(SPEC, cfg, {"join_timeout_s": 9.0, "audio_out": None})
    assert opts == {
        "room": "r1",
        "join_timeout_s": 9.0,
        "audio_out": "virtual-mic",
        "token": None,
        "at": [],
    }
    opts = transport_options(SPEC, cfg, {"at": (1, 2.5)})
    assert opts["at"] == [1.0, 2.5]


@pytest.mark.parametrize(
    ("table", "cli", "expected"),
    [
        ('roomm = "x"\n', {}, "unknown key 'fake.roomm' (did you mean 'room'?)"),
        ('token = "secret"\n', {}, "unknown key 'fake.token'"),
        ('room = "r"\njoin_timeout_s = 0\n', {}, "'fake.join_timeout_s'"),
        ('room = "r"\naudio_out = "speaker"\n', {}, "'fake.audio_out'"),
        ("", {}, "missing option --room"),
        ('room = "r"\nat = [1.0, -2.0]\n', {}, "'fake.at.1': input should be greater than"),
    ],
)
def test_transport_option_errors(tmp_path: Path, table: str, cli: dict, expected: str) -> None:
    cfg = load_config(write(tmp_path, "[fake]\n" + table), transport_names=["fake"])
    with pytest.raises(ConfigError) as info:
        transport_options(SPEC, cfg, cli)
    assert expected in str(info.value)


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, '[bridge]\nlisten = ""\n')
    res = run_botrun("wav", "--config", str(path), "--input", "x.wav", "--output", "o.wav")
    assert res.returncode == 2
    assert "botrun: error:" in res.stderr and "bridge.listen" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_botrun("wav", "--config", str(tmp_path / "missing.toml"))
    assert res.returncode == 2 and "config file not found" in res.stderr


def test_missing_api_key_names_the_variable(tmp_path: Path) -> None:
    wav = tmp_path / "in.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 1600)
    res = run_botrun("wav", "--input", str(wav), "--output", str(tmp_path / "o.wav"), cwd=tmp_path)
    assert res.returncode == 2
    assert "ASSEMBLYAI_API_KEY is not set" in res.stderr
    assert "Traceback" not in res.stderr
