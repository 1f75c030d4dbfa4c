"""Per-turn metrics and processing-latency statistics, summarised at exit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat


class LatencyStats:
    """Keeps the most recent ``capacity`` samples (seconds) for percentiles."""

    def __init__(self, capacity: int = 20000) -> None:
        self._samples: deque[float] = deque(maxlen=capacity)
        self.count = 0

    def add(self, seconds: float, count: int = 1) -> None:
        """``count`` samples of ``seconds`` (the frames of one batch share one figure)."""
        if count == 1:
            self._samples.append(seconds)
        elif count > 1:
            self._samples.extend(repeat(seconds, count))
        else:
            return
        self.count += count

    def percentile(self, p: float) -> float | None:
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
        return ordered[k]

    def summary_ms(self) -> str:
        p50, p99 = self.percentile(50), self.percentile(99)
        if p50 is None or p99 is None:
            return "n/a"
        return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms ({self.count} frames)"


@dataclass
class Turn:
    """One user turn and the agent's answer."""

    speech_stopped_at: float | None = None
    first_audio_at: float | None = None  # first reply audio handed to the transport
    reply_ms: float = 0.0  # audio of the reply that reached the transport (set at the end)
    interrupted: bool = False
    audio_queued: bool = False  # the first reply audio has been handed to the pacer
    sink_start_ms: float | None = None  # audio the transport had got before this reply's
    sink_position_ms: float | None = None  # the transport's own count at that point, for
    # transports that report what was heard (Twilio marks: Transport.heard_position_ms)
    heard_ms: float | None = None  # of reply_ms, what the listener heard (such transports)
    queued_ms: float = 0.0  # reply audio handed to the pacer
    flushed_ms: float = 0.0  # of which a barge-in flushed while the reply was in flight
    #: Meeting time per wall-clock second (:attr:`CallMetrics.time_scale`): the two times
    #: above are monotonic (wall clock), the latency is the call's own time.
    time_scale: float = 1.0

    @property
    def sent_ms(self) -> float:
        """The reply's audio handed to the transport's queue and not flushed."""
        return max(0.0, self.queued_ms - self.flushed_ms)

    @property
    def latency_ms(self) -> float | None:
        """User stopped speaking -> first reply audio out, in the call's (meeting) time: a
        ``--speed 4`` WAV call's 250 ms of wall clock is the 1 s the participants waited."""
        if self.speech_stopped_at is None or self.first_audio_at is None:
            return None
        return (self.first_audio_at - self.speech_stopped_at) * 1000 * self.time_scale


@dataclass
class CallMetrics:
    turns: list[Turn] = field(default_factory=list)
    inbound: LatencyStats = field(default_factory=LatencyStats)
    outbound: LatencyStats = field(default_factory=LatencyStats)
    barge_ins: int = 0
    stale_ms_flushed: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    #: How many times faster than real time the meeting runs (the transport's
    #: ``time_scale``: a ``--speed`` WAV call); the call length is in meeting time.
    time_scale: float = 1.0
    #: None: no agent session was opened (nobody joined); False: one was, never ready.
    agent_answered: bool | None = None
    spoken_ms: float | None = None  # all bot audio that reached the transport (set at the end)
    #: Why the response latency is not measured on this backend (None: it is).
    latency_unmeasured: str | None = None

    def settle(
        self, spoken_ms: float, heard_between: Callable[[float, float], float] | None = None
    ) -> None:
        """At the end of the call: ``spoken_ms`` is what the transport got in all; each
        turn's ``reply_ms`` is what it got from that turn's first audio to the next turn's.
        ``heard_between(start_ms, end_ms)``, from a transport that knows what was heard
        (Twilio's marks), gives each turn's ``heard_ms`` from its ``sink_position_ms``."""
        self.spoken_ms = spoken_ms
        if heard_between is not None:
            placed = sorted(
                (t for t in self.turns if t.sink_position_ms is not None),
                key=lambda t: t.sink_position_ms or 0.0,
            )
            stops = [t.sink_position_ms or 0.0 for t in placed[1:]] + [float("inf")]
            for turn, stop in zip(placed, stops, strict=False):
                turn.heard_ms = heard_between(turn.sink_position_ms or 0.0, stop)
        for t in self.turns:
            if t.sink_start_ms is None:
                t.reply_ms = 0.0  # none of its audio reached the transport
        started = sorted(
            (t for t in self.turns if t.sink_start_ms is not None),
            key=lambda t: t.sink_start_ms or 0.0,
        )
        ends = [t.sink_start_ms or 0.0 for t in started[1:]] + [spoken_ms]
        for turn, end in zip(started, ends, strict=False):  # (both empty without audio)
            turn.reply_ms = max(0.0, end - (turn.sink_start_ms or 0.0))

    @property
    def latencies_ms(self) -> list[float]:
        if self.latency_unmeasured:
            return []
        return [t.latency_ms for t in self.turns if t.latency_ms is not None]

    def call_length_s(self, now: float | None = None) -> float:
        """Seconds of the call so far in meeting time (like ``bot spoke`` and ``botrun
        report``'s call length): wall-clock time since the start times :attr:`time_scale`."""
        wall = (time.monotonic() if now is None else now) - self.started_at
        return wall * self.time_scale

    def summary(self, agent_reached: bool = True) -> str:
        """The end-of-call lines. ``agent_reached``: a connection to the voice agent was
        ever open (else it was unreachable, and did not merely stay silent)."""
        lat = sorted(self.latencies_ms)
        lines = [
            f"call length {self.call_length_s():.1f} s, "
            f"{_count(len(self.turns), 'agent reply', 'agent replies')}, "
            f"{_count(self.barge_ins, 'interruption', 'interruptions')}"
        ]
        if self.agent_answered is False:
            lines.append(
                "the voice agent never answered (no session.ready)"
                if agent_reached
                else "could not reach the voice agent"
            )
        if self.latency_unmeasured and self.turns:
            lines.append(f"response latency: {self.latency_unmeasured}")
        if lat:
            mid = lat[len(lat) // 2]
            lines.append(
                f"response latency (you stop speaking -> bot audio out): median {mid:.0f} ms, "
                f"min {lat[0]:.0f} ms, max {lat[-1]:.0f} ms"
            )
        spoken_ms = self.spoken_ms
        if spoken_ms is None:
            spoken_ms = sum(t.reply_ms for t in self.turns)
        spoken = spoken_ms / 1000
        heard = [t.heard_ms for t in self.turns if t.heard_ms is not None]
        if heard:  # the transport reported what the listener heard (Twilio's marks)
            cut = sum(1 for t in self.turns if t.heard_ms is not None and t.interrupted)
            lines.append(
                f"bot spoke {spoken:.1f} s; the caller heard {sum(heard) / 1000:.1f} s of it"
                + (f" ({cut} replies cut short)" if cut else "")
            )
        else:
            lines.append(f"bot spoke {spoken:.1f} s")
        # (processing time is the machine's, never scaled: said so when the call's time
        # runs at another pace, a --speed WAV call)
        clock = "" if self.time_scale == 1.0 else " (wall clock, not call time)"
        lines.append(
            f"bridge processing{clock}: in {self.inbound.summary_ms()}; "
            f"out {self.outbound.summary_ms()}"
        )
        return "\n".join(lines)


def _count(n: int, one: str, many: str) -> str:
    """``1 interruption``, ``0 interruptions``, ``2 interruptions``."""
    return f"{n} {one if n == 1 else many}"
