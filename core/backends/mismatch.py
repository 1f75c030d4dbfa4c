"""Recognising another backend's protocol on the wire (issue 18, item 1).

A client pointed at a service (or ``botrun agent-sim --protocol``) that speaks another
voice-agent protocol would otherwise wait for a ready event that never comes, or worse,
take a look-alike event as ready and run a call nobody answers. These pure functions look
at one JSON message and say which of the three protocols it belongs to, when that is
unambiguous, so the client (server events) and the simulator (client events) can fail fast
naming the likely mismatch. Names shared by two protocols (``session.update``,
``session.updated``) are judged by their shape, or not at all.
"""

from __future__ import annotations

import json
from typing import Any

#: How each protocol is named in messages.
NAMES = {
    "assemblyai": "AssemblyAI Voice Agent API",
    "openai": "OpenAI Realtime",
    "gemini": "Gemini Live",
}

# -- events a service sends -----------------------------------------------------------------
_AAI_SERVER = frozenset(
    {
        "session.ready",
        "session.error",
        "session.ended",
        "input.speech.started",
        "input.speech.stopped",
        "transcript.user.delta",
        "transcript.user",
        "transcript.agent.delta",
        "transcript.agent",
        "reply.started",
        "reply.audio",
        "reply.done",
        "tool.call",
    }
)
_OPENAI_SERVER_PREFIXES = ("input_audio_buffer.", "response.", "conversation.", "rate_limits.")
_GEMINI_SERVER_KEYS = frozenset(
    {
        "setupComplete",
        "serverContent",
        "toolCall",
        "toolCallCancellation",
        "goAway",
        "sessionResumptionUpdate",
    }
)

# -- messages a client sends ----------------------------------------------------------------
_AAI_CLIENT = frozenset({"input.audio", "tool.result", "session.resume", "reply.create"})
_OPENAI_CLIENT_PREFIXES = ("input_audio_buffer.", "response.", "conversation.")
_GEMINI_CLIENT_KEYS = frozenset({"setup", "realtimeInput", "clientContent", "toolResponse"})


def _load(msg: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(msg)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def server_protocol(msg: str | bytes) -> str | None:
    """The protocol a service's message unmistakably belongs to, or ``None``."""
    data = _load(msg)
    if data is None:
        return None
    kind = data.get("type")
    if not isinstance(kind, str):
        return "gemini" if any(k in _GEMINI_SERVER_KEYS for k in data) else None
    if kind in _AAI_SERVER:
        return "assemblyai"
    if kind == "session.created" or kind.startswith(_OPENAI_SERVER_PREFIXES):
        return "openai"
    if kind == "error" and isinstance(data.get("error"), dict):
        return "openai"
    return None


def client_protocol(data: dict[str, Any]) -> str | None:
    """The protocol a client's (decoded) message unmistakably belongs to, or ``None``."""
    kind = data.get("type")
    if not isinstance(kind, str):
        return "gemini" if any(k in _GEMINI_CLIENT_KEYS for k in data) else None
    if kind in _AAI_CLIENT:
        return "assemblyai"
    if kind.startswith(_OPENAI_CLIENT_PREFIXES):
        return "openai"
    if kind == "session.update":
        session = data.get("session")
        if isinstance(session, dict):
            return "openai" if session.get("type") == "realtime" else "assemblyai"
    return None


def client_message(url: str, ours: str, theirs: str) -> str:
    """The client's one-line error for a service speaking ``theirs``."""
    return (
        f"the voice agent at {url} speaks the {NAMES[theirs]} protocol, not "
        f'{NAMES[ours]}: set [agent] backend = "{theirs}" (or --backend {theirs}), '
        "or point --agent-url at a service of this backend"
    )


def close_reason(ours: str, theirs: str) -> str:
    """The simulator's close reason (fits the 123-byte limit of a close frame)."""
    return f"this simulator speaks {NAMES[ours]}, not {NAMES[theirs]}: use --backend {ours}"
