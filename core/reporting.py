"""Turn reporting: what each of the call's turns cost and said, as the bridge's events.

The bridge (core/bridge.py) drives the agent session and tells a :class:`TurnReporter` what
happened: a user turn ended, a reply started, its words arrived, its first audio reached the
transport, it ended (completed, interrupted, stalled, lost, cut by the session's close), a
barge-in flushed it, a tool call finished. The reporter keeps the turns (core/metrics.py:
:class:`~botrun.core.metrics.Turn`, the call's :class:`~botrun.core.metrics.CallMetrics`)
and emits the events the console, the transcript and the hooks follow (core/events.py):
``reply.started`` with the response latency, ``reply.done`` and ``turn.metrics``, the user's
and the agent's text (an interrupted reply's text trimmed to what the caller heard, where the
transport can tell), ``tool.call``, ``reply.interrupted``. At the end of the call
:meth:`TurnReporter.settle` makes the summary and the transcript agree with what reached the
transport.

It owns no audio and no timing: figures about the bot's voice come from the pacer the
bridge hands in (:meth:`~TurnReporter.played_ms`, :meth:`~TurnReporter.settle`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from .events import BridgeEvent
from .metrics import CallMetrics, Turn

if TYPE_CHECKING:
    from .audio.pacer import OutboundPacer
    from .participants import Roster
    from .transport import Transport

log = logging.getLogger("botrun.bridge.reporting")

_KEPT_REPLIES = 8  # reply id -> turn, for played_ms: the last few replies


class TurnReporter:
    """The turns of one call and their reports. Event loop only."""

    def __init__(
        self,
        transport: Transport,
        roster: Roster,
        metrics: CallMetrics,
        emit: Callable[[BridgeEvent], None],
    ) -> None:
        self._transport = transport  # what it heard: heard_position_ms, heard_between
        self._roster = roster  # who spoke: transcript attribution
        self.metrics = metrics
        self._emit = emit
        self._turn: Turn | None = None  # the user turn the next reply answers
        self.reply_turn: Turn | None = None  # the turn of the reply in flight
        self._reply_turns: dict[str, Turn] = {}  # reply id -> its turn (the last few)
        self._cut_turns: list[Turn] = []  # replies whose session closed under them
        self._agent_partial = ""
        # words of the reply in flight with their place in its audio (transcript.agent.delta
        # start_ms/end_ms): an interrupted reply's text is trimmed to what the caller heard
        # where the transport can tell (Twilio's marks: transport.heard_position_ms)
        self._reply_words: list[tuple[str, float | None]] = []

    # ------------------------------------------------------------------ turns
    def user_turn(self, speech_stopped_at: float) -> None:
        """The user stopped speaking: the next reply answers a new turn."""
        self._turn = Turn(speech_stopped_at=speech_stopped_at, time_scale=self.metrics.time_scale)

    def reply_started(self, reply_id: str) -> None:
        if self.reply_turn is not None:
            # a new reply while the last one is still in flight (its reply.done never came
            # to the bridge): that one is over. Counted, not dropped: replacing it would lose
            # a turn whose first audio, and latency, was already reported (new-user probe 5)
            log.debug("reply %s started before the last reply's reply.done", reply_id)
            self.finish_agent_text(interrupted=True)
            self.end_reply("lost")
        self._agent_partial = ""
        self._reply_words = []
        if self._turn is None or self._turn.audio_queued:
            self._turn = Turn(time_scale=self.metrics.time_scale)
        self.reply_turn = self._turn
        self._reply_turns[reply_id] = self._turn
        while len(self._reply_turns) > _KEPT_REPLIES:
            del self._reply_turns[next(iter(self._reply_turns))]

    def first_audio(self, turn: Turn, t: float) -> None:
        """The reply's first audio reached the transport at monotonic time ``t``."""
        turn.first_audio_at = t
        self._emit(ev.ReplyStarted(self._latency(turn)))

    def reply_muted(self) -> None:
        """The session dropped the rest of the reply in flight (a barge-in)."""
        if self.reply_turn is not None:
            self.reply_turn.interrupted = True

    def end_reply(self, status: str, interrupted: bool = False) -> None:
        """The reply in flight is over (``status``: completed, interrupted, stalled, lost):
        counted and reported. A user turn that began during it stays pending."""
        turn, self.reply_turn = self.reply_turn, None
        if turn is not None:
            turn.interrupted = interrupted or turn.interrupted
            self.metrics.turns.append(turn)
            self._report_turn(turn, status)
        if self._turn is turn:
            self._turn = None

    def cut_reply(self) -> None:
        """The session closes under the reply in flight: it is settled at the end of the
        call (:meth:`settle`), counted if any of its audio was played."""
        if self.reply_turn is not None:
            self._cut_turns.append(self.reply_turn)
            if self._turn is self.reply_turn:
                self._turn = None
        self.reply_turn = None

    def barge_in(self, cause: str, flushed: float) -> None:
        """The bot's voice was cut (``flushed`` ms of it dropped): counted and reported when
        the user spoke or audio was flushed."""
        if cause == "speech" or flushed > 0:
            self.metrics.barge_ins += 1
            self.metrics.stale_ms_flushed += flushed
            if self.reply_turn is not None:
                self.reply_turn.flushed_ms += flushed
            self._emit(ev.ReplyInterrupted(flushed, cause))

    def _report_turn(self, turn: Turn, status: str) -> None:
        """A reply is over: say so, with its figures (bug 6: reply_ms and interrupted)."""
        self._emit(ev.ReplyDone(status))
        self._emit(ev.TurnMetrics(self._latency(turn), turn.sent_ms, turn.interrupted))

    def _latency(self, turn: Turn) -> float | None:
        """The turn's response latency, None where the backend cannot measure it."""
        return None if self.metrics.latency_unmeasured else turn.latency_ms

    def played_ms(self, reply_id: str, pacer: OutboundPacer | None) -> float:
        """How much of reply ``reply_id`` the caller has heard: what the pacer handed the
        transport since the reply's first chunk, less what is still inside the sink, never
        more than the reply's own audio (0 for a reply not yet played). Backends that tell
        the service what was heard (OpenAI's conversation.item.truncate) ask this."""
        turn = self._reply_turns.get(reply_id)
        if turn is None or pacer is None or turn.sink_start_ms is None:
            return 0.0
        written = pacer.stats.written_ms - turn.sink_start_ms - pacer.in_sink_ms
        return max(0.0, min(written, turn.sent_ms))

    # ------------------------------------------------------------------ text
    def user_delta(self, text: str) -> None:
        speaker = self._roster.loudest()
        self._emit(
            ev.UserTranscript(
                text,
                final=False,
                participant_id=speaker.id if speaker else None,
                participant_name=speaker.name if speaker else None,
            )
        )

    def user_transcript(self, text: str, listened: set[str]) -> None:
        """The user's final words, attributed to who spoke most in the turn (else the one
        listened participant)."""
        speaker = self._roster.loudest()
        if speaker is None and len(listened) == 1:
            speaker = self._roster.get(next(iter(listened)))
        pid = speaker.id if speaker else None
        name = speaker.name if speaker else None
        self._emit(ev.UserTranscript(text, final=True, participant_id=pid, participant_name=name))

    def agent_delta(self, delta: str, end_ms: float | None) -> None:
        self._agent_partial += delta
        self._reply_words.append((delta, end_ms))
        self._emit(ev.AgentTranscript(self._agent_partial.strip(), final=False))

    def agent_text(self, text: str, interrupted: bool) -> None:
        self._agent_partial = ""
        text = self._heard_text(text) if interrupted else text
        self._emit(ev.AgentTranscript(text, final=True, interrupted=interrupted))

    def finish_agent_text(self, interrupted: bool) -> None:
        """The words of the reply in flight that no final ``transcript.agent`` covered go to
        the console and the transcript (at ``reply.done``, or marked interrupted when the
        call ends mid-reply)."""
        text, self._agent_partial = self._agent_partial.strip(), ""
        if text and interrupted:
            text = self._heard_text(text)
        if not text:
            return
        self._emit(ev.AgentTranscript(text, final=True, interrupted=interrupted))

    def _heard_text(self, text: str) -> str:
        """An interrupted reply's text, trimmed to the words the caller heard, where the
        transport knows what was heard (``heard_position_ms``: Twilio's marks) and the agent
        sent word timings; else ``text`` as the agent trimmed it (to what it sent)."""
        heard_at = getattr(self._transport, "heard_position_ms", None)
        turn = self.reply_turn
        start = turn.sink_position_ms if turn is not None else None
        words = self._reply_words
        if heard_at is None or start is None or not words or any(t is None for _, t in words):
            return text
        heard_ms = max(0.0, heard_at - start)
        kept = "".join(w for w, end in words if end is not None and end <= heard_ms).strip()
        if kept != text.strip():
            log.debug("agent text trimmed to what was heard (%.0f ms): %r", heard_ms, kept)
        return kept

    def tool_done(self, e: Any) -> None:
        """A tool call finished: report it (console, transcript, observers), its duration in
        the call's time like every figure (the tool ran in wall-clock time: a ``--speed``
        WAV call's participants waited ``time_scale`` times longer)."""
        from .secrets import redact

        self._emit(
            ev.ToolCalled(
                e.call_id,
                e.name,
                e.arguments,
                e.result,
                redact(e.error) if e.error else None,
                e.duration_ms * self.metrics.time_scale,
                e.truncated,
            )
        )

    # ------------------------------------------------------------------ the end
    def settle(self, pacer: OutboundPacer | None) -> None:
        """At the end of the call, make the summary and the transcript agree with what reached
        the transport: the reply in flight counts (interrupted) if its audio was played, its
        words are recorded, and spoken time comes from the pacer, not from what was queued."""
        cut, self._cut_turns = self._cut_turns, []
        if self.reply_turn is not None:
            cut.append(self.reply_turn)
            self.reply_turn = None
        for turn in cut:  # counted if any of its audio was played
            if turn.sink_start_ms is not None and turn not in self.metrics.turns:
                turn.interrupted = True
                self.metrics.turns.append(turn)
                self._report_turn(turn, "ended")
        self.finish_agent_text(interrupted=True)
        if pacer is not None:
            heard_between = getattr(self._transport, "heard_between", None)
            self.metrics.settle(pacer.stats.written_ms, heard_between)
