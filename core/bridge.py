"""The bridge: one meeting transport wired to one voice-agent session.

It does one job itself and hands two to its parts (docs/architecture.md)::

    transport threads --TransportEvents--> Handoff --> the loop
    core/bridge.py     the call's lifecycle and the agent session: joins, opens and closes
                       sessions, reads the agent's events and says what they mean for the call
    core/routing.py    InboundRouter: participants' audio -> mix -> agent (and keep-alive)
                       OutboundRouter: reply audio -> resample -> pacer -> transport; flush
    core/reporting.py  TurnReporter: turns, latency, transcripts, tool calls, barge-ins as
                       events; the end-of-call figures

The bridge owns timing and drives the call's lifecycle (core/lifecycle.py: one transition
table): it opens the agent session when the first human joins (so a caller hears the
greeting), closes it once the last one has left and the agent has gone quiet for
``leave_grace_s`` (a person who joins meanwhile gets a new session at once), leaves the
meeting after ``idle_timeout_s`` with nobody there or after ``max_duration_s``, and keeps the
agent's speech detector fed with silence when no participant audio arrives. Whether a reply
is active and whether its audio plays are the session's answers (core/session.py).

Nothing the agent does can hold the bot in a call: a session that is not ready for
``agent.ready_timeout_s`` -- at the start or after a loss, transient failures retried
within that one window -- fails the call; a reply with no audio
or text for ``reply_timeout_s`` is over; once the room is empty the session is closed after
at most ``leave_grace_s + reply_timeout_s`` whatever the agent keeps sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import heap
from . import protocol as proto
from .errors import AgentError, BotrunError, TransportError
from .events import BridgeEvent
from .handoff import Handoff
from .lifecycle import Action, CallEvent, CallLifecycle, CallState, LifecycleError
from .metrics import CallMetrics, Turn
from .observers import ObserverFailures, observer_name
from .participants import Roster
from .reporting import TurnReporter
from .routing import Frame, InboundRouter, LoopCall, OutboundRouter
from .secrets import mask_url
from .transcripts import TranscriptWriter

if TYPE_CHECKING:
    from .audio.pacer import OutboundPacer
    from .backends.base import AgentSession
    from .call import CallContext
    from .config import BotConfig
    from .hooks import HookSet
    from .taps import AudioTaps
    from .tools import ToolRegistry
    from .transport import Transport

log = logging.getLogger("botrun.bridge")

Observer = Callable[[BridgeEvent], None]
_TICK_S = 0.1  # timers and the silence keep-alive (less often while audio flows)
_SHUTDOWN_BUDGET_S = 1.8  # SIGINT/SIGTERM -> process exit within 2 s


@dataclass
class CallSummary:
    reason: str = ""
    error: BotrunError | None = None
    #: A signal stopped the call (SIGINT/SIGTERM, whatever ``reason`` says): it shuts down
    #: within the exit budget.
    interrupted: bool = False
    metrics: CallMetrics = field(default_factory=CallMetrics)
    client_stats: Any = None
    #: What the bot did to the call (events.CallAction: hang-up, transfer, DTMF, ...).
    actions: list[ev.CallAction] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return self.error.exit_code
        # a signal's stop is no success: 128 + its number, as a shell reports a killed process
        return {"SIGINT": 130, "SIGTERM": 143}.get(self.reason, 0)


class Bridge:
    """Implements :class:`botrun.core.transport.TransportEvents` (thread-safe entry points)
    and runs the call on the event loop."""

    #: Read-only taps on the call's audio (a recorder, core/taps.py); set before run().
    taps: AudioTaps | None = None

    def __init__(
        self,
        transport: Transport,
        config: BotConfig,
        *,
        api_key: str | None = None,
        tools: ToolRegistry | None = None,
        observers: Iterable[Observer] = (),
        transcript: Path | None = None,
        hooks: HookSet | None = None,
    ) -> None:
        self.transport = transport
        self.config = config
        self.api_key = api_key
        self.tools = tools
        self.observers = list(observers)
        self._observer_failures = ObserverFailures()
        self.transcript = TranscriptWriter(transcript) if transcript else None
        if self.transcript is not None:  # an observer like any other, after the caller's
            self.observers.append(self.transcript)
        self.roster = Roster(config.bridge.listen)
        # the console's call length in meeting time, like the report's (a --speed WAV call)
        self.metrics = CallMetrics(time_scale=float(getattr(transport, "time_scale", 1.0) or 1.0))
        self.summary = CallSummary(metrics=self.metrics)
        self.client: AgentSession | None = None
        # A phone transport (Twilio) speaks G.711 μ-law at 8 kHz: passed through to an agent
        # session that takes audio/pcmu, else transcoded here (μ-law <-> PCM16, 8k <-> 24k).
        phone_audio = getattr(transport, "audio_encoding", "pcm") == "pcmu"
        # (only to a backend that takes audio/pcmu: core/backends, BackendSpec.phone_audio)
        from .plugins import get_backend

        backend = get_backend(config.agent.backend)
        self._passthrough = (
            phone_audio and getattr(transport, "agent_audio", "") == "pcmu" and backend.phone_audio
        )
        if not backend.speech_stopped:  # the figure would time the reply's start, not the user
            self.metrics.latency_unmeasured = (
                f"not measured on {backend.name} (the service does not say when you stop speaking)"
            )
        self._phones: dict[str, str | None] = {}  # participant id -> number, phone callers
        self._stop = asyncio.Event()
        self.lifecycle = CallLifecycle()
        self._session_task: asyncio.Task[None] | None = None
        self._closing_session: asyncio.Task[None] | None = None  # the close the lifecycle awaits
        self._closes: set[asyncio.Task[None]] = set()  # every session close still under way
        # agent-side state. Whether a reply is active and whether its audio plays are the
        # session's answers (client.state, core/session.py): the bridge keeps no copy.
        self._reply_progress_at = 0.0  # monotonic time of the reply's last audio or text
        self._session_ready = False  # the current agent session has been ready at least once
        self._user_speaking = False
        self._awaiting_reply_since: float | None = None
        # the turns, their figures and their text (core/reporting.py)
        self.reporter = TurnReporter(transport, self.roster, self.metrics, self._emit)
        # the audio both ways (core/routing.py)
        self.inbound = InboundRouter(
            self.roster,
            self.metrics,
            lambda: self.client,
            lambda: self._user_speaking,
            chunk_ms=config.bridge.chunk_ms,
            in_rate=backend.input_rate,  # the rate the backend takes PCM16 at
            phone_audio=phone_audio,
            passthrough=self._passthrough,
        )
        self.outbound = OutboundRouter(
            transport,
            self.metrics,
            self._on_first_audio,
            phone_audio=phone_audio,
            passthrough=self._passthrough,
        )
        # timers
        self._empty_since: float | None = time.monotonic()
        # when the call began (max_duration_s counts from it): the join, or the first
        # participant's for a transport whose call starts then (a browser page); None before
        self._began_at: float | None = None
        self._quiet_since: float | None = None
        self._audio_in: Handoff[Frame | LoopCall] | None = None
        self.joined = False  # the transport joined: there is a call to summarise
        self.mute_replies = False  # hanging up: nothing the agent says from now on plays
        self.call: CallContext = self._make_call_context(hooks)
        self.observers.insert(0, self.call)  # transcript and hooks see events first

    def _make_call_context(self, hooks: HookSet | None) -> CallContext:
        """The call's :class:`CallContext` (core/call.py) with the bot's hooks: those given,
        else the config's ``[bot] hooks`` (:class:`ConfigError` when they do not load)."""
        from .call import CallContext
        from .hooks import config_hooks

        if hooks is None:
            hooks = config_hooks(self.config)
        return CallContext(self, hooks.for_call() if hooks is not None else None)

    # ------------------------------------------------------------------ any thread
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        # Through the same hand-off as the audio frames, so a participant's last frames
        # are never overtaken by their leave (or any event by audio sent before it).
        handoff = self._audio_in
        if handoff is not None:
            handoff.put((None, fn, args))

    def participant_joined(self, participant_id: str, name: str | None = None) -> None:
        self._call(self._on_joined, str(participant_id), name)

    def participant_updated(self, participant_id: str, name: str | None = None) -> None:
        self._call(self._on_updated, str(participant_id), name)

    def participant_left(self, participant_id: str, reason: str = "") -> None:
        self._call(self._on_left, str(participant_id), reason)

    def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None:
        # bytes() copies a bytearray/memoryview the SDK may reuse; bytes stay as they are.
        # No loop wake-up per frame: the loop takes every call's frames on a 10 ms clock.
        handoff = self._audio_in
        if handoff is not None:
            handoff.put((participant_id, bytes(pcm), sample_rate, time.monotonic()))

    def ended(self, reason: str, error: str | None = None) -> None:
        self._call(self._on_ended, reason, error)

    def participant_phone(self, participant_id: str, number: str | None = None) -> None:
        self._call(self._on_phone, str(participant_id), number)

    def dtmf(self, participant_id: str | None, digit: str) -> None:
        self._call(self._on_dtmf, None if participant_id is None else str(participant_id), digit)

    def status(self, state: str, detail: str = "") -> None:
        self._call(self._on_status, str(state), str(detail))

    # ------------------------------------------------------------------ loop
    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called: the call is ending."""
        return self._stop.is_set()

    def stop(
        self,
        reason: str = "stopped",
        error: BotrunError | None = None,
        *,
        interrupted: bool | None = None,
    ) -> None:
        """End the call. ``interrupted``: a signal asked (default: ``reason`` names one)."""
        if not self._stop.is_set():
            self.summary.reason = reason
            self.summary.interrupted = (
                reason in ("SIGINT", "SIGTERM") if interrupted is None else interrupted
            )
            if error is not None and self.summary.error is None:
                self.summary.error = error
            self._stop.set()
            self._fire(CallEvent.STOP)

    def _fire(self, event: CallEvent) -> None:
        """Move the call's lifecycle (core/lifecycle.py) and do what the transition says."""
        before = self.lifecycle.state
        try:
            action = self.lifecycle.handle(event)
        except LifecycleError:
            log.exception("internal error in the call lifecycle")
            return
        if self.lifecycle.state is not before:
            log.debug("call: %s --%s--> %s", before.value, event.value, self.lifecycle.state.value)
        if action is Action.OPEN_SESSION:
            self._closing_session = None  # an old session still closing finishes aside
            if self.client is None:  # (a client handed in from outside, e.g. a test, stays)
                self._open_session()
        elif action is Action.CLOSE_SESSION:
            self._closing_session = self._begin_close()

    def _emit(self, event: BridgeEvent) -> None:
        for obs in self.observers:
            try:
                obs(event)
            except Exception as exc:  # one WARNING line, then counted (core/observers.py)
                self._observer_failures.failed(
                    obs, functools.partial(observer_name, obs), event.kind, exc
                )

    def _on_ended(self, reason: str, error: str | None) -> None:
        self.stop(reason, TransportError(error) if error else None)

    def _on_joined(self, pid: str, name: str | None) -> None:
        if self.roster.bot_id is None:
            self.roster.bot_id = self.transport.bot_participant_id
        p = self.roster.join(pid, name)
        if p is None:
            return
        if pid in self._phones:
            p.phone, p.number = True, self._phones[pid]
        log.info("participant joined: %s (%s)", name or pid, pid)
        if self._began_at is None and getattr(self.transport, "call_starts_at_join", False):
            # the call begins now, not when the transport began to wait (its length too)
            self._began_at = self.metrics.started_at = time.monotonic()
        self._emit(ev.ParticipantJoined(pid, name))
        self._empty_since = None
        self._refresh_listened()
        self._fire(CallEvent.PERSON_JOINED)

    def _on_phone(self, pid: str, number: str | None) -> None:
        self._phones[pid] = number  # kept for a participant who has not joined yet
        p = self.roster.get(pid)
        if p is not None:
            p.phone, p.number = True, number

    def _on_dtmf(self, pid: str | None, digit: str) -> None:
        log.info("keypad: %r from %s", digit, pid or "a participant")
        self._emit(ev.DtmfReceived(digit, pid))

    def _on_status(self, state: str, detail: str) -> None:
        log.info("%s: %s%s", self.transport.name, state, f" ({detail})" if detail else "")
        self._emit(ev.TransportStatus(state, detail))

    def _on_updated(self, pid: str, name: str | None) -> None:
        self.roster.update(pid, name)
        self._refresh_listened()

    def _on_left(self, pid: str, reason: str) -> None:
        p = self.roster.leave(pid)
        if p is None:
            return
        log.info("participant left: %s (%s)", p.name or pid, reason or "left")
        self._emit(ev.ParticipantLeft(pid, p.name, reason))
        self._refresh_listened()
        if not len(self.roster):
            self._empty_since = time.monotonic()

    def _refresh_listened(self) -> None:
        self.inbound.set_listened(self.roster.listened())
        if (unmatched := self.roster.unmatched_listen()) is not None:
            log.warning("%s", unmatched)

    # ------------------------------------------------------------------ agent session
    def _open_session(self) -> None:
        from .backends.base import BackendContext
        from .plugins import get_backend
        from .protocol import PCMU_FORMAT

        spec = get_backend(self.config.agent.backend)  # the seam: core/backends
        tools = self.tools.bind(self.call) if self.tools is not None else None
        fmt = PCMU_FORMAT if self._passthrough else None
        ctx = BackendContext(self.config, self.api_key, tools, self._played_ms, audio_format=fmt)
        self.client = spec.factory(ctx)
        self._session_ready = False
        if self.metrics.agent_answered is None:
            self.metrics.agent_answered = False
        self.inbound.session_opened(time.monotonic())
        self._emit(ev.SessionStateChanged("connecting", mask_url(self.config.agent.url)))
        self._session_task = asyncio.create_task(self._run_session(self.client))

    async def _run_session(self, client: AgentSession) -> None:
        try:
            await client.start()

            def handle(event: Any) -> None:
                # a session closing aside while a newer one runs must not touch its state
                if self.client is client or self.client is None:
                    self._on_agent_event(event)

            run_events = getattr(client, "run_events", None)
            if run_events is not None:  # each event as it is read: no task between
                await run_events(handle)
            else:  # a plugin's session with events() only (docs/backends.md)
                async for event in client.events():
                    handle(event)
        except asyncio.CancelledError:
            raise
        except BotrunError as exc:
            self.stop("agent failed", exc)
        except Exception as exc:
            log.error("the voice-agent session crashed: %r", exc, exc_info=True)
            self.stop("agent failed", AgentError(f"voice-agent session failed: {exc}"))
        finally:
            if self.client is client:
                self.summary.client_stats = client.stats

    def _begin_close(self, timeout: float = 2.0) -> asyncio.Task[None] | None:
        """Detach the current session and close it in a task of its own: a person who joins
        meanwhile gets a new session at once (lifecycle: closing -> in session)."""
        client, task = self.client, self._session_task
        self.client = None
        self._session_task = None
        if client is None:
            return None
        self._user_speaking = False
        self.reporter.cut_reply()  # its reply ends with the session: settled at the end
        self._awaiting_reply_since = None
        self._emit(ev.SessionStateChanged("closing"))
        close = asyncio.create_task(self._close_session(client, task, timeout))
        self._closes.add(close)
        close.add_done_callback(self._session_close_done)
        return close

    async def _close_session(
        self, client: AgentSession, task: asyncio.Task[None] | None, timeout: float
    ) -> None:
        try:
            await client.close(timeout)
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.client is None:
                self.summary.client_stats = client.stats
            self._emit(ev.SessionStateChanged("closed"))

    def _session_close_done(self, close: asyncio.Task[None]) -> None:
        self._closes.discard(close)
        if not close.cancelled() and close.exception() is not None:
            exc = close.exception()
            log.warning("closing the agent session failed: %s", _describe(exc))
        if close is self._closing_session:
            self._closing_session = None
            self._empty_since = time.monotonic()
            if self.lifecycle.state is CallState.CLOSING:
                self._fire(CallEvent.SESSION_CLOSED)

    def _on_agent_event(self, e: Any) -> None:
        if type(e) is proto.ReplyAudio:  # most events by far: first, in as few steps as it takes
            self._reply_progress_at = time.monotonic()
            if not self.mute_replies:  # hanging up: nothing the agent says plays
                self.outbound.play(e.pcm, self.reporter.reply_turn)
            return
        if isinstance(
            e, proto.ReplyAudio | proto.ReplyStarted | proto.TranscriptAgentDelta | proto.ToolCall
        ):
            self._reply_progress_at = time.monotonic()
        if isinstance(e, proto.ReplyAudio):
            if not self.mute_replies:  # hanging up: nothing the agent says plays
                self.outbound.play(e.pcm, self.reporter.reply_turn)
        elif isinstance(e, proto.SpeechStarted):
            self._user_speaking = True
            self.roster.reset_turn()
            speaker = self.roster.speaking_now(self.inbound.listened)
            self._emit(
                ev.SpeechStarted(speaker.id if speaker else None, speaker.name if speaker else None)
            )
            # A reply under way was cut by the session (ReplyMuted, just before); audio of
            # a finished reply may still be playing: cut that too.
            interrupt = self.config.agent.input.turn_detection.interrupt_response
            if interrupt and self._pending_out_ms() > 0:
                self._barge_in("speech")
        elif isinstance(e, proto.SpeechStopped):
            if self._user_speaking or self._awaiting_reply_since is None:
                self._awaiting_reply_since = time.monotonic()
                self.reporter.user_turn(self._awaiting_reply_since)
            self._user_speaking = False
            self._emit(ev.SpeechStopped())
        elif isinstance(e, proto.TranscriptUserDelta):
            self.reporter.user_delta(e.text)
        elif isinstance(e, proto.TranscriptUser):
            self.reporter.user_transcript(e.text, self.inbound.listened)
        elif isinstance(e, proto.ReplyStarted):
            self.reporter.reply_started(e.reply_id)
        elif isinstance(e, proto.TranscriptAgentDelta):
            self.reporter.agent_delta(e.delta, e.end_ms)
        elif isinstance(e, proto.TranscriptAgent):
            self.reporter.agent_text(e.text, e.interrupted)
        elif isinstance(e, proto.ReplyDone):
            # a reply with words but no final transcript (tool-call replies): record them
            self.reporter.finish_agent_text(interrupted=e.status == "interrupted")
            self._on_reply_done(e.status == "interrupted")
        elif isinstance(e, proto.ToolCall):
            log.debug("agent called tool %s (%s)", e.name, e.call_id)
        elif isinstance(e, proto.ToolDone):
            self.reporter.tool_done(e)
        elif isinstance(e, proto.SessionReady):
            self._session_ready = True
            self.metrics.agent_answered = True
            self._emit(ev.SessionStateChanged("ready", e.session_id))
        elif isinstance(e, proto.SessionError):
            log.warning("agent error %s: %s", e.code, e.message)
            self._emit(ev.ErrorOccurred(f"{e.code}: {e.message}"))
        elif isinstance(e, proto.SessionEnded):
            self._emit(ev.SessionStateChanged("ended"))
        elif isinstance(e, proto.ReplyMuted):
            # the session drops the rest of this reply; flush what is queued for the meeting
            self._barge_in("speech")
            self.reporter.reply_muted()
        else:
            name = type(e).__name__
            if name == "Reconnecting":
                # The reply in flight is lost with the socket and no reply.done will come
                # for it: what was already queued plays out, the turn state resets.
                self.reporter.end_reply("lost")
                self._awaiting_reply_since = None
            if name in ("Reconnecting", "Resumed", "NewSession"):
                detail = getattr(e, "reason", None) or getattr(e, "session_id", "")
                self._emit(ev.SessionStateChanged(name.lower(), str(detail)))

    def _played_ms(self, reply_id: str) -> float:
        """How much of reply ``reply_id`` the caller has heard (BackendContext.played_ms)."""
        return self.reporter.played_ms(reply_id, self.pacer)

    def _on_reply_done(self, interrupted: bool) -> None:
        if interrupted:
            self._barge_in("reply.done")
        self.reporter.end_reply("interrupted" if interrupted else "completed", interrupted)
        self._awaiting_reply_since = None

    def _barge_in(self, cause: str) -> None:
        flushed = self.outbound.flush()
        if flushed is not None:
            self.reporter.barge_in(cause, flushed)

    def _on_first_audio(self, turn: Turn, t: float) -> None:
        # pacer thread: the pacer is handing a reply's first audio to the transport
        self._call(self.reporter.first_audio, turn, t)

    def _replying(self) -> bool:
        """The session's answer: is a reply under way?"""
        return self.client is not None and self.client.state.reply_active

    def _pending_out_ms(self) -> float:
        return self.outbound.pending_ms

    @property
    def pacer(self) -> OutboundPacer | None:
        """The bot's voice on its way to the transport (core/routing.py), once running."""
        return self.outbound.pacer

    # ------------------------------------------------------------------ timers
    def _busy(self, now: float) -> bool:
        if not self._session_ready:
            return True  # starting: bounded by the client's retry window (ready_timeout_s)
        waiting = self._awaiting_reply_since is not None and now - self._awaiting_reply_since < 10
        return self._user_speaking or self._replying() or waiting or self._pending_out_ms() > 0

    def _wall_s(self, seconds: float) -> str:
        """A timer's seconds for a message: the bridge's timers count wall-clock time, which
        a ``--speed`` WAV call's figures are not, so there it says so."""
        if self.metrics.time_scale == 1.0:
            return f"{seconds:.0f} s"
        return f"{seconds:.0f} s of wall clock"

    def _end_stalled_reply(self, now: float) -> None:
        """A reply with no audio or text for ``reply_timeout_s`` is over: the agent will
        most likely never send its ``reply.done`` (and must not hold the bot in the call)."""
        limit = self.config.bridge.reply_timeout_s
        # (reply_turn: the bridge has itself seen the reply start, and so set its progress
        # time; the client's state changes when the message arrives, before the bridge reads it)
        if not self._replying() or self.reporter.reply_turn is None:
            return
        if now - self._reply_progress_at < limit:
            return
        log.warning(
            "the agent's reply made no progress for %s without reply.done; treating it as over",
            self._wall_s(limit),
        )
        if self.client is not None:
            self.client.abandon_reply()  # the session drops whatever of it still comes
        self.reporter.end_reply("stalled")
        self.reporter.finish_agent_text(interrupted=True)
        self._awaiting_reply_since = None

    async def _watchdog(self) -> None:
        cfg = self.config.bridge
        chunk_s = cfg.chunk_ms / 1000
        wait = _TICK_S
        while not self._stop.is_set():
            await asyncio.sleep(wait)
            now = time.monotonic()
            # every _TICK_S while the keep-alive may be due; while people's audio flows,
            # not before it could be (the other timers here count in seconds)
            wait = max(_TICK_S, self.inbound.quiet_in(now))
            began = self._began_at  # (None: still waiting for the call to begin)
            if began is not None and now - began >= cfg.max_duration_s:
                self.stop(f"maximum call duration reached ({self._wall_s(cfg.max_duration_s)})")
                break
            self.inbound.keep_alive(now, chunk_s)
            self._end_stalled_reply(now)
            if len(self.roster):
                self._quiet_since = None
                continue
            state = self.lifecycle.state
            if state is CallState.IN_SESSION:
                self._watch_empty_session(now)
            elif state is CallState.WAITING:
                # A join the transport reported may still wait in the hand-off for the next
                # tick: the room is not empty until every reported event has been handled.
                handoff = self._audio_in
                if self.transport.participants_pending() or (handoff and handoff.pending):
                    self._empty_since = now
                elif (
                    self._empty_since is not None and now - self._empty_since >= cfg.idle_timeout_s
                ):
                    self._fire(CallEvent.IDLE_TIMEOUT)
                    self.stop("no one left in the meeting")

    def _watch_empty_session(self, now: float) -> None:
        """Nobody left: close the agent session once it has gone quiet. However much audio
        the agent keeps sending, not later than leave_grace_s + reply_timeout_s after the
        room emptied (a session still starting has its own bound)."""
        cfg = self.config.bridge
        overdue = (
            self._session_ready
            and self._empty_since is not None
            and now - self._empty_since >= cfg.leave_grace_s + cfg.reply_timeout_s
        )
        if overdue:
            log.warning(
                "the agent is still busy %s after everyone left; ending the session",
                self._wall_s(now - (self._empty_since or now)),
            )
        elif self._busy(now):
            self._quiet_since = None
            return
        elif self._quiet_since is None:
            self._quiet_since = now
            return
        elif now - self._quiet_since < cfg.leave_grace_s:
            return
        self._quiet_since = None
        self._fire(CallEvent.ROOM_QUIET)

    # ------------------------------------------------------------------ run
    async def run(self) -> CallSummary:
        heap.settle()  # before any call's audio flows: see core/heap.py
        loop = asyncio.get_running_loop()
        self._audio_in = Handoff(loop, self.inbound.on_handoff)
        t = self.transport
        self.inbound.start(loop, self.taps)
        self.outbound.start(self.taps, self.config.bridge.prebuffer_ms)
        watchdog: asyncio.Task[None] | None = None
        try:
            if await self._join():
                self.joined = True
                self._fire(CallEvent.JOINED)
                self.roster.bot_id = t.bot_participant_id
                if not getattr(t, "call_starts_at_join", False):
                    self._began_at = time.monotonic()
                self.call.started()
                watchdog = asyncio.create_task(self._watchdog())
                watchdog.add_done_callback(self._watchdog_done)
                await self._stop.wait()
        finally:
            if watchdog is not None:
                watchdog.cancel()
            self.inbound.stop()
            await self._shutdown()
            await self.call.finish(self.summary)
        return self.summary

    def _watchdog_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("bridge timer failed: %r", exc, exc_info=exc)
            self.stop("internal error", AgentError(f"internal error in the bridge: {exc!r}"))

    async def _join(self) -> bool:
        """Join, unless the call is stopped first (Ctrl-C while joining cancels the join)."""
        join = asyncio.create_task(self.transport.join(self))
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({join, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not join.done():
            join.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await join
            return False
        try:
            join.result()
        except BotrunError as exc:
            self.stop("join failed", exc)
            return False
        return not self._stop.is_set()

    async def _shutdown(self) -> None:
        graceful = self.summary.error is None and not self.summary.interrupted

        async def end_session() -> None:
            # session.ended gets what the budget leaves after the socket's own closing
            # handshake (client close_timeout 1 s): the client then closes the socket well
            # within the budget instead of being cancelled half-way (issue 15 bug 4).
            self._begin_close(timeout=max(0.1, _SHUTDOWN_BUDGET_S - 1.3))
            while self._closes:
                await asyncio.gather(*self._closes, return_exceptions=True)

        async def leave() -> None:
            if self.pacer is not None:
                # A normal end lets the bot finish its sentence (bounded); Ctrl-C does not.
                await asyncio.to_thread(self.pacer.close, graceful, 1.0 if graceful else 0.2)
            await self.transport.leave()

        results = await asyncio.gather(
            asyncio.wait_for(end_session(), _SHUTDOWN_BUDGET_S),
            asyncio.wait_for(leave(), _SHUTDOWN_BUDGET_S),
            return_exceptions=True,
        )
        for what, res in zip(("agent session end", "leave"), results, strict=True):
            if isinstance(res, BaseException):
                log.warning("%s did not complete cleanly: %s", what, _describe(res))
        await asyncio.sleep(0)  # first-audio callbacks the pacer scheduled before it stopped
        self.reporter.settle(self.pacer)
        if self.transcript:
            await asyncio.to_thread(self.transcript.close)  # every line on disk


def _describe(exc: BaseException | None) -> str:
    """One line naming a failure; a bare TimeoutError says which budget ran out."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"not done within {_SHUTDOWN_BUDGET_S:g} s (timed out)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_call(
    transport: Transport,
    config: BotConfig,
    *,
    api_key: str | None = None,
    transcript: Path | None = None,
    tools: ToolRegistry | None = None,
    observers: Iterable[Observer] = (),
    hooks: HookSet | None = None,
) -> CallSummary:
    """Run one call to its end (meeting over, :meth:`Bridge.stop`, timeout or fatal error).
    Prints nothing and installs no signal handlers: the runner (bots/runner.py) attaches
    the console and turns SIGINT/SIGTERM into ``stop()``."""
    bridge = Bridge(
        transport,
        config,
        api_key=api_key,
        tools=tools,
        observers=observers,
        transcript=transcript,
        hooks=hooks,
    )
    summary = await bridge.run()
    log.info("call ended: %s", summary.reason or "done")
    return summary
