"""Bridge events: what observers (the console, transcripts, metrics, plugins) receive.

Every event is a frozen dataclass deriving from :class:`BridgeEvent`, which gives each one

* ``kind``: a class-level string (``"participant.joined"``...) for observers that dispatch
  on a string (logs, JSON exporters); the module constants below name them;
* ``time``: the wall-clock time (``time.time()``) the bridge emitted it.

Dispatch with ``match``/``isinstance`` on the classes, or on ``event.kind``. For observers
written against the old ``kind`` + dict shape, :attr:`BridgeEvent.data` returns the fields
(all but ``time``) as a dict; the field names are the new ones (``participant_id``, not
``id``), and the barge-in kind is now ``"reply.interrupted"`` (:data:`BARGE_IN` follows it).
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class BridgeEvent:
    """The base of every bridge event."""

    kind: ClassVar[str] = "event"
    time: float = field(default_factory=_time.time, kw_only=True)

    @property
    def data(self) -> dict[str, Any]:
        """The event's fields but ``time``, as a dict (for observers that want one)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "time"}


@dataclass(frozen=True)
class ParticipantJoined(BridgeEvent):
    """A human joined the meeting (the bot itself is never reported)."""

    kind: ClassVar[str] = "participant.joined"
    participant_id: str
    name: str | None = None


@dataclass(frozen=True)
class ParticipantLeft(BridgeEvent):
    kind: ClassVar[str] = "participant.left"
    participant_id: str
    name: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class SpeechStarted(BridgeEvent):
    """The agent heard someone start speaking: the loudest listened participant, if known
    (the agent hears a mix)."""

    kind: ClassVar[str] = "speech.started"
    participant_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class SpeechStopped(BridgeEvent):
    kind: ClassVar[str] = "speech.stopped"


@dataclass(frozen=True)
class UserTranscript(BridgeEvent):
    """What a participant said; ``final`` False for a partial that later text replaces."""

    kind: ClassVar[str] = "transcript.user"
    text: str
    final: bool = True
    participant_id: str | None = None
    participant_name: str | None = None


@dataclass(frozen=True)
class AgentTranscript(BridgeEvent):
    """What the agent said; ``final`` False for a partial (the reply so far)."""

    kind: ClassVar[str] = "transcript.agent"
    text: str
    final: bool = True
    interrupted: bool = False


@dataclass(frozen=True)
class ReplyStarted(BridgeEvent):
    """The first audio of an agent reply reached the transport. ``latency_ms``: from the
    user stopping speaking to that moment (None for a reply nobody asked for, e.g. the
    greeting), in the call's time (a ``--speed`` WAV call's is scaled back, like every
    figure in an event)."""

    kind: ClassVar[str] = "reply.started"
    latency_ms: float | None = None


@dataclass(frozen=True)
class ReplyDone(BridgeEvent):
    """The agent's reply is over. ``status``: ``completed`` or ``interrupted`` (the agent's
    ``reply.done``), ``lost`` (the connection dropped mid-reply), ``stalled`` (no progress
    for ``reply_timeout_s``)."""

    kind: ClassVar[str] = "reply.done"
    status: str = "completed"


@dataclass(frozen=True)
class ReplyInterrupted(BridgeEvent):
    """Barge-in: the bot's queued speech was flushed. ``flushed_ms`` of it never played;
    ``cause`` is ``speech`` (someone spoke over it) or ``reply.done`` (the agent said so)."""

    kind: ClassVar[str] = "reply.interrupted"
    flushed_ms: float = 0.0
    cause: str = "speech"


@dataclass(frozen=True)
class ToolCalled(BridgeEvent):
    """A tool call finished. ``result`` is the JSON string the agent got; ``error`` says why
    it failed (None when it did not); ``truncated``: the result was cut to its size limit;
    ``duration_ms``: how long the tool took, in the call's time (scaled back on a ``--speed``
    WAV call)."""

    kind: ClassVar[str] = "tool.call"
    call_id: str
    name: str
    arguments: Any = None
    result: str = ""
    error: str | None = None
    duration_ms: float = 0.0
    truncated: bool = False


@dataclass(frozen=True)
class TurnMetrics(BridgeEvent):
    """One reply's figures, sent when the reply is over (with :class:`ReplyDone`).

    ``latency_ms``: user stopped speaking -> first reply audio reached the transport (None
    when there was no user turn or no audio; in the call's time, scaled back on a ``--speed``
    WAV call); ``reply_ms``: the reply's audio handed to the
    transport, less what a barge-in flushed (the end-of-call summary re-counts it from what
    the transport really got); ``interrupted``: the reply was cut."""

    kind: ClassVar[str] = "turn.metrics"
    latency_ms: float | None = None
    reply_ms: float = 0.0
    interrupted: bool = False


@dataclass(frozen=True)
class SessionStateChanged(BridgeEvent):
    """The agent session moved: ``state`` is one of connecting, ready, reconnecting,
    resumed, newsession, ended, closing, closed; ``detail`` a URL (masked), session id or
    reason."""

    kind: ClassVar[str] = "session.state"
    state: str
    detail: str = ""


@dataclass(frozen=True)
class ErrorOccurred(BridgeEvent):
    """The agent reported an error the call survives (``code: message``)."""

    kind: ClassVar[str] = "error"
    message: str


@dataclass(frozen=True)
class DtmfReceived(BridgeEvent):
    """A keypad digit pressed by a participant (a phone caller)."""

    kind: ClassVar[str] = "dtmf"
    digit: str
    participant_id: str | None = None


@dataclass(frozen=True)
class TransportStatus(BridgeEvent):
    """A transport-level state the user should see: ``reconnecting`` / ``reconnected``
    (network), a phone call's status (``ringing``, ``in-progress``, ``busy``, ...)."""

    kind: ClassVar[str] = "transport.status"
    state: str
    detail: str = ""


@dataclass(frozen=True)
class CallAction(BridgeEvent):
    """The bot acted on the call (core/call.py): ``action`` is ``say``, ``reply``,
    ``update``, ``hang_up``, ``transfer``, ``send_dtmf`` or ``dial_out``; ``detail`` what it
    acted with (text, reason, target, digits, number); ``error`` why it failed (None: done).
    Every one is also listed in the call summary."""

    kind: ClassVar[str] = "call.action"
    action: str
    detail: str = ""
    error: str | None = None

    @property
    def what(self) -> str:
        """``action detail`` for people (``transfer sales``); the detail is left out when it
        only repeats the action (a hang-up's default reason)."""
        detail = self.detail.strip()
        return self.action if not detail or detail == self.action else f"{self.action} {detail}"


# The kinds, for observers that dispatch on strings.
PARTICIPANT_JOINED = ParticipantJoined.kind
PARTICIPANT_LEFT = ParticipantLeft.kind
SPEECH_STARTED = SpeechStarted.kind
SPEECH_STOPPED = SpeechStopped.kind
TRANSCRIPT_USER = UserTranscript.kind
TRANSCRIPT_AGENT = AgentTranscript.kind
REPLY_STARTED = ReplyStarted.kind
REPLY_DONE = ReplyDone.kind
REPLY_INTERRUPTED = BARGE_IN = ReplyInterrupted.kind
TOOL_CALL = ToolCalled.kind
TURN_METRICS = TurnMetrics.kind
SESSION_STATE = SessionStateChanged.kind
ERROR = ErrorOccurred.kind
DTMF = DtmfReceived.kind
TRANSPORT_STATUS = TransportStatus.kind
CALL_ACTION = CallAction.kind

#: Every event class, for observers that register by type.
ALL: tuple[type[BridgeEvent], ...] = (
    ParticipantJoined,
    ParticipantLeft,
    SpeechStarted,
    SpeechStopped,
    UserTranscript,
    AgentTranscript,
    ReplyStarted,
    ReplyDone,
    ReplyInterrupted,
    ToolCalled,
    TurnMetrics,
    SessionStateChanged,
    ErrorOccurred,
    DtmfReceived,
    TransportStatus,
    CallAction,
)
