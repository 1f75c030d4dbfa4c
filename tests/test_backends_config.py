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
