"""The session state machine, driven with plain lists of events (no sockets)."""

from __future__ import annotations

import pytest

from botrun.core.errors import UsageError
from botrun.core.protocol import (
    ReplyAudio,
    ReplyCreate,
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
)
from botrun.core.session import SessionState

CONFIG = {"system_prompt": "p", "greeting": "Hello", "output": {"voice": "ivy"}}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def feed(state: SessionState, events: list[object]) -> list[object]:
    out: list[object] = []
    for ev in events:
        out += state.receive(ev)
    return out


def ready_state(clock: Clock | None = None, **kw: object) -> SessionState:
    s = SessionState(dict(CONFIG), clock=clock or Clock(), **kw)  # type: ignore[arg-type]
    assert s.connection_opened() == SessionUpdate(CONFIG)
    assert not s.can_send_audio
    assert feed(s, [SessionReady("s1")]) == []
    return s


def test_audio_only_after_ready() -> None:
    s = SessionState(CONFIG)
    assert not s.can_send_audio
    s.connection_opened()
    assert not s.can_send_audio
    s.receive(SessionReady("s1"))
    assert s.can_send_audio and s.session_id == "s1" and s.ready_kind == "first"
    s.connection_lost()
    assert not s.can_send_audio


def test_resume_within_window_then_fresh_after() -> None:
    clock = Clock()
    s = ready_state(clock)
    s.connection_lost()
    clock.t += 29.0
    assert s.connection_opened() == SessionResume("s1")
    s.connection_lost()
    clock.t += 2.0  # 31 s since the first loss: the window is measured from it
    first = s.connection_opened()
    assert isinstance(first, SessionUpdate)
    assert "greeting" not in first.session  # no second greeting in the same call
    assert first.session["system_prompt"] == "p"


def test_regreet_option_keeps_greeting() -> None:
    s = ready_state(regreet=True)
    s.forget_session()
    first = s.connection_opened()
    assert isinstance(first, SessionUpdate) and first.session["greeting"] == "Hello"


def test_resumed_ready_kind_and_new_session_kind() -> None:
    s = ready_state()
    s.connection_lost()
    s.connection_opened()
    s.receive(SessionReady("s1"))
    assert s.ready_kind == "resumed"
    s.connection_lost()
    s.forget_session()
    assert isinstance(s.connection_opened(), SessionUpdate)
    s.receive(SessionReady("s2"))
    assert s.ready_kind == "new" and s.session_id == "s2" and s.previous_session_id == "s1"


def test_tool_result_held_until_reply_done() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("c1", "lookup", {})])
    assert s.add_tool_result("c1", '"ok"') == []
    assert s.held_results == ["c1"]
    assert feed(s, [ReplyDone("r1")]) == [ToolResult("c1", '"ok"')]
    assert s.pending_tool_calls == []


def test_tool_result_after_reply_done_goes_at_once() -> None:
    s = ready_state()
    assert feed(s, [ReplyStarted("r1"), ToolCall("c1", "f", {}), ReplyDone("r1")]) == []
    assert s.add_tool_result("c1", "1") == [ToolResult("c1", "1")]


def test_several_results_released_together_and_other_replies_untouched() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {}), ToolCall("b", "g", {})])
    s.add_tool_result("b", "2")
    s.add_tool_result("a", "1")
    assert feed(s, [ReplyDone("r1", "completed")]) == [ToolResult("a", "1"), ToolResult("b", "2")]


def test_interrupted_reply_discards_results_even_late_ones() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {}), ToolCall("b", "f", {})])
    s.add_tool_result("a", "1")
    assert feed(s, [ReplyDone("r1", "interrupted")]) == []
    assert s.add_tool_result("b", "2") == []  # finished after the interruption
    assert s.discarded_results == 2 and s.pending_tool_calls == []


def test_results_resent_after_resume() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {}), ToolCall("b", "f", {})])
    s.add_tool_result("a", "1")
    s.connection_lost()  # reply r1 is lost with the socket: no reply.done will come
    assert not s.reply_active
    assert s.add_tool_result("b", "2") == []  # not ready: held
    assert s.connection_opened() == SessionResume("s1")
    assert feed(s, [SessionReady("s1")]) == [ToolResult("a", "1"), ToolResult("b", "2")]


def test_result_finishing_after_resume_goes_at_once() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {})])
    s.connection_lost()
    s.connection_opened()
    assert feed(s, [SessionReady("s1")]) == []
    assert s.add_tool_result("a", "1") == [ToolResult("a", "1")]


def test_fresh_session_drops_old_calls() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {})])
    s.add_tool_result("a", "1")
    s.connection_lost()
    s.forget_session()
    s.connection_opened()
    assert feed(s, [SessionReady("s2")]) == []
    assert s.discarded_results == 1


def test_ready_with_a_different_id_is_a_new_session() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ToolCall("a", "f", {})])
    s.add_tool_result("a", "1")
    s.connection_lost()
    assert s.connection_opened() == SessionResume("s1")
    assert feed(s, [SessionReady("other")]) == []
    assert s.ready_kind == "new" and s.pending_tool_calls == []


def test_stale_audio_dropped_until_next_reply_started() -> None:
    s = ready_state()
    s.receive(ReplyStarted("r1"))
    assert s.accept_audio(ReplyAudio(b"\0\0", "r1"))
    feed(s, [TranscriptAgent("r1", "Hel", interrupted=True)])
    assert not s.accept_audio(ReplyAudio(b"\0\0", "r1"))
    feed(s, [ReplyDone("r1", "interrupted")])
    assert not s.accept_audio(ReplyAudio(b"\0\0"))  # no id on the wire: still stale
    assert s.stale_audio_chunks == 2
    s.receive(ReplyStarted("r2"))
    assert s.accept_audio(ReplyAudio(b"\0\0", "r2"))


def test_late_interruption_of_an_older_reply_keeps_the_current_one() -> None:
    s = ready_state()
    feed(s, [ReplyStarted("r1"), ReplyStarted("r2"), ReplyDone("r1", "interrupted")])
    assert s.accept_audio(ReplyAudio(b"\0\0"))
    assert s.accept_audio(ReplyAudio(b"\0\0", "r2"))
    assert not s.accept_audio(ReplyAudio(b"\0\0", "r1"))
    assert s.reply_id == "r2"


def play(s: SessionState, events: list[object]) -> list[bool]:
    """Feed events in order; for each ReplyAudio, whether the session says to play it."""
    answers = []
    for ev in events:
        if isinstance(ev, ReplyAudio):
            answers.append(s.accept_audio(ev))
        else:
            s.receive(ev)
    return answers


AUDIO = ReplyAudio(b"\0\0")


@pytest.mark.parametrize("status", ["completed", "interrupted"])
def test_audio_after_reply_done_is_dropped_until_the_next_reply(status: str) -> None:
    # issue 15 bug 5: audio after reply.done (any status) used to be played
    s = ready_state()
    events = [ReplyStarted("r1"), AUDIO, ReplyDone("r1", status), AUDIO, AUDIO]
    assert play(s, events) == [True, False, False]
    assert not s.reply_active
    assert play(s, [ReplyStarted("r2"), AUDIO]) == [True]
    assert s.late_audio_chunks + s.stale_audio_chunks == 2
    if status == "completed":
        assert s.late_audio_chunks == 2


def test_late_audio_tagged_with_a_finished_reply_is_dropped_during_the_next() -> None:
    s = ready_state()
    events = [ReplyStarted("r1"), ReplyDone("r1"), ReplyStarted("r2")]
    late, current = ReplyAudio(b"\0\0", "r1"), ReplyAudio(b"\0\0", "r2")
    assert play(s, [*events, late, current]) == [False, True]
    assert s.late_audio_chunks == 1


def test_audio_before_the_first_reply_started_is_a_greeting() -> None:
    s = ready_state()
    assert play(s, [AUDIO, AUDIO, ReplyStarted("r1"), AUDIO]) == [True, True, True]
    # a fresh session may greet again without reply.started
    feed(s, [ReplyDone("r1")])
    s.connection_lost()
    s.forget_session()
    s.connection_opened()
    assert play(s, [SessionReady("s2"), AUDIO]) == [True]


def test_speech_started_mutes_the_rest_of_the_reply() -> None:
    s = ready_state()
    events = [ReplyStarted("r1"), AUDIO, SpeechStarted(), AUDIO, ReplyDone("r1", "interrupted")]
    assert play(s, [*events, AUDIO, ReplyStarted("r2"), AUDIO]) == [True, False, False, True]
    assert s.stale_audio_chunks == 2
    assert s.muted_reply_id == "r1"  # the answer the client passes on as ReplyMuted
    feed(s, [ReplyDone("r2"), SpeechStarted()])  # no reply under way: nothing cut
    assert s.muted_reply_id is None


def test_speech_started_without_interrupt_response_keeps_the_reply() -> None:
    cfg = {**CONFIG, "input": {"turn_detection": {"interrupt_response": False}}}
    s = SessionState(cfg)
    s.connection_opened()
    events = [SessionReady("s1"), ReplyStarted("r1"), SpeechStarted(), AUDIO]
    assert play(s, events) == [True]


def test_an_abandoned_reply_is_over_and_its_audio_late() -> None:
    s = ready_state()
    assert play(s, [ReplyStarted("r1"), AUDIO]) == [True]
    s.abandon_reply()
    assert not s.reply_active
    assert play(s, [ReplyAudio(b"\0\0", "r1"), AUDIO, ReplyStarted("r2"), AUDIO]) == [
        False,
        False,
        True,
    ]


def test_reply_active_tracks_reply() -> None:
    s = ready_state()
    assert not s.reply_active
    s.receive(ReplyStarted("r1"))
    assert s.reply_active and s.reply_id == "r1"
    s.receive(ReplyDone("r1", "interrupted"))
    assert not s.reply_active


def test_turn_timing_first_audio_latency() -> None:
    clock = Clock()
    s = ready_state(clock)
    s.receive(ReplyStarted("greeting"))
    s.accept_audio(ReplyAudio(b"\0\0"))
    assert s.first_audio_latency is None  # the greeting is not a turn
    feed(s, [ReplyDone("greeting"), SpeechStarted(1.0), SpeechStopped(2.0)])
    stopped = clock.t
    clock.t += 0.25
    s.receive(SpeechStopped(2.1))  # a second stop does not move the mark
    assert s.speech_stopped_at == stopped
    clock.t += 0.5
    s.receive(ReplyStarted("r1"))
    s.accept_audio(ReplyAudio(b"\0\0"))
    clock.t += 1.0
    s.accept_audio(ReplyAudio(b"\0\0"))
    assert s.first_audio_latency == pytest.approx(0.75)
    s.receive(SpeechStarted(5.0))
    assert s.speech_stopped_at is None and s.first_audio_latency is None


def test_update_session_sent_when_ready_and_kept_for_resume() -> None:
    s = ready_state()
    assert s.update_session({"system_prompt": "new"}) == [SessionUpdate({"system_prompt": "new"})]
    s.connection_lost()
    assert s.update_session({"input": {"keyterms": ["x"]}}) == []
    assert s.connection_opened() == SessionResume("s1")
    assert feed(s, [SessionReady("s1")]) == [SessionUpdate({"input": {"keyterms": ["x"]}})]
    # a fresh session starts from the full, updated config
    s.connection_lost()
    s.forget_session()
    first = s.connection_opened()
    assert isinstance(first, SessionUpdate)
    assert first.session["system_prompt"] == "new"
    assert first.session["input"] == {"keyterms": ["x"]}
    assert feed(s, [SessionReady("s2")]) == []


def test_update_before_first_ready_is_sent_after_it() -> None:
    s = SessionState(dict(CONFIG))
    s.connection_opened()
    assert s.update_session({"system_prompt": "late"}) == []
    assert feed(s, [SessionReady("s1")]) == [SessionUpdate({"system_prompt": "late"})]


@pytest.mark.parametrize(
    "change",
    [
        {"greeting": "Bye"},
        {"output": {"voice": "james"}},
        {"output": {"format": {"encoding": "audio/pcmu"}}},
    ],
)
def test_immutable_fields_refused_locally(change: dict) -> None:
    s = ready_state()
    with pytest.raises(UsageError, match="immutable"):
        s.update_session(change)
    assert s.config == CONFIG


def test_immutable_field_with_same_value_and_mutable_output_are_fine() -> None:
    s = ready_state()
    assert s.update_session({"output": {"voice": "ivy", "volume": 50}}) == [
        SessionUpdate({"output": {"voice": "ivy", "volume": 50}})
    ]


def test_immutable_fields_free_before_first_ready() -> None:
    s = SessionState(dict(CONFIG))
    s.update_session({"greeting": "Howdy"})
    first = s.connection_opened()
    assert isinstance(first, SessionUpdate) and first.session["greeting"] == "Howdy"


def test_session_ended_and_unknown_things_are_noops() -> None:
    s = ready_state()
    assert feed(s, [SessionEnded(1.0, 1.0), object(), ReplyCreate()]) == []
    assert s.ended
