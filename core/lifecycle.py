"""The call's lifecycle: a small state machine with no I/O (in the manner of ``h11``).

The bridge feeds it what happened and performs the action it returns; every transition of a
call is one row of :data:`TRANSITIONS`, so the lifecycle is testable with plain lists of
events. An event that has no row for the current state is a bug in the caller and raises
:class:`LifecycleError` (nothing is silently ignored: the no-op rows are explicit)::

    JOINING --joined--> WAITING --person_joined--> IN_SESSION --room_quiet--> CLOSING
    CLOSING --session_closed--> WAITING --idle_timeout--> CLOSED
    CLOSING --person_joined--> IN_SESSION   (a fresh agent session; the old one closes aside)
    any state but CLOSED --stop--> CLOSED

``person_joined`` during ``JOINING`` opens the session at once: a transport may report the
people already in the room before its ``join()`` returns.
"""

from __future__ import annotations

from enum import Enum


class CallState(Enum):
    JOINING = "joining"  # the transport is joining the meeting
    WAITING = "waiting"  # in the meeting, no agent session: waiting for people
    IN_SESSION = "in session"  # an agent session is open (or opening)
    CLOSING = "closing"  # the room emptied and the agent went quiet: the session is closing
    CLOSED = "closed"  # the call is over (shutting down)


class CallEvent(Enum):
    JOINED = "joined"  # transport.join() returned
    PERSON_JOINED = "person_joined"  # a human (caller, participant) is in the room
    ROOM_QUIET = "room_quiet"  # nobody left and the agent quiet (or overdue): close it
    SESSION_CLOSED = "session_closed"  # the session being closed is closed
    IDLE_TIMEOUT = "idle_timeout"  # nobody for idle_timeout_s
    STOP = "stop"  # the call ends (meeting over, signal, fatal error, max duration)


class Action(Enum):
    NONE = "none"
    OPEN_SESSION = "open_session"
    CLOSE_SESSION = "close_session"
    END_CALL = "end_call"


class LifecycleError(RuntimeError):
    """An event the current state has no transition for (a bug in the caller)."""


S, E, A = CallState, CallEvent, Action

#: (state, event) -> (next state, action for the bridge)
TRANSITIONS: dict[tuple[CallState, CallEvent], tuple[CallState, Action]] = {
    (S.JOINING, E.JOINED): (S.WAITING, A.NONE),
    (S.JOINING, E.PERSON_JOINED): (S.IN_SESSION, A.OPEN_SESSION),
    (S.JOINING, E.STOP): (S.CLOSED, A.END_CALL),
    (S.WAITING, E.PERSON_JOINED): (S.IN_SESSION, A.OPEN_SESSION),
    (S.WAITING, E.IDLE_TIMEOUT): (S.CLOSED, A.END_CALL),
    (S.WAITING, E.STOP): (S.CLOSED, A.END_CALL),
    (S.IN_SESSION, E.JOINED): (S.IN_SESSION, A.NONE),  # people were there before join() returned
    (S.IN_SESSION, E.PERSON_JOINED): (S.IN_SESSION, A.NONE),
    (S.IN_SESSION, E.ROOM_QUIET): (S.CLOSING, A.CLOSE_SESSION),
    (S.IN_SESSION, E.STOP): (S.CLOSED, A.END_CALL),
    (S.CLOSING, E.SESSION_CLOSED): (S.WAITING, A.NONE),
    (S.CLOSING, E.PERSON_JOINED): (S.IN_SESSION, A.OPEN_SESSION),
    (S.CLOSING, E.STOP): (S.CLOSED, A.END_CALL),
    (S.CLOSED, E.PERSON_JOINED): (S.CLOSED, A.NONE),  # a join during shutdown: too late
    (S.CLOSED, E.SESSION_CLOSED): (S.CLOSED, A.NONE),
    (S.CLOSED, E.STOP): (S.CLOSED, A.NONE),
}


class CallLifecycle:
    """Where the call is; :meth:`handle` moves it and says what the bridge must do."""

    def __init__(self) -> None:
        self.state = CallState.JOINING
        #: Every transition taken, as (from, event, to), for logs and tests.
        self.history: list[tuple[CallState, CallEvent, CallState]] = []

    def handle(self, event: CallEvent) -> Action:
        try:
            nxt, action = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LifecycleError(
                f"call lifecycle: no transition for {event.value!r} in state {self.state.value!r}"
            ) from None
        self.history.append((self.state, event, nxt))
        self.state = nxt
        return action

    def run(self, events: list[CallEvent]) -> list[Action]:
        """Feed several events; the actions in order (for tests and replay)."""
        return [self.handle(e) for e in events]
