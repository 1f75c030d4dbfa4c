"""The call lifecycle (core/lifecycle.py) as lists of events, and through the real bridge."""

from __future__ import annotations

import pytest

from botrun.core.lifecycle import (
    TRANSITIONS,
    Action,
    CallEvent,
    CallLifecycle,
    CallState,
    LifecycleError,
)

E, S, A = CallEvent, CallState, Action


def run(events: list[CallEvent]) -> tuple[list[Action], CallLifecycle]:
    lc = CallLifecycle()
    return lc.run(events), lc


def test_a_whole_call() -> None:
    events = [E.JOINED, E.PERSON_JOINED, E.PERSON_JOINED, E.ROOM_QUIET, E.SESSION_CLOSED]
    actions, lc = run([*events, E.IDLE_TIMEOUT])
    assert actions == [A.NONE, A.OPEN_SESSION, A.NONE, A.CLOSE_SESSION, A.NONE, A.END_CALL]
    assert [to for _, _, to in lc.history] == [
        S.WAITING,
        S.IN_SESSION,
        S.IN_SESSION,
        S.CLOSING,
        S.WAITING,
        S.CLOSED,
    ]


def test_a_join_while_closing_opens_a_new_session() -> None:
    # issue 15 bug 1: the join used to be ignored while the session closed
    actions, lc = run([E.JOINED, E.PERSON_JOINED, E.ROOM_QUIET, E.PERSON_JOINED])
    assert actions[-1] is A.OPEN_SESSION
    assert lc.state is S.IN_SESSION
    # and that session closes in its turn like any other
    assert lc.run([E.ROOM_QUIET, E.SESSION_CLOSED]) == [A.CLOSE_SESSION, A.NONE]
    assert lc.state is S.WAITING


def test_people_reported_before_join_returns() -> None:
    actions, lc = run([E.PERSON_JOINED, E.JOINED])
    assert actions == [A.OPEN_SESSION, A.NONE]
    assert lc.state is S.IN_SESSION


@pytest.mark.parametrize("state", [S.JOINING, S.WAITING, S.IN_SESSION, S.CLOSING])
def test_stop_ends_the_call_from_any_live_state(state: CallState) -> None:
    lc = CallLifecycle()
    lc.state = state
    assert lc.handle(E.STOP) is A.END_CALL
    assert lc.state is S.CLOSED
    # late news after the end changes nothing
    assert lc.run([E.PERSON_JOINED, E.SESSION_CLOSED, E.STOP]) == [A.NONE] * 3
    assert lc.state is S.CLOSED


@pytest.mark.parametrize(
    "events",
    [
        [E.ROOM_QUIET],  # nothing to close while joining
        [E.JOINED, E.JOINED],
        [E.JOINED, E.SESSION_CLOSED],  # no session was closing
        [E.JOINED, E.PERSON_JOINED, E.IDLE_TIMEOUT],  # people are there
        [E.JOINED, E.PERSON_JOINED, E.ROOM_QUIET, E.ROOM_QUIET],
        [E.JOINED, E.STOP, E.JOINED],
    ],
)
def test_an_event_with_no_transition_is_an_error(events: list[CallEvent]) -> None:
    lc = CallLifecycle()
    with pytest.raises(LifecycleError, match="no transition"):
        lc.run(events)


def test_every_state_but_joining_is_reachable_and_closed_is_final() -> None:
    reached = {to for to, _ in TRANSITIONS.values()}
    assert reached == set(CallState) - {S.JOINING}
    assert all(to is S.CLOSED for (frm, _), (to, _) in TRANSITIONS.items() if frm is S.CLOSED)


def test_the_architecture_doc_shows_this_table() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "architecture.md").read_text()
    for (state, event), (nxt, action) in TRANSITIONS.items():
        act = "—" if action is A.NONE else action.value.replace("_", " ")
        row = f"| {state.value} | `{event.value}` | {nxt.value} | {act} |"
        assert row in doc, f"docs/architecture.md lacks the row {row}"
