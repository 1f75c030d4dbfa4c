"""The built-in voice-agent backends (a light module: each client is imported only when a
session opens). Registered through the ``botrun`` entry-point group like any plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..defaults import DEFAULT_AGENT_URL
from ..hookspecs import hookimpl
from .base import BackendContext, BackendSpec

if TYPE_CHECKING:
    from ..config import AgentConfig
    from .base import AgentSession

OPENAI_URL = "wss://api.openai.com/v1/realtime"
OPENAI_MODEL = "gpt-realtime"
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
GEMINI_URL = (
    "wss://generativelanguage.googleapis.com/ws/"
    "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
)
GEMINI_MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
GEMINI_VOICES = (
    "Puck",
    "Charon",
    "Kore",
    "Fenrir",
    "Aoede",
    "Leda",
    "Orus",
    "Zephyr",
)


def _changed(cfg: AgentConfig) -> dict[str, object]:
    """The turn-detection and output fields the user moved off their defaults."""
    from ..config import TurnDetection

    td, default = cfg.input.turn_detection, TurnDetection()
    return {
        name: getattr(td, name)
        for name in (
            "vad_threshold",
            "min_silence",
            "max_silence",
            "interrupt_response",
            "semantic_vad",
        )
        if getattr(td, name) != getattr(default, name)
    }


_SEMANTIC = "'input.turn_detection.semantic_vad': only OpenAI Realtime has semantic_vad"


def _check_assemblyai(cfg: AgentConfig) -> list[str]:
    out = []
    if cfg.model is not None:
        out.append("'model': the assemblyai backend has no model choice (leave it out)")
    if "semantic_vad" in _changed(cfg):
        out.append(_SEMANTIC)
    return out


def _check_openai(cfg: AgentConfig) -> list[str]:
    out = []
    if cfg.volume is not None:
        out.append("'volume': OpenAI Realtime has no output volume (leave it out)")
    changed = _changed(cfg)
    if "max_silence" in changed:
        out.append(
            "'input.turn_detection.max_silence': OpenAI's server_vad has one silence "
            "duration (min_silence); leave max_silence out"
        )
    if cfg.input.turn_detection.semantic_vad and {"vad_threshold", "min_silence"} & set(changed):
        out.append(
            "'input.turn_detection': semantic_vad ends turns by meaning, not by "
            "vad_threshold or min_silence; leave those out"
        )
    return out


def _check_gemini(cfg: AgentConfig) -> list[str]:
    out = []
    changed = _changed(cfg)
    if cfg.volume is not None:
        out.append("'volume': Gemini Live has no output volume (leave it out)")
    if cfg.input.keyterms:
        out.append(
            "'[agent.input] keyterms': Gemini Live has no keyterm biasing "
            "(remove keyterms from the config to run it on gemini)"
        )
    if "vad_threshold" in changed:
        out.append(
            "'input.turn_detection.vad_threshold': Gemini Live's activity detection has no "
            "numeric threshold (leave it out)"
        )
    if "max_silence" in changed:
        out.append(
            "'input.turn_detection.max_silence': Gemini Live has one silence duration "
            "(min_silence); leave max_silence out"
        )
    if "semantic_vad" in changed:
        out.append(_SEMANTIC)
    return out


def _assemblyai(ctx: BackendContext) -> AgentSession:
    from ..client import AgentClient
    from ..protocol import session_payload

    cfg = ctx.config
    specs = ctx.tools.specs if ctx.tools is not None else []
    return AgentClient(
        cfg.agent.url,
        session_payload(cfg.agent, specs, ctx.audio_format),
        api_key=ctx.api_key,
        tools=ctx.tools,
        buffer_s=cfg.bridge.reconnect_buffer_s,
        give_up_s=cfg.agent.ready_timeout_s,  # one retry window: start and mid-call
    )


def _openai(ctx: BackendContext) -> AgentSession:
    from .openai.client import OpenAIClient

    return OpenAIClient.from_context(ctx)


def _gemini(ctx: BackendContext) -> AgentSession:
    from .gemini.client import GeminiClient

    return GeminiClient.from_context(ctx)


ASSEMBLYAI = BackendSpec(
    name="assemblyai",
    help="AssemblyAI Voice Agent API (default)",
    factory=_assemblyai,
    default_url=DEFAULT_AGENT_URL,
    key_vars=("ASSEMBLYAI_API_KEY",),
    voices=("ivy", "james", "sophie", "diego", "arjun"),
    default_voice="ivy",
    phone_audio=True,
    tool_modes=True,
    check=_check_assemblyai,
)
OPENAI = BackendSpec(
    name="openai",
    help="OpenAI Realtime API (GA)",
    factory=_openai,
    default_url=OPENAI_URL,
    key_vars=("OPENAI_API_KEY",),
    default_model=OPENAI_MODEL,
    voices=OPENAI_VOICES,
    default_voice="marin",
    phone_audio=True,  # audio/pcmu in and out: a phone call's μ-law passes through
    check=_check_openai,
)
GEMINI = BackendSpec(
    name="gemini",
    help="Google Gemini Live API",
    factory=_gemini,
    default_url=GEMINI_URL,
    key_vars=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    default_model=GEMINI_MODEL,
    voices=GEMINI_VOICES,
    default_voice="Puck",
    input_rate=16000,
    speech_stopped=False,  # no speech-stopped event: no response latency (issue 18)
    check=_check_gemini,
)
BUILTIN = (ASSEMBLYAI, OPENAI, GEMINI)


@hookimpl
def botrun_backends() -> list[BackendSpec]:
    return list(BUILTIN)
