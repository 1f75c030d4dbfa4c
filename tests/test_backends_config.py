"""The backend seam's configuration (issue 18 item 1): ``[agent] backend``, per-backend URL,
model and voice defaults, fields a backend cannot honour refused at load, keys named."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers_cli import run_botrun

from botrun.bots.runner import SharedOptions, agent_api_key, build_config
from botrun.core.backends.plugin import GEMINI_URL, OPENAI_MODEL, OPENAI_URL
from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.errors import ConfigError, MissingSecretError
from botrun.core.hookspecs import hookimpl
from botrun.core.plugins import backends, get_backend, get_plugin_manager
from botrun.core.secrets import Secrets
from botrun.transports.wav.plugin import SPEC as WAV


def test_default_backend_is_assemblyai_with_its_url_and_voice() -> None:
    cfg = config_from_dict({})
    assert cfg.agent.backend == "assemblyai" and cfg.agent.model is None
    assert cfg.agent.url == "wss://agents.assemblyai.com/v1/ws" and cfg.agent.voice == "ivy"
    assert list(backends())[:3] == ["assemblyai", "openai", "gemini"]


def test_openai_and_gemini_take_their_own_defaults() -> None:
    oa = config_from_dict({"agent": {"backend": "openai"}}).agent
    assert (oa.url, oa.model, oa.voice) == (OPENAI_URL, OPENAI_MODEL, "marin")
    ge = config_from_dict({"agent": {"backend": "gemini"}}).agent
    assert ge.url == GEMINI_URL and ge.voice == "Puck" and ge.model and "gemini" in ge.model
    assert get_backend("gemini").input_rate == 16000


def test_a_backend_flag_over_a_validated_config_swaps_the_defaults_not_the_choices(
    tmp_path: Path,
) -> None:
    cfg = apply_overrides(config_from_dict({}), {"agent.backend": "openai"})
    assert cfg.agent.url == OPENAI_URL and cfg.agent.voice == "marin"
    with pytest.raises(ConfigError, match="voice"):  # ash is OpenAI's, not AssemblyAI's
        config_from_dict({"agent": {"voice": "ash"}}, "x")
    mine = config_from_dict({"agent": {"backend": "openai", "voice": "ash"}}, "x")
    assert apply_overrides(mine, {"bot.name": "b"}).agent.voice == "ash"  # a choice stays
    path = tmp_path / "bot.toml"
    path.write_text('[agent]\nurl = "ws://127.0.0.1:9/x"\n')
    cfg = build_config(SharedOptions(config=path, backend="gemini"), WAV, ["wav"])
    assert cfg.agent.url == "ws://127.0.0.1:9/x" and cfg.agent.backend == "gemini"


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        ({"backend": "openai", "volume": 50}, ["openai", "volume"]),
        (
            {"backend": "openai", "input": {"turn_detection": {"max_silence": 5000}}},
            ["openai", "max_silence"],
        ),
        ({"backend": "gemini", "input": {"keyterms": ["botrun"]}}, ["gemini", "keyterms"]),
        (
            {"backend": "gemini", "input": {"turn_detection": {"vad_threshold": 0.7}}},
            ["gemini", "vad_threshold"],
        ),
        ({"model": "gpt-4o-realtime-preview"}, ["assemblyai", "model"]),
        ({"input": {"turn_detection": {"semantic_vad": True}}}, ["assemblyai", "semantic_vad"]),
        (
            {"backend": "gemini", "input": {"turn_detection": {"semantic_vad": True}}},
            ["gemini", "semantic_vad"],
        ),
        (
            {
                "backend": "openai",
                "input": {"turn_detection": {"semantic_vad": True, "min_silence": 700}},
            },
            ["openai", "min_silence"],
        ),
        ({"backend": "openai", "voice": "ivy-ish"}, ["voice", "marin"]),
    ],
)
def test_a_field_the_backend_cannot_honour_is_a_load_error(
    agent: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"agent": agent}, "bot.toml")
    for word in words:
        assert word in str(info.value)


def test_unknown_backend_exits_2_with_the_list(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    res = run_botrun("wav", "--input", str(wav), "--backend", "openia")
    assert res.returncode == 2, res.stderr
    assert "unknown backend 'openia'" in res.stderr
    assert "assemblyai, openai, gemini" in res.stderr and "Traceback" not in res.stderr
    with pytest.raises(ConfigError, match="installed: assemblyai, openai, gemini"):
        config_from_dict({"agent": {"backend": "nope"}})


def test_each_backend_names_its_own_key_variable() -> None:
    url = "wss://api.example.com/v1/realtime"
    with pytest.raises(MissingSecretError, match="OPENAI_API_KEY"):
        agent_api_key(url, Secrets(environ={"ASSEMBLYAI_API_KEY": "aaaa-key"}), "openai")
    with pytest.raises(MissingSecretError, match=r"GEMINI_API_KEY \(or GOOGLE_API_KEY\)"):
        agent_api_key(url, Secrets(environ={}), "gemini")
    env = Secrets(environ={"GOOGLE_API_KEY": "google-key-1"})
    assert agent_api_key(url, env, "gemini") == "google-key-1"
    assert agent_api_key("ws://127.0.0.1:1", Secrets(environ={}), "openai") is None


class _ThirdParty:
    @hookimpl
    def botrun_backends(self) -> list[object]:
        from botrun.core.backends.base import BackendSpec

        return [
            BackendSpec(
                "acme",
                "Acme voice",
                factory=lambda ctx: None,  # type: ignore[arg-type,return-value]
                default_url="wss://acme.example/ws",
                key_vars=("ACME_KEY",),
            )
        ]


def test_a_plugin_adds_a_backend_through_the_hook() -> None:
    pm = get_plugin_manager()
    plugin = _ThirdParty()
    pm.register(plugin, name="acme-test")
    backends.cache_clear()
    try:
        assert "acme" in backends()
        cfg = config_from_dict({"agent": {"backend": "acme", "voice": "anything"}})
        assert cfg.agent.url == "wss://acme.example/ws"
    finally:
        pm.unregister(plugin)
        backends.cache_clear()
    assert "acme" not in backends()


def test_a_tool_execution_mode_is_refused_where_the_backend_has_none(tmp_path: Path) -> None:
    import sys

    from botrun.bots.runner import bot_tools

    (tmp_path / "held_tools.py").write_text(
        "from botrun.core.tools import tool\n\n\n"
        '@tool(execution_mode="hold")\n'
        "def slow(q: str) -> str:\n"
        '    """Slow.\n\n    Args:\n        q: what.\n    """\n'
        "    return q\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        for backend, ok in (("assemblyai", True), ("openai", False), ("gemini", False)):
            cfg = config_from_dict(
                {"agent": {"backend": backend, "tools": ["held_tools:slow"]}}, "bot.toml"
            )
            if ok:
                assert "slow" in [s.name for s in bot_tools(cfg).specs]
            else:
                with pytest.raises(ConfigError, match=rf"{backend} backend .*execution_mode.*slow"):
                    bot_tools(cfg)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("held_tools", None)


def test_a_file_field_the_chosen_backend_cannot_honour_names_the_file_key_and_flag() -> None:
    """Issue 18 (probe item 2): the example bot's keyterms on --backend gemini blamed the
    command line; the error names the config file, ``[agent.input] keyterms`` and the flag."""
    from botrun.core.config import load_config

    cfg = load_config("receptionist")
    with pytest.raises(ConfigError) as err:
        apply_overrides(cfg, {"agent.backend": "gemini"})
    msg = str(err.value)
    assert "receptionist.toml" in msg and "--backend gemini" in msg, msg
    assert "[agent.input] keyterms" in msg and not msg.startswith("command line"), msg


@pytest.mark.parametrize("name", ["default", "receptionist", "scheduler", "support"])
@pytest.mark.parametrize("backend", ["assemblyai", "openai", "gemini"])
def test_which_example_bots_run_where_is_what_the_docs_say(name: str, backend: str) -> None:
    """docs/backends.md lists the packaged bots that run on each backend: keep it true."""
    from botrun.core.config import load_config

    docs = (Path(__file__).parent.parent / "docs" / "backends.md").read_text()
    row = next(line for line in docs.splitlines() if line.startswith(f"| `{backend}` runs |"))
    try:
        apply_overrides(load_config(name), {"agent.backend": backend})
        runs = True
    except ConfigError:
        runs = False
    assert (f"`{name}`" in row) == runs, (name, backend, row)


@pytest.mark.parametrize(
    ("agent", "voices"),
    [
        ({"backend": "openai", "voice": "ivy"}, ["marin", "cedar"]),
        ({"voice": "marin"}, ["ivy", "james"]),
        ({"backend": "gemini", "voice": "marin"}, ["Puck", "Kore"]),
    ],
)
def test_a_written_voice_the_backend_lacks_is_a_load_error(
    agent: dict[str, str], voices: list[str]
) -> None:
    """Issue 18 (probe item 4): a voice written in the file that is another backend's
    default was silently replaced by this backend's; now it is refused, naming the file,
    the key and the backend's voices."""
    with pytest.raises(ConfigError) as err:
        config_from_dict({"agent": agent}, "bot.toml")
    msg = str(err.value)
    assert "bot.toml" in msg and "agent.voice" in msg, msg
    assert all(v in msg for v in voices), msg


def test_a_written_voice_the_flag_backend_lacks_is_an_error_but_defaults_switch() -> None:
    base = config_from_dict({}, "bot.toml")
    assert apply_overrides(base, {"agent.backend": "openai"}).agent.voice == "marin"
    with pytest.raises(ConfigError) as err:
        apply_overrides(
            config_from_dict({"agent": {"voice": "sophie"}}, "bot.toml"),
            {"agent.backend": "openai"},
        )
    assert "bot.toml" in str(err.value) and "--backend openai" in str(err.value)
    with pytest.raises(ConfigError):
        apply_overrides(base, {"agent.backend": "openai", "agent.voice": "ivy"})
