"""The turn reporter (core/reporting.py) on its own, driven with plain calls as the bridge
drives it: which events each turn produces and what the end-of-call figures count."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from botrun.core import events as ev
from botrun.core.metrics import CallMetrics
from botrun.core.participants import Roster
from botrun.core.reporting import TurnReporter


def reporter(**transport: Any) -> tuple[TurnReporter, list[ev.BridgeEvent]]:
    got: list[ev.BridgeEvent] = []
    roster = Roster("mix")
    roster.join("ann", "Ann")
    r = TurnReporter(SimpleNamespace(**transport), roster, CallMetrics(), got.append)
    return r, got


def pacer(written_ms: float, in_sink_ms: float = 0.0) -> Any:
    """What the reporter reads of a pacer: the audio handed to the transport so far."""
    return SimpleNamespace(stats=SimpleNamespace(written_ms=written_ms), in_sink_ms=in_sink_ms)


def kinds(got: list[ev.BridgeEvent]) -> list[str]:
    return [e.kind for e in got]


def test_a_completed_reply_reports_its_latency_and_its_audio() -> None:
    r, got = reporter()
    r.user_turn(speech_stopped_at=10.0)
    r.reply_started("r1")
    turn = r.reply_turn
    assert turn is not None
    turn.audio_queued, turn.queued_ms, turn.sink_start_ms = True, 800.0, 0.0
    r.first_audio(turn, 10.5)
    r.agent_delta("Hello", 300.0)
    r.agent_delta(" there.", 800.0)
    r.finish_agent_text(interrupted=False)
    r.end_reply("completed")
    assert kinds(got) == [
        "reply.started",
        "transcript.agent",
        "transcript.agent",
        "transcript.agent",
        "reply.done",
        "turn.metrics",
    ]
    assert isinstance(got[0], ev.ReplyStarted) and got[0].latency_ms == 500.0
    assert isinstance(got[3], ev.AgentTranscript) and got[3].final and got[3].text == "Hello there."
    metrics = got[-1]
    assert isinstance(metrics, ev.TurnMetrics)
    assert (metrics.latency_ms, metrics.reply_ms, metrics.interrupted) == (500.0, 800.0, False)
    assert r.metrics.turns == [turn] and r.reply_turn is None
    assert r.played_ms("r1", pacer(written_ms=300.0, in_sink_ms=100.0)) == 200.0


def test_a_barge_in_counts_only_when_speech_cut_it_or_audio_was_flushed() -> None:
    r, got = reporter()
    r.reply_started("r1")
    r.barge_in("reply.done", 0.0)  # the agent said "interrupted" with nothing left to flush
    assert got == [] and r.metrics.barge_ins == 0
    r.barge_in("speech", 120.0)
    assert kinds(got) == ["reply.interrupted"]
    assert r.metrics.barge_ins == 1 and r.metrics.stale_ms_flushed == 120.0
    assert r.reply_turn is not None and r.reply_turn.flushed_ms == 120.0


def test_a_reply_cut_by_the_session_close_counts_at_the_end_only_if_it_was_heard() -> None:
    r, got = reporter()
    r.reply_started("r1")  # never played: not a turn
    r.cut_reply()
    r.reply_started("r2")
    played = r.reply_turn
    assert played is not None
    played.sink_start_ms = 0.0
    r.agent_delta("Goodbye and", None)
    r.cut_reply()
    r.settle(pacer(written_ms=400.0))
    assert r.metrics.turns == [played] and played.interrupted
    assert kinds(got) == ["transcript.agent", "reply.done", "turn.metrics", "transcript.agent"]
    done, last = got[1], got[-1]
    assert isinstance(done, ev.ReplyDone) and done.status == "ended"
    assert isinstance(last, ev.AgentTranscript) and last.interrupted
    assert last.text == "Goodbye and"
    assert r.metrics.spoken_ms == 400.0 and played.reply_ms == 400.0


def test_a_final_user_transcript_names_the_one_listened_participant() -> None:
    r, got = reporter()
    r.user_transcript("hi", {"ann"})  # nobody's turn energy yet: the one listened person
    said = got[-1]
    assert isinstance(said, ev.UserTranscript)
    assert (said.participant_id, said.participant_name) == ("ann", "Ann")
