"""The Gemini Live client: :class:`botrun.core.client.AgentClient` (retry policy, buffering,
tools, the session rules of core/session.py) speaking Gemini's wire through
:class:`~botrun.core.backends.gemini.protocol.GeminiWire`.

On top of the wire it handles: the API key as the documented ``?key=`` query parameter
(masked in every URL botrun shows), session resumption (a lost connection -- or one the
service announced with ``goAway`` -- is reopened with the latest resumption handle, so the
conversation goes on; ``goAway`` is acted on once no reply is playing), tool-call
cancellations, and close frames (Gemini has no in-band errors: the reason says what went
wrong) mapped to the codes the session's classifier knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...client import AgentClient, _Disconnect
from ...protocol import SessionReady, SessionResume, session_payload
from .protocol import GeminiWire, GoAway, ToolCancelled, WireFrames

if TYPE_CHECKING:
    from ..base import BackendContext

KEY_VAR = "GEMINI_API_KEY"


class GeminiClient(AgentClient):
    key_var = "GEMINI_API_KEY (or GOOGLE_API_KEY)"

    def __init__(self, *args: Any, model: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire = GeminiWire(model)
        self._go_away = False

    @classmethod
    def from_context(cls, ctx: BackendContext) -> GeminiClient:
        from ..plugin import GEMINI_MODEL

        cfg = ctx.config
        specs = ctx.tools.specs if ctx.tools is not None else []
        return cls(
            cfg.agent.url,
            session_payload(cfg.agent, specs),
            api_key=ctx.api_key,
            tools=ctx.tools,
            buffer_s=cfg.bridge.reconnect_buffer_s,
            give_up_s=cfg.agent.ready_timeout_s,
            model=cfg.agent.model or GEMINI_MODEL,
        )

    async def update_session(self, changes: dict[str, Any]) -> None:
        """Gemini fixes the config when a connection is set up: the change is kept (and
        immutable fields refused) like everywhere, then applied by a new connection that
        resumes the session, between turns."""
        await super().update_session(changes)
        self._go_away = True
        ws = self._ws
        idle = self.wire.between_turns and not self._state.reply_active
        if ws is not None and self._state.ready and idle:
            await ws.close(1000, "applying a config change")

    # -- the wire ---------------------------------------------------------------------------

    def _wire_auth(self, url: str) -> tuple[str, dict[str, str]]:
        if not self._api_key:
            return url, {}
        parts = urlsplit(url)
        query = [*parse_qsl(parts.query), ("key", self._api_key)]
        return urlunsplit(parts._replace(query=urlencode(query))), {}

    def _wire_connecting(self) -> None:
        self._go_away = False
        if self.wire.handle is None and self._state.session_id is not None:
            self._state.forget_session()  # nothing to resume with: a new session
        self.wire.connection_opened()

    def _wire_first(self, first: Any) -> list[str]:
        return self.wire.first_frames(
            dict(self._state.config) if isinstance(first, SessionResume) else first.session,
            resume=isinstance(first, SessionResume),
        )

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

    def _wire_close(self, code: int, reason: str) -> tuple[int, str]:
        text = reason.lower()
        if "api key" in text or "permission" in text or "unauthenticated" in text:
            return 1008, f"UNAUTHORIZED: {reason}"
        if "resum" in text or "handle" in text:
            return 1008, f"session_not_found: {reason}"
        if code == 1011:
            return code, f"internal_error: {reason}"
        return code, reason

    def _handle_event(self, ev: Any) -> None:
        if isinstance(ev, ToolCancelled):
            for cid in ev.call_ids:  # their results, when they come, are discarded
                if self._state._calls.pop(cid, None) is not None:
                    self._state.discarded_results += 1
            return
        if isinstance(ev, GoAway):
            self._go_away = True
        else:
            super()._handle_event(ev)
        if isinstance(ev, SessionReady):
            greeting = self.wire.take_greeting()
            if greeting:
                self._send_control(WireFrames(greeting))
        if self._go_away and not self._state.reply_active and self.wire.between_turns:
            # reconnect now, with the resumption handle, between turns (the service closes
            # the connection itself when goAway's timeLeft is over)
            raise _Disconnect("transient", "the service announced the end of the connection")
