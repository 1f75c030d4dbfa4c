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


# -- the outgoing side: what we send passes SessionState.send (issue 15 redesign) -----------


def ready_session(sid: str = "s1") -> SessionState:
    state = SessionState(CONFIG)
    state.send(state.connection_opened())
    feed(state, [SessionReady(sid)])
    return state


def test_first_message_must_open_the_socket_and_nothing_goes_before_ready() -> None:
    from botrun.core.protocol import InputAudio, SessionEnd
    from botrun.core.session import SessionProtocolError

    state = SessionState(CONFIG)
    with pytest.raises(SessionProtocolError, match="not connected"):
        state.send(InputAudio(b"\0\0"))
    first = state.connection_opened()
    with pytest.raises(SessionProtocolError, match="first message"):
        state.send(ReplyCreate())
    assert state.send(first)
    for too_early in (InputAudio(b"\0\0"), ReplyCreate(), SessionUpdate({"x": 1})):
        with pytest.raises(SessionProtocolError, match=r"before session\.ready"):
            state.send(too_early)
    feed(state, [SessionReady("s1")])
    assert state.send(InputAudio(b"\0\0")) and state.send(SessionUpdate({"x": 1}))
    with pytest.raises(SessionProtocolError, match="first message"):
        state.send(SessionResume("s1"))
    assert state.send(SessionEnd())
    with pytest.raises(SessionProtocolError, match=r"session\.end was"):
        state.send(InputAudio(b"\0\0"))


def test_a_result_queued_for_a_replaced_session_is_refused_and_counted() -> None:
    state = ready_session()
    out = feed(state, [ReplyStarted("r1"), ToolCall("c1", "lookup", {}), ReplyDone("r1")])
    assert out == []
    (result,) = state.add_tool_result("c1", "{}")  # due: queued to send
    state.connection_lost()
    state.send(state.connection_opened())  # session.resume s1
    feed(state, [SessionReady("s2")])  # the service started a new session instead
    assert state.ready_kind == "new"
    assert state.send(result) is False and state.discarded_results == 1


def test_a_result_whose_socket_closed_under_it_is_sent_again_after_resume() -> None:
    state = ready_session()
    feed(state, [ReplyStarted("r1"), ToolCall("c1", "lookup", {}), ReplyDone("r1")])
    (result,) = state.add_tool_result("c1", "{}")
    assert state.send(result)
    state.unsent(result)  # ConnectionClosed in the write
    state.connection_lost()
    first = state.connection_opened()
    assert isinstance(first, SessionResume) and state.send(first)
    feed(state, [SessionReady("s1")])
    assert state.ready_kind == "resumed" and state.send(result) is True
    assert state.send(result) is False  # once only


def test_session_ended_means_a_fresh_session_next() -> None:
    state = ready_session()
    feed(state, [SessionEnded()])
    assert state.classify_close(1000) == "fresh"
    state.connection_lost()
    first = state.connection_opened()
    assert isinstance(first, SessionUpdate) and "greeting" not in first.session
    assert state.previous_session_id == "s1"


def test_close_codes_and_errors_are_classified_in_the_session() -> None:
    from botrun.core.protocol import SessionError

    state = SessionState(CONFIG)
    state.connection_opened()
    assert state.classify_close(1006) == "transient"
    assert state.classify_close(1011) == "transient"
    assert state.classify_close(1000, "", sent=1009) == "oversized"
    assert state.classify_close(1008, "UNAUTHORIZED: bad key") == "auth"
    assert state.classify_close(1008, "server_error") == "transient"
    assert state.classify_close(1008) == "refused"  # no session yet: it is us
    assert state.classify_error(SessionError("invalid_config", "bad")) == "refused"
    feed(state, [SessionReady("s1")])
    assert state.classify_close(1008) == "fresh"  # our session: start afresh
    assert state.classify_close(1008, "session_expired") == "fresh"
    assert state.classify_error(SessionError("FORBIDDEN", "no")) == "auth"
    assert state.classify_error(SessionError("rate_limited", "slow")) == "transient"
    assert state.classify_error(SessionError("session_not_found", "")) == "fresh"
    assert state.classify_error(SessionError("invalid_config", "late")) is None  # reported only
    state.connection_lost()
    assert isinstance(state.connection_opened(), SessionResume)
    assert state.classify_error(SessionError("invalid_value", "no resume")) == "fresh"


def test_untagged_reply_audio_belongs_to_the_reply_in_progress() -> None:
    state = ready_session()
    greeting = state.audio_to_play(ReplyAudio(b"\0\0"))
    assert greeting is not None and greeting.reply_id is None  # before any reply.started
    feed(state, [ReplyStarted("r1")])
    tagged = state.audio_to_play(ReplyAudio(b"\0\0"))
    assert tagged is not None and tagged.reply_id == "r1"
    feed(state, [ReplyDone("r1")])
    assert state.audio_to_play(ReplyAudio(b"\0\0")) is None and state.late_audio_chunks == 1


def test_the_conversation_is_refused_before_ready_and_after_ended() -> None:
    """The remote side of the machine: events the protocol forbids where they come are
    refused and counted, never acted on (bad input from the network is survived)."""
    from botrun.core.protocol import SessionError

    state = SessionState(CONFIG)
    state.send(state.connection_opened())
    early = [ReplyStarted("r0"), ReplyAudio(b"\0\0", "r0"), ToolCall("c0", "x", {})]
    assert [state.admit(e) for e in early] == [False, False, False]
    assert state.admit(SessionError("server_error", "")) and state.admit(SessionReady("s1"))
    feed(state, [SessionReady("s1")])
    assert state.admit(ReplyStarted("r1")) and state.admit(SpeechStarted())
    feed(state, [SessionEnded()])
    assert not state.admit(ReplyAudio(b"\0\0", "r1"))
    assert state.refused_events == 4


# -- the named states: three machines, one table each (h11's roles) ------------------------


def states(state: SessionState) -> tuple[str, str, str]:
    return state.ours.value, state.theirs.value, state.reply.value


def drive(state: SessionState, steps: list[object]) -> list[tuple[str, str, str]]:
    """Feed a plain list: server events (received), ``("send", event)``, and the strings
    "opened", "lost", "abandon"; the three states after each."""
    seen = []
    for step in steps:
        if step == "opened":
            state.connection_opened()
        elif step == "lost":
            state.connection_lost()
        elif step == "abandon":
            state.abandon_reply()
        elif isinstance(step, tuple):
            state.send(step[1])
        else:
            state.receive(step)
        seen.append(states(state))
    return seen


def test_a_socket_from_open_to_ended_and_the_next_one() -> None:
    from botrun.core.protocol import InputAudio, SessionEnd

    state = SessionState(CONFIG)
    assert states(state) == ("closed", "setting up", "free")
    seen = drive(
        state,
        [
            "opened",
            ("send", SessionUpdate(CONFIG)),
            SessionReady("s1"),
            ("send", InputAudio(b"\0\0")),
            SessionEnded(),
            "lost",
            "opened",
            ("send", SessionUpdate(CONFIG)),
            SessionReady("s2"),
            ("send", SessionEnd()),
            "lost",
        ],
    )
    assert [(o, t) for o, t, _ in seen] == [
        ("must open", "setting up"),
        ("open", "setting up"),
        ("open", "ready"),
        ("open", "ready"),
        ("open", "ended"),  # still ready (the socket is open), a fresh session next
        ("closed", "gone"),
        ("must open", "setting up"),
        ("open", "setting up"),
        ("open", "ready"),
        ("ending", "ready"),
        ("closed", "setting up"),
    ]


def test_reply_states_through_barge_ins_and_a_lost_socket() -> None:
    state = ready_session()
    steps: list[object] = [
        ReplyStarted("r1"),
        SpeechStarted(),  # barge-in with interrupt_response (the default)
        ReplyDone("r1", status="interrupted"),
        "lost",
        "opened",
        SessionReady("s1"),
        ReplyStarted("r2"),
        ReplyDone("r2"),
        TranscriptAgent("r2", "late", interrupted=True),  # an interruption notice after done
        ReplyStarted("r3"),
        "lost",
        "abandon",
    ]
    assert [r for _, _, r in drive(state, steps)] == [
        "playing",
        "muted",
        "done, muted",
        "done",
        "done",
        "done",
        "playing",
        "done",
        "done, muted",
        "playing",
        "free",  # the reply was lost with its socket
        "done",
    ]


def test_what_reply_audio_means_in_each_reply_state() -> None:
    """Stale in the muted states, late in done, played in free and playing."""
    from botrun.core.session import Reply

    for steps, reply, plays in [
        ([], Reply.FREE, True),
        ([ReplyStarted("r1")], Reply.PLAYING, True),
        ([ReplyStarted("r1"), SpeechStarted()], Reply.MUTED, False),
        ([ReplyStarted("r1"), ReplyDone("r1")], Reply.DONE, False),
        ([ReplyStarted("r1"), ReplyDone("r1", status="interrupted")], Reply.DONE_MUTED, False),
    ]:
        state = ready_session()
        feed(state, steps)
        assert state.reply is reply
        assert (state.audio_to_play(ReplyAudio(b"\0\0")) is not None) is plays, reply
        stale, late = state.stale_audio_chunks, state.late_audio_chunks
        assert (stale, late) == {
            Reply.MUTED: (1, 0),
            Reply.DONE_MUTED: (1, 0),
            Reply.DONE: (0, 1),
        }.get(reply, (0, 0))


def test_the_network_side_tables_have_a_row_for_every_state_and_step() -> None:
    """What the service sends can never find a state without a row (it is survived,
    never raised); our side's missing rows are exactly what send() refuses."""
    from botrun.core.session import (
        OUR_TRANSITIONS,
        REPLY_TRANSITIONS,
        THEIR_TRANSITIONS,
        Ours,
        Reply,
        Step,
        Theirs,
    )

    for theirs in Theirs:
        for step in (Step.OPENED, Step.READY, Step.ENDED, Step.LOST):
            assert (theirs, step) in THEIR_TRANSITIONS
    reply_steps = {Step.STARTED, Step.INTERRUPTED, Step.DONE, Step.ABANDONED, Step.LOST}
    for reply in Reply:
        for step in reply_steps | {Step.FORGOTTEN}:
            assert (reply, step) in REPLY_TRANSITIONS
    sendable = {(frm, step) for (frm, step) in OUR_TRANSITIONS if step.name.startswith("SENT")}
    assert sendable == {(Ours.MUST_OPEN, Step.SENT_FIRST), (Ours.OPEN, Step.SENT_END)}


def test_the_architecture_doc_shows_the_session_tables() -> None:
    from pathlib import Path

    from botrun.core.session import (
        OUR_TRANSITIONS,
        REPLY_TRANSITIONS,
        THEIR_TRANSITIONS,
    )

    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    for table in (OUR_TRANSITIONS, THEIR_TRANSITIONS, REPLY_TRANSITIONS):
        for (frm, step), to in table.items():
            row = f"| {frm.value} | `{step.value}` | {to.value} |"
            assert row in doc, f"docs/architecture.md lacks the row {row}"
