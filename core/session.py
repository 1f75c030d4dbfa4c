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
* turn timing: user speech stopped -> first reply audio, for metrics;
* the conversation (speech, transcripts, replies, tool calls) is admitted only from a ready
  session: before ``session.ready`` on a socket or after ``session.ended`` it is refused
  and counted (:meth:`SessionState.admit`, h11's "remote" side; bad input from the network
  is survived, never raised);
* what we send passes :meth:`SessionState.send` first (h11's "local" side): the first
  message of a socket must be ``session.update``/``session.resume`` and nothing else may be
  first; ``session.resume`` is never sent later; nothing goes out before ``session.ready``
  or after ``session.end`` (:class:`SessionProtocolError`: a bug in the caller); a
  ``tool.result`` queued for a session the service has since replaced is dropped and
  counted. Audio is gated by :attr:`SessionState.can_send_audio`, which the client's
  writer checks before every message (the per-chunk hot path makes no further call);
* reply audio without a ``reply_id`` belongs to the reply in progress (filled in by
  :meth:`SessionState.audio_to_play`);
* the state is three small machines, each one named state and one transition table
  (:data:`OUR_TRANSITIONS`, :data:`THEIR_TRANSITIONS`, :data:`REPLY_TRANSITIONS`), like h11's
  client and server roles: :class:`Ours` (what we may send on this socket), :class:`Theirs`
  (what the service said on it: ready, ended) and :class:`Reply` (what reply audio means
  now). Every flag the rest of the code reads (``connected``, ``ready``, ``ended``,
  ``reply_active``, stale or late audio) is a question about those states;
* how a connection ended decides what comes next (:meth:`SessionState.classify_close`,
  :meth:`SessionState.classify_error`): retry and resume, start a fresh session (the
  service forgot ours, refused the resume, or sent ``session.ended``), or give up (the key
  was refused, the configuration was refused). The same code means the same thing in-band
  (``session.error``) or as a close reason.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from .errors import UsageError
from .protocol import (
    FATAL_AUTH,
    FRESH_SESSION,
    IMMUTABLE_FIELDS,
    SETUP_REFUSED,
    TRANSIENT,
    ClientEvent,
    InputAudio,
    ReplyAudio,
    ReplyCreate,
    ReplyDone,
    ReplyStarted,
    SessionEnd,
    SessionEnded,
    SessionError,
    SessionReady,
    SessionResume,
    SessionUpdate,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolResult,
    TranscriptAgent,
    TranscriptAgentDelta,
    TranscriptUser,
    TranscriptUserDelta,
    get_path,
    merge_session,
)

log = logging.getLogger("botrun.session")

ReadyKind = Literal["first", "resumed", "new"]
#: What a lost connection means: ``transient`` retry (resume within the window), ``fresh``
#: retry with a new session, ``auth`` give up (key refused), ``refused`` give up (the
#: service refused the configuration or the connection), ``oversized`` retry (a message
#: over the size limit).
Disposition = Literal["transient", "fresh", "auth", "refused", "oversized"]


#: Server events that only a ready session sends (see :meth:`SessionState.admit`).
_CONVERSATION = (
    SpeechStarted,
    SpeechStopped,
    TranscriptUserDelta,
    TranscriptUser,
    ReplyStarted,
    ReplyAudio,
    TranscriptAgentDelta,
    TranscriptAgent,
    ReplyDone,
    ToolCall,
)


class SessionProtocolError(RuntimeError):
    """We were about to send something the protocol forbids now (a bug in the caller)."""


class Ours(Enum):
    """Our side of the current socket: what we may send on it."""

    CLOSED = "closed"  # no socket: nothing can be sent
    MUST_OPEN = "must open"  # a socket is open: its first message (update/resume) is due
    OPEN = "open"  # the first message went out: the rest may follow (once they are ready)
    ENDING = "ending"  # we sent session.end: nothing more on this session


class Theirs(Enum):
    """The service's side of the current socket: has it said ``session.ready`` or
    ``session.ended``? (``ready`` is READY or ENDED, ``ended`` is ENDED or GONE.)"""

    SETTING_UP = "setting up"  # no session.ready on this socket (yet)
    READY = "ready"  # session.ready: the conversation may flow
    ENDED = "ended"  # session.ended while ready: a fresh session comes next
    GONE = "gone"  # session.ended and nothing ready (before session.ready, or lost since)


class Reply(Enum):
    """What reply audio means now (see :meth:`SessionState.accept_audio`)."""

    FREE = "free"  # no reply known: audio plays (a greeting; after a lost connection)
    PLAYING = "playing"  # between reply.started and reply.done: its audio plays
    MUTED = "muted"  # the reply was interrupted: its audio is stale until reply.started
    DONE = "done"  # after reply.done (or given up): audio is late until reply.started
    DONE_MUTED = "done, muted"  # an interrupted reply that is over: stale until reply.started


class Step(Enum):
    """What moves the machines: what we send, what the service sends, what happens."""

    OPENED = "socket opened"
    LOST = "socket lost"
    SENT_FIRST = "sent session.update/resume first"
    SENT_END = "sent session.end"
    READY = "session.ready"
    ENDED = "session.ended"
    STARTED = "reply.started"
    INTERRUPTED = "reply interrupted"  # reply.done interrupted, an interrupted transcript,
    # or input.speech.started with interrupt_response (barge-in)
    DONE = "reply.done"  # of the reply in progress (or with none in progress)
    ABANDONED = "reply abandoned"  # the caller gave up on a reply with no progress
    FORGOTTEN = "session forgotten"  # the service no longer knows our session


#: (our state, step) -> next state. Steps with no row here are refused by
#: :meth:`SessionState.send` (sending) or leave the state as it is (the rest).
OUR_TRANSITIONS: dict[tuple[Ours, Step], Ours] = {
    (Ours.CLOSED, Step.OPENED): Ours.MUST_OPEN,
    (Ours.MUST_OPEN, Step.OPENED): Ours.MUST_OPEN,
    (Ours.MUST_OPEN, Step.SENT_FIRST): Ours.OPEN,
    (Ours.MUST_OPEN, Step.LOST): Ours.CLOSED,
    (Ours.OPEN, Step.OPENED): Ours.MUST_OPEN,
    (Ours.OPEN, Step.SENT_END): Ours.ENDING,
    (Ours.OPEN, Step.LOST): Ours.CLOSED,
    (Ours.ENDING, Step.OPENED): Ours.MUST_OPEN,
    (Ours.ENDING, Step.LOST): Ours.CLOSED,
    (Ours.CLOSED, Step.LOST): Ours.CLOSED,
}

#: (their state, step) -> next state (every row: network input never raises).
THEIR_TRANSITIONS: dict[tuple[Theirs, Step], Theirs] = {
    (Theirs.SETTING_UP, Step.OPENED): Theirs.SETTING_UP,
    (Theirs.SETTING_UP, Step.READY): Theirs.READY,
    (Theirs.SETTING_UP, Step.ENDED): Theirs.GONE,
    (Theirs.SETTING_UP, Step.LOST): Theirs.SETTING_UP,
    (Theirs.READY, Step.OPENED): Theirs.SETTING_UP,
    (Theirs.READY, Step.READY): Theirs.READY,
    (Theirs.READY, Step.ENDED): Theirs.ENDED,
    (Theirs.READY, Step.LOST): Theirs.SETTING_UP,
    (Theirs.ENDED, Step.OPENED): Theirs.SETTING_UP,
    (Theirs.ENDED, Step.READY): Theirs.ENDED,
    (Theirs.ENDED, Step.ENDED): Theirs.ENDED,
    (Theirs.ENDED, Step.LOST): Theirs.GONE,
    (Theirs.GONE, Step.OPENED): Theirs.SETTING_UP,
    (Theirs.GONE, Step.READY): Theirs.ENDED,
    (Theirs.GONE, Step.ENDED): Theirs.GONE,
    (Theirs.GONE, Step.LOST): Theirs.GONE,
}

_R, _S = Reply, Step
#: (reply state, step) -> next state (every row: network input never raises).
REPLY_TRANSITIONS: dict[tuple[Reply, Step], Reply] = {
    **{(r, _S.STARTED): _R.PLAYING for r in _R},
    **{(r, _S.ABANDONED): _R.DONE for r in _R},
    **{(r, _S.FORGOTTEN): _R.FREE for r in _R},
    (_R.FREE, _S.INTERRUPTED): _R.MUTED,
    (_R.FREE, _S.DONE): _R.DONE,
    (_R.FREE, _S.LOST): _R.FREE,
    (_R.PLAYING, _S.INTERRUPTED): _R.MUTED,
    (_R.PLAYING, _S.DONE): _R.DONE,
    (_R.PLAYING, _S.LOST): _R.FREE,  # the reply is lost with the socket
    (_R.MUTED, _S.INTERRUPTED): _R.MUTED,
    (_R.MUTED, _S.DONE): _R.DONE_MUTED,
    (_R.MUTED, _S.LOST): _R.FREE,
    (_R.DONE, _S.INTERRUPTED): _R.DONE_MUTED,
    (_R.DONE, _S.DONE): _R.DONE,
    (_R.DONE, _S.LOST): _R.DONE,
    (_R.DONE_MUTED, _S.INTERRUPTED): _R.DONE_MUTED,
    (_R.DONE_MUTED, _S.DONE): _R.DONE_MUTED,
    (_R.DONE_MUTED, _S.LOST): _R.DONE,
}


def named_code(reason: str) -> str | None:
    """The service error code a close reason names (``"server_error"``,
    ``"UNAUTHORIZED: bad key"``), if any; auth first, then session, then transient codes."""
    words = set(re.findall(r"[A-Za-z_]+", reason))
    for group in (FATAL_AUTH, FRESH_SESSION, TRANSIENT):
        for code in sorted(group & words):
            return code
    return None


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
        #: The three machines' states (see the tables above).
        self.ours = Ours.CLOSED
        self.theirs = Theirs.SETTING_UP
        #: True when ``input.audio`` may go out now (connected and ready): a question about
        #: the two states above, answered on every step (``_step``).
        self.can_send_audio = False
        self.reply = Reply.FREE
        #: How the last ``session.ready`` came about.
        self.ready_kind: ReadyKind | None = None
        self._applied = False  # a session has accepted self.config at least once
        self._resuming = False  # the current socket started with session.resume
        self._lost_at: float | None = None
        self._pending_update: dict[str, Any] = {}
        self._calls: dict[str, _Call] = {}
        #: The reply in progress (between reply.started and reply.done), if any.
        self.reply_id: str | None = None
        self._stale_reply_id: str | None = None  # an older reply interrupted late
        #: The reply the last ``input.speech.started`` cut (barge-in), if it cut one.
        self.muted_reply_id: str | None = None
        self._done_reply_id: str | None = None  # the last reply that finished
        self._results_due: set[str] = set()  # tool.result handed out to send, not yet sent
        # turn timing
        self.speech_stopped_at: float | None = None
        self.first_audio_at: float | None = None
        self.first_audio_latency: float | None = None
        # counters
        self.refused_events = 0  # server events the protocol forbids where they came
        self.stale_audio_chunks = 0
        self.late_audio_chunks = 0  # reply audio after reply.done (issue 15 bug 5)
        self.discarded_results = 0

    # -- the machines -------------------------------------------------------------------

    def _step(self, step: Step) -> None:
        """Move every machine that has a row for ``step`` (the others stay)."""
        self.ours = ours = OUR_TRANSITIONS.get((self.ours, step), self.ours)
        self.theirs = theirs = THEIR_TRANSITIONS.get((self.theirs, step), self.theirs)
        # asked for every audio frame, so kept as a plain attribute, set on every step
        self.can_send_audio = ours is not Ours.CLOSED and (
            theirs is Theirs.READY or theirs is Theirs.ENDED
        )
        self.reply = REPLY_TRANSITIONS.get((self.reply, step), self.reply)

    @property
    def connected(self) -> bool:
        """A socket is open."""
        return self.ours is not Ours.CLOSED

    @property
    def ready(self) -> bool:
        """The service said ``session.ready`` on this socket (and it is still open)."""
        return self.theirs is Theirs.READY or self.theirs is Theirs.ENDED

    @property
    def ended(self) -> bool:
        """The service sent ``session.ended`` (until the next socket opens)."""
        return self.theirs is Theirs.ENDED or self.theirs is Theirs.GONE

    # -- properties ---------------------------------------------------------------------

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
        self._step(Step.OPENED)
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
        self._step(Step.LOST)
        self.reply_id = None
        self._stale_reply_id = None
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
        # results already handed out to send belong to the old session: refused (and
        # counted) by send()
        self._results_due.clear()
        self._step(Step.FORGOTTEN)  # a new session may greet before any reply.started
        self.reply_id = None
        self._stale_reply_id = None
        self._done_reply_id = None

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
            return [self._due(call_id, result)]
        return []

    # -- server events ----------------------------------------------------------------------

    def admit(self, event: object) -> bool:
        """May this server event be acted on now? The conversation (speech, transcripts,
        replies, tool calls) belongs to a ready session: on a socket whose
        ``session.ready`` has not come yet, or after ``session.ended``, such events are
        refused (counted in ``refused_events``; the client logs and drops them)."""
        if not isinstance(event, _CONVERSATION):
            return True
        if self.connected and self.ready and not self.ended:
            return True
        self.refused_events += 1
        return False

    def receive(self, event: object) -> list[ClientEvent]:
        """Feed one decoded server event; returns the client events to send now."""
        match event:
            case SessionReady(session_id=sid):
                return self._on_ready(sid)
            case ReplyStarted(reply_id=rid):
                self.reply_id = rid
                self._stale_reply_id = None
                self._step(Step.STARTED)
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
                # the service ended our session: whatever connects next starts a new one
                self._step(Step.ENDED)
                self.forget_session()
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
        self._step(Step.READY)
        self._applied = True
        self._lost_at = None
        out: list[ClientEvent] = []
        if self._pending_update:
            out.append(SessionUpdate(self._pending_update))
        self._pending_update = {}
        for cid, call in list(self._calls.items()):
            if call.released and call.result is not None:
                out.append(self._due(cid, call.result))
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
                        out.append(self._due(cid, call.result))
                        del self._calls[cid]
        if rid == self.reply_id or self.reply_id is None:
            self.reply_id = None
            self._step(Step.DONE)
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
        self._stale_reply_id = None
        self._step(Step.ABANDONED)

    def _mark_stale(self, reply_id: str | None) -> None:
        if reply_id and self.reply_id and reply_id != self.reply_id:
            # a late interruption notice for an older reply: only its own audio is stale
            self._stale_reply_id = reply_id
            return
        self._step(Step.INTERRUPTED)
        self._stale_reply_id = reply_id or self.reply_id

    # -- audio ------------------------------------------------------------------------------

    def accept_audio(self, event: ReplyAudio) -> bool:
        """Play this audio? False for stale audio of an interrupted reply (until the next
        ``reply.started``) and for late audio after a ``reply.done`` (until the next
        ``reply.started``, or tagged with a finished reply's id); both are counted. The first
        accepted chunk after the user stopped speaking marks the turn latency."""
        reply = self.reply
        if (
            reply is Reply.MUTED
            or reply is Reply.DONE_MUTED
            or (event.reply_id is not None and event.reply_id == self._stale_reply_id)
        ):
            self.stale_audio_chunks += 1
            return False
        if reply is Reply.DONE or (
            event.reply_id is not None and event.reply_id == self._done_reply_id
        ):
            self.late_audio_chunks += 1
            return False
        if self.first_audio_at is None and self.speech_stopped_at is not None:
            self.first_audio_at = self._clock()
            self.first_audio_latency = self.first_audio_at - self.speech_stopped_at
        return True

    def audio_to_play(self, event: ReplyAudio) -> ReplyAudio | None:
        """The audio to play, or None (stale or late: see :meth:`accept_audio`). Audio the
        service sent without a ``reply_id`` is tagged with the reply in progress."""
        if event.reply_id is None and self.reply_id is not None:
            event = ReplyAudio(event.pcm, self.reply_id)
        return event if self.accept_audio(event) else None

    # -- outgoing ---------------------------------------------------------------------------

    def _due(self, call_id: str, result: str) -> ToolResult:
        self._results_due.add(call_id)
        return ToolResult(call_id, result)

    def send(self, event: ClientEvent) -> bool:
        """About to send ``event`` on the current socket: True when it may go out (and it is
        recorded as sent); False when it is obsolete and must be dropped (a ``tool.result``
        for a session the service has replaced: counted in ``discarded_results``). Raises
        :class:`SessionProtocolError` for what the protocol forbids now."""
        ours = self.ours
        if ours is Ours.CLOSED:
            raise SessionProtocolError(f"cannot send {type(event).__name__}: not connected")
        if ours is Ours.ENDING:
            raise SessionProtocolError(
                f"cannot send {type(event).__name__}: session.end was already sent"
            )
        if ours is Ours.MUST_OPEN:
            if not isinstance(event, SessionUpdate | SessionResume):
                raise SessionProtocolError(
                    f"the first message must be session.update or session.resume, "
                    f"not {type(event).__name__}"
                )
            self._step(Step.SENT_FIRST)
            return True
        if isinstance(event, SessionResume):
            raise SessionProtocolError("session.resume may only be a socket's first message")
        if isinstance(event, SessionEnd):
            self._step(Step.SENT_END)
            return True
        if not self.ready:
            raise SessionProtocolError(f"cannot send {type(event).__name__} before session.ready")
        if isinstance(event, ToolResult):
            if event.call_id not in self._results_due:
                self.discarded_results += 1
                log.debug("dropping tool.result %s: its session is gone", event.call_id)
                return False
            self._results_due.discard(event.call_id)
        elif not isinstance(event, InputAudio | ReplyCreate | SessionUpdate):
            raise SessionProtocolError(f"unknown client event {type(event).__name__}")
        return True

    def unsent(self, event: ClientEvent) -> None:
        """``event`` passed :meth:`send` but the socket closed under it: it is still due
        (re-sent on the next socket, if its session survives)."""
        if isinstance(event, ToolResult):
            self._results_due.add(event.call_id)

    # -- how a connection ended -----------------------------------------------------------------

    def classify_error(self, event: SessionError) -> Disposition | None:
        """What an in-band ``session.error`` means; None: reported, and the session goes on."""
        if event.code in FATAL_AUTH:
            return "auth"
        if event.code in FRESH_SESSION:
            return "fresh"
        if event.code in TRANSIENT:
            return "transient"
        if event.code in SETUP_REFUSED and not self.ready:
            # the setup was refused: our configuration (give up), or a resume (start afresh)
            return "fresh" if self._resuming else "refused"
        return None

    def classify_close(self, code: int, reason: str = "", sent: int | None = None) -> Disposition:
        """What a closed connection means: ``code``/``reason`` from the service's close frame
        (1006 when there was none), ``sent`` the code of the close frame we sent, if any.
        A reason that names an error code is classified like that ``session.error``."""
        if sent == 1009 or code == 1009:
            return "oversized"
        named = named_code(reason)
        if named in FATAL_AUTH:
            return "auth"
        if named in FRESH_SESSION:
            return "fresh"
        if named in TRANSIENT:
            return "transient"
        if self.ended:
            return "fresh"  # after session.ended, a new session
        if code == 1008:
            # a policy close: of our session if we had one (start afresh), else of us
            return "fresh" if self.session_id is not None else "refused"
        return "transient"
