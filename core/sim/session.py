"""A simulated agent session: configuration, conversation context and pending tool calls.

A session outlives its socket: after a disconnect it waits ``resume_window_s`` for a
``session.resume`` and then continues with its context, its pending tool calls and its
recording. The per-socket protocol handling lives in ``connection.py``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import default_config, input_format
from .recorder import SessionRecord
from .vad import EnergyVad

if TYPE_CHECKING:
    from .connection import Connection
    from .scenario import Scenario


def new_id(prefix: str) -> str:
    """A random, unguessable id such as ``sess_3f9a...`` (ids are the only resume credential)."""
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class PendingCall:
    """A ``tool.call`` the client has not answered yet."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    mode: str  # "interactive" | "hold"
    timeout_s: float
    reply_id: str
    reply_done: bool = False  # reply.done for the turn that made the call was sent
    result: str | None = None  # a result received (possibly early, before reply.done)
    result_reply: str | None = None  # the turn's own template for the answer ("": none)

    def event(self) -> dict[str, Any]:
        return {
            "type": "tool.call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
        }


@dataclass
class SimSession(SessionRecord):
    """Session state plus everything recorded about it (see :class:`SessionRecord`)."""

    scenario: Scenario | None = None
    config: dict[str, Any] = field(default_factory=default_config)
    ready: bool = False
    ended: bool = False
    ready_at: float | None = None
    detached_at: float | None = None
    max_duration_s: float = 0.0
    turn_count: int = 0
    context: list[tuple[str, str]] = field(default_factory=list)
    pending: dict[str, PendingCall] = field(default_factory=dict)
    reply_audio_frames: int = 0
    fired: set[str] = field(default_factory=set)
    #: What a protocol adapter recorded (core/sim/wire.py): truncations, seeded items, ...
    wire: dict[str, list[Any]] = field(default_factory=dict)
    vad: EnergyVad | None = None
    vad_base: int = 0  # received sample index where the current detector started
    connection: Connection | None = None

    def fire_once(self, fault: str) -> bool:
        """True the first time a named fault fires in this session (faults fire once, so a
        client can recover by resuming)."""
        if fault in self.fired:
            return False
        self.fired.add(fault)
        return True

    def make_vad(self) -> None:
        """(Re)create the detector for the current input format and turn detection."""
        assert self.scenario is not None
        td = self.config["input"]["turn_detection"]
        v = self.scenario.vad
        rate = input_format(self.config).sample_rate
        self.input_rate = rate
        self.vad = EnergyVad(
            rate,
            vad_threshold=td["vad_threshold"],
            min_silence_ms=td["min_silence"],
            max_silence_ms=td["max_silence"],
            start_ms=v.start_ms,
            hangover_ms=v.hangover_ms,
            preroll_ms=v.preroll_ms,
        )
        self.vad_base = self.received_samples

    def resumable(self, window_s: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.ended or not self.ready:
            return False
        return self.detached_at is None or now - self.detached_at <= window_s

    def duration_s(self) -> float:
        return 0.0 if self.ready_at is None else time.monotonic() - self.ready_at

    def audio_duration_s(self) -> float:
        return self.received_samples / self.input_rate if self.input_rate else 0.0
