"""The session state machine: the protocol's rules, with no I/O (in the manner of ``h11``).

The agent client feeds it what happens (a socket opened or was lost, each decoded server
event, a tool finished, the user changed the config) and sends what it returns. Every rule of
the Voice Agent API that is about *order* lives here, so it is testable with lists:

* audio goes out only after ``session.ready``;
* the first message of a socket is ``session.update`` (new session) or ``session.resume``
  (a saved id, within the resume window);
* ``tool.result`` values are held until ``reply.done`` of the reply that made the call; an
  ``interrupted`` reply discards them; after a resume the unanswered ones are sent again;
* reply audio is played only when :meth:`SessionState.accept_audio` says so: audio of an
  interrupted reply (``reply.done`` interrupted, an interrupted agent transcript, or the
  user starting to speak while ``interrupt_response`` is on) is stale until the next
  ``reply.started``; audio after a ``reply.done`` of any status and before the next
  ``reply.started`` is late (dropped and counted). Audio before the session's very first
  ``reply.started`` (a greeting sent without one) is accepted;
* the bridge asks, never keeps its own copy: ``reply_active``, ``accept_audio``, and
  :meth:`SessionState.abandon_reply` when it gives up on a reply that stopped progressing;
* turn timing: user speech stopped -> first reply audio, for metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UsageError
from .protocol import (
    IMMUTABLE_FIELDS,
    ClientEvent,
    ReplyAudio,
    ReplyDone,
    ReplyStarted,
    SessionEnded,
    SessionReady,
    SessionResume,
    SessionUpdate,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolResult,
    TranscriptAgent,
    get_path,
    merge_session,
)

log = logging.getLogger("botrun.session")

ReadyKind = Literal["first", "resumed", "new"]


@dataclass
class _Call:
    """A tool call the agent is waiting on."""

    reply_id: str | None
    result: str | None = None
    released: bool = False  # its reply finished (or was lost): send the result when ready


class SessionState:
    """What one agent session knows, across however many sockets it takes.

    ``session`` is the full ``session`` object of the first ``session.update``."""

    def __init__(
        self,
        session: dict[str, Any],
        *,
        resume_window_s: float = 30.0,
        regreet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config: dict[str, Any] = dict(session)
        self.resume_window_s = resume_window_s
        #: Speak the greeting again when a fresh session replaces a lost one.
        self.regreet = regreet
        self._clock = clock
        self.session_id: str | None = None
        self.previous_session_id: str | None = None
        self.connected = False
        self.ready = False
        #: How the last ``session.ready`` came about.
        self.ready_kind: ReadyKind | None = None
        self._applied = False  # a session has accepted self.config at least once
        self._resuming = False  # the current socket started with session.resume
        self._lost_at: float | None = None
        self._pending_update: dict[str, Any] = {}
        self._calls: dict[str, _Call] = {}
        #: The reply in progress (between reply.started and reply.done), if any.
        self.reply_id: str | None = None
        self._stale = False  # dropping audio of an interrupted reply
        self._stale_reply_id: str | None = None
        self._between_replies = False  # after a reply.done, before the next reply.started
        #: The reply the last ``input.speech.started`` cut (barge-in), if it cut one.
        self.muted_reply_id: str | None = None
        self._done_reply_id: str | None = None  # the last reply that finished
        self.ended = False  # session.ended received
        # turn timing
        self.speech_stopped_at: float | None = None
        self.first_audio_at: float | None = None
        self.first_audio_latency: float | None = None
        # counters
        self.stale_audio_chunks = 0
        self.late_audio_chunks = 0  # reply audio after reply.done (issue 15 bug 5)
        self.discarded_results = 0

    # -- properties ---------------------------------------------------------------------

    @property
    def can_send_audio(self) -> bool:
        """True when ``input.audio`` may go out now (connected and ready)."""
        return self.connected and self.ready

    @property
    def resuming(self) -> bool:
        """The current socket started with ``session.resume`` (not a new session's setup)."""
        return self._resuming

    @property
    def reply_active(self) -> bool:
        """A reply is in progress (its audio may be playing)."""
        return self.reply_id is not None

    @property
    def pending_tool_calls(self) -> list[str]:
        """Call ids the agent is still waiting on."""
        return list(self._calls)

    @property
    def held_results(self) -> list[str]:
        """Call ids whose result is computed but held (reply not done, or not ready)."""
        return [cid for cid, call in self._calls.items() if call.result is not None]

    # -- connection lifecycle -----------------------------------------------------------

    def connection_opened(self) -> ClientEvent:
        """A socket is open: the message that must go first on it."""
        self.connected = True
        self.ready = False
        self.ended = False
        msg = self.first_message()
        self._resuming = isinstance(msg, SessionResume)
        if not self._resuming:
            self._pending_update = {}  # the full config on this socket includes them
        return msg

    def first_message(self) -> SessionUpdate | SessionResume:
        """``session.resume`` with the saved id while the resume window is open, else
        ``session.update`` with the full (possibly updated) config."""
        if self.session_id is not None and self._within_window():
            return SessionResume(self.session_id)
        return SessionUpdate(self._fresh_config())

    def _within_window(self) -> bool:
        return self._lost_at is None or self._clock() - self._lost_at <= self.resume_window_s

    def _fresh_config(self) -> dict[str, Any]:
        cfg = self.config  # user changes are merged into it as they are made
        if self._applied and not self.regreet and "greeting" in cfg:
            cfg = {k: v for k, v in cfg.items() if k != "greeting"}
        return dict(cfg)

    def connection_lost(self) -> None:
        """The socket is gone. The in-flight reply is lost with it; tool calls survive a
        resume, so their results are kept (released at the next ready)."""
        if self.connected and self._lost_at is None:
            self._lost_at = self._clock()
        self.connected = False
        self.ready = False
        self._end_reply()
        for call in self._calls.values():
            call.released = True  # their reply will never send reply.done now

    def forget_session(self) -> None:
        """The service no longer knows our session (``session_not_found`` and friends):
        the next socket starts a fresh one, and nothing of the old one is re-sent."""
        if self.session_id is not None:
            self.previous_session_id = self.session_id
        self.session_id = None
        self._lost_at = None
        self.discarded_results += sum(1 for c in self._calls.values() if c.result is not None)
        self._calls.clear()
        self._end_reply()
        self._between_replies = False  # a new session may greet before any reply.started
        self._done_reply_id = None

    def _end_reply(self) -> None:
        self.reply_id = None
        self._stale = False
        self._stale_reply_id = None

    # -- user actions ---------------------------------------------------------------------

    def update_session(self, changes: dict[str, Any]) -> list[ClientEvent]:
        """Change the session config mid-session. Sent now when ready, otherwise after the
        next ready (a resumed session still has the old config). Fields the service treats
        as immutable are refused here with a clear message instead of a round-trip."""
        if self._applied:
            for path in IMMUTABLE_FIELDS:
                new = get_path(changes, path)
                if new is not None and new != get_path(self.config, path):
                    name = ".".join(path)
                    raise UsageError(
                        f"cannot change '{name}' after the session started: the voice-agent "
                        "service treats it as immutable (set it in the config before joining)"
                    )
        self.config = merge_session(self.config, changes)
        if self.ready:
            return [SessionUpdate(dict(changes))]
        if self.connected or self._applied:  # a first message already went (or will) out
            self._pending_update = merge_session(self._pending_update, changes)
        return []

    def add_tool_result(self, call_id: str, result: str) -> list[ClientEvent]:
        """A tool finished. Its ``tool.result`` goes out only once the reply that made the
        call is done (and we are ready); an interrupted reply's results are discarded."""
        call = self._calls.get(call_id)
        if call is None:
            self.discarded_results += 1
            log.debug("discarding result of call %s (interrupted or unknown)", call_id)
            return []
        call.result = result
        if call.released and self.ready:
            del self._calls[call_id]
            return [ToolResult(call_id, result)]
        return []

    # -- server events ----------------------------------------------------------------------

    def receive(self, event: object) -> list[ClientEvent]:
        """Feed one decoded server event; returns the client events to send now."""
        match event:
            case SessionReady(session_id=sid):
                return self._on_ready(sid)
            case ReplyStarted(reply_id=rid):
                self.reply_id = rid
                self._stale = False
                self._stale_reply_id = None
                self._between_replies = False
            case TranscriptAgent(reply_id=rid, interrupted=True):
                self._mark_stale(rid)
            case ReplyDone():
                return self._on_reply_done(event)
            case ToolCall(call_id=cid):
                self._calls[cid] = _Call(self.reply_id, released=self.reply_id is None)
            case SpeechStarted():
                self.muted_reply_id = None
                if self.reply_id is not None and self._interrupts():
                    # barge-in: the rest of this reply must not resume mid-sentence
                    self.muted_reply_id = self.reply_id
                    self._mark_stale(self.reply_id)
                self.speech_stopped_at = None
                self.first_audio_at = None
                self.first_audio_latency = None
            case SpeechStopped():
                if self.speech_stopped_at is None:  # it may arrive twice: keep the first
                    self.speech_stopped_at = self._clock()
                    self.first_audio_at = None
                    self.first_audio_latency = None
            case SessionEnded():
                self.ended = True
        return []

    def _on_ready(self, sid: str) -> list[ClientEvent]:
        resumed = self._resuming and sid == self.session_id
        if not self._applied:
            kind: ReadyKind = "first"
        else:
            kind = "resumed" if resumed else "new"
        if not resumed and self.session_id is not None and sid != self.session_id:
            self.forget_session()
        self.ready_kind = kind
        self.session_id = sid
        self.ready = True
        self._applied = True
        self._lost_at = None
        out: list[ClientEvent] = []
        if self._pending_update:
            out.append(SessionUpdate(self._pending_update))
        self._pending_update = {}
        for cid, call in list(self._calls.items()):
            if call.released and call.result is not None:
                out.append(ToolResult(cid, call.result))
                del self._calls[cid]
        return out

    def _on_reply_done(self, event: ReplyDone) -> list[ClientEvent]:
        rid = event.reply_id or self.reply_id
        out: list[ClientEvent] = []
        if event.interrupted:
            self._mark_stale(rid)
            for cid in [c for c, call in self._calls.items() if call.reply_id == rid]:
                if self._calls.pop(cid).result is not None:
                    self.discarded_results += 1
        else:
            for cid, call in list(self._calls.items()):
                if call.reply_id == rid:
                    call.released = True
                    if call.result is not None and self.ready:
                        out.append(ToolResult(cid, call.result))
                        del self._calls[cid]
        if rid == self.reply_id or self.reply_id is None:
            self.reply_id = None
            self._between_replies = True
            self._done_reply_id = rid
        return out

    def _interrupts(self) -> bool:
        """``input.turn_detection.interrupt_response`` of the current config (default on)."""
        td = self.config.get("input", {}).get("turn_detection", {})
        return bool(td.get("interrupt_response", True)) if isinstance(td, dict) else True

    def abandon_reply(self) -> None:
        """The caller gave up on the current reply (no progress, no ``reply.done``): it is
        over, and whatever audio of it still comes is late."""
        if self.reply_id is not None:
            self._done_reply_id = self.reply_id
        self.reply_id = None
        self._stale = False
        self._stale_reply_id = None
        self._between_replies = True

    def _mark_stale(self, reply_id: str | None) -> None:
        if reply_id and self.reply_id and reply_id != self.reply_id:
            # a late interruption notice for an older reply: only its own audio is stale
            self._stale_reply_id = reply_id
            return
        self._stale = True
        self._stale_reply_id = reply_id or self.reply_id

    # -- audio ------------------------------------------------------------------------------

    def accept_audio(self, event: ReplyAudio) -> bool:
        """Play this audio? False for stale audio of an interrupted reply (until the next
        ``reply.started``) and for late audio after a ``reply.done`` (until the next
        ``reply.started``, or tagged with a finished reply's id); both are counted. The first
        accepted chunk after the user stopped speaking marks the turn latency."""
        if self._stale or (event.reply_id is not None and event.reply_id == self._stale_reply_id):
            self.stale_audio_chunks += 1
            return False
        if self._between_replies or (
            event.reply_id is not None and event.reply_id == self._done_reply_id
        ):
            self.late_audio_chunks += 1
            return False
        if self.first_audio_at is None and self.speech_stopped_at is not None:
            self.first_audio_at = self._clock()
            self.first_audio_latency = self.first_audio_at - self.speech_stopped_at
        return True
