"""The OpenAI Realtime client: :class:`botrun.core.client.AgentClient` (retry policy,
buffering, tools, the session rules of core/session.py) speaking OpenAI's wire through
:class:`~botrun.core.backends.openai.protocol.OpenAIWire`.

Differences it handles on top of the wire: every socket is a new session (no resume; the
conversation is re-seeded instead), the greeting is asked for once the session is ready,
and a barge-in sends ``response.cancel`` and ``conversation.item.truncate`` with what the
caller heard (the bridge's pacer position, :data:`~botrun.core.backends.base.Playback`).
On a phone call the session takes the bridge's ``audio/pcmu`` (``BackendContext.audio_format``)
both ways; elsewhere PCM16 at 24 kHz.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...client import AgentClient
from ...protocol import (
    ReplyDone,
    SessionError,
    SessionReady,
    SessionUpdate,
    SpeechStarted,
    session_payload,
)
from .protocol import OpenAIWire, WireFrames

if TYPE_CHECKING:
    from ..base import BackendContext, Playback

KEY_VAR = "OPENAI_API_KEY"
#: Errors a barge-in's ``response.cancel`` may get when the service (server_vad with
#: interrupt_response) cancelled the response itself a moment earlier: not worth a warning.
RACES = frozenset({"response_cancel_not_active"})
log = logging.getLogger("botrun.agent")


def with_model(url: str, model: str | None) -> str:
    """``url`` with ``?model=`` (unless it already names one)."""
    if not model:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    if any(k == "model" for k, _ in query):
        return url
    return urlunsplit(parts._replace(query=urlencode([*query, ("model", model)])))


class OpenAIClient(AgentClient):
    key_var = KEY_VAR
    protocol = "openai"

    def __init__(self, *args: Any, playback: Playback | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire = OpenAIWire()
        self._playback = playback

    @classmethod
    def from_context(cls, ctx: BackendContext) -> OpenAIClient:
        cfg = ctx.config
        specs = ctx.tools.specs if ctx.tools is not None else []
        return cls(
            with_model(cfg.agent.url, cfg.agent.model),
            session_payload(cfg.agent, specs, ctx.audio_format),
            api_key=ctx.api_key,
            tools=ctx.tools,
            buffer_s=cfg.bridge.reconnect_buffer_s,
            give_up_s=cfg.agent.ready_timeout_s,
            playback=ctx.playback,
        )

    # -- the wire ---------------------------------------------------------------------------

    def _wire_connecting(self) -> None:
        if self._state.session_id is not None:
            self._state.forget_session()  # no resume on this service: a new session
        self.wire.connection_opened()

    def _wire_first(self, first: Any) -> list[str]:
        cfg = first.session if isinstance(first, SessionUpdate) else dict(self._state.config)
        return self.wire.first_frames(cfg)

    def _wire_encode(self, ev: Any) -> list[str]:
        return self.wire.encode(ev)

    def _wire_may_send(self, ev: Any) -> bool:
        if isinstance(ev, WireFrames):
            return self._state.can_send_audio
        return super()._wire_may_send(ev)

    def _wire_audio(self, pcm: bytes) -> bytes:
        return self.wire.audio_message(pcm)

    def _wire_decode(self, msg: str | bytes) -> list[Any]:
        return self.wire.decode(msg)

    def _on_error(self, ev: SessionError) -> None:
        if ev.code in RACES:  # the server ended the response itself, just before our cancel
            self._stats.session_errors += 1
            log.debug("agent: %s (a cancel that raced the end of the response)", ev.code)
            return
        super()._on_error(ev)

    def _handle_event(self, ev: Any) -> None:
        super()._handle_event(ev)
        if isinstance(ev, ReplyDone | SessionError):  # a held response.create may go now
            frames = self.wire.release()
            if frames:
                self._send_control(WireFrames(frames))
        if isinstance(ev, SessionReady):
            greeting = self.wire.take_greeting()
            if greeting:
                self._send_control(WireFrames(greeting))
        elif isinstance(ev, SpeechStarted) and self._state.ready and self._state._interrupts():
            frames = self.wire.barge_in(self._playback)
            if frames:
                self._send_control(WireFrames(frames))
