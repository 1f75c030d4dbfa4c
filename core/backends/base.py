"""The agent-session seam: what the bridge needs from any voice-agent service, and how a
backend describes itself (light: imported by config validation, no sockets here).

A backend's client has the surface of :class:`botrun.core.client.AgentClient` -- the
bridge uses nothing else -- and yields the events of :mod:`botrun.core.protocol`
(``SpeechStarted``, ``ReplyAudio``, ``ReplyDone``, ``ToolCall``, ... and the notices
``Reconnecting``, ``Resumed``, ``NewSession``, ``ReplyMuted``, ``ToolDone``), whatever the
service sends on the wire. Translating the wire to those events is the backend's
sans-I/O protocol module; the bridge never changes per backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..config import AgentConfig, BotConfig
    from ..tools import ToolRegistry

#: How much of reply ``reply_id`` the caller has heard so far, in ms (the pacer's played
#: position, never more than the transport was given). 0 for a reply not (yet) played.
Playback = Callable[[str], float]


class ReplyState(Protocol):
    @property
    def reply_active(self) -> bool: ...


class AgentSession(Protocol):
    """One voice-agent session for one call, as the bridge uses it."""

    @property
    def state(self) -> ReplyState: ...

    @property
    def stats(self) -> Any: ...

    async def start(self) -> None: ...

    def send_audio(self, pcm: bytes) -> None: ...

    def events(self) -> AsyncIterator[Any]: ...

    # Optional, used when present: ``async def run_events(handle)``, the events handed to
    # ``handle`` as they are read (AgentClient.run_events).

    def abandon_reply(self) -> None: ...

    async def close(self, timeout: float = 2.0) -> None: ...


@dataclass
class BackendContext:
    """What a backend factory receives to open one session."""

    config: BotConfig
    api_key: str | None
    tools: ToolRegistry | None = None
    #: The pacer's played position per reply (see :data:`Playback`); None outside a bridge.
    playback: Playback | None = None
    #: The session's audio format when it is not PCM16 (a phone call's μ-law passed through:
    #: ``{"encoding": "audio/pcmu", "sample_rate": 8000}``); only for ``phone_audio`` backends.
    audio_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class BackendSpec:
    """A voice-agent service a plugin contributes (``[agent] backend = "<name>"``)."""

    name: str
    help: str  # one line
    factory: Callable[[BackendContext], AgentSession]
    default_url: str
    #: Environment variables holding the key, in the order they are tried; the first is
    #: the one named in messages ("OPENAI_API_KEY").
    key_vars: tuple[str, ...]
    default_model: str | None = None  # None: the service has no model choice
    voices: tuple[str, ...] = ()  # empty: any voice name is passed through
    default_voice: str = ""
    #: Sample rate of PCM16 mono the service takes (the bridge resamples to it).
    input_rate: int = 24000
    #: Takes G.711 μ-law at 8 kHz in and out (``audio/pcmu``), so a phone transport's audio
    #: passes through untouched; otherwise the bridge transcodes.
    phone_audio: bool = False
    #: Honours a tool's ``execution_mode`` (interactive / hold: the Voice Agent API's).
    tool_modes: bool = False
    #: The service says when the user stopped speaking. False (Gemini Live): botrun can only
    #: infer it when the reply starts, so the response latency (stop speaking -> bot audio
    #: out) is not measured and never printed as if it were.
    speech_stopped: bool = True
    #: Config fields this backend cannot honour: returns one message per field (empty: ok).
    check: Callable[[AgentConfig], list[str]] | None = None
    #: Extra details for docs and ``--help``.
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key_hint(self) -> str:
        """``OPENAI_API_KEY`` or ``GEMINI_API_KEY (or GOOGLE_API_KEY)``."""
        first, *rest = self.key_vars
        return first + (f" (or {' or '.join(rest)})" if rest else "")
