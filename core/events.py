"""Bridge events: what observers (the console, transcripts, metrics, plugins) receive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

# Event kinds. data keys are listed next to each.
PARTICIPANT_JOINED = "participant.joined"  # id, name
PARTICIPANT_LEFT = "participant.left"  # id, name, reason
SPEECH_STARTED = "speech.started"  # participant_id, name (who is loudest; the agent hears a mix)
SPEECH_STOPPED = "speech.stopped"
TRANSCRIPT_USER = "transcript.user"  # text, participant_id, participant_name, final
TRANSCRIPT_AGENT = "transcript.agent"  # text, interrupted, final
TURN_METRICS = "turn.metrics"  # latency_ms, reply_ms, interrupted
# state: connecting|ready|reconnecting|resumed|newsession|ended|closing|closed; detail
SESSION_STATE = "session.state"
BARGE_IN = "barge_in"  # flushed_ms
# a tool call finished: call_id, name, arguments, result (the JSON string the agent got),
# error (str | None), duration_ms, truncated (the result was cut to its size limit)
TOOL_CALL = "tool.call"
ERROR = "error"  # message


@dataclass(frozen=True)
class BridgeEvent:
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
