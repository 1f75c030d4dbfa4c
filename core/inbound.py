"""Inbound audio path: mixing at the meeting's rate, one resampler to the agent's 24 kHz
per call, batching into ``chunk_ms`` frames.

Everything the agent hears leaves through here, in order: mixed participant audio as it
becomes due (:meth:`InboundPath.pop`, called when audio arrives and again at
:meth:`InboundPath.next_due`, so queued audio drains on a clock even when nobody sends
any more), and the keep-alive silence (:meth:`InboundPath.keepalive`), which first drains
whatever is still queued so silence never lands in front of the end of someone's words.

Participants are mixed at the *meeting rate* (the rate of the first audio that arrives:
what the transport delivers, 16 kHz for Daily and Agora) and the mix is resampled once, so
a call costs one resampler whatever the number of people (resampling is linear: the sum of
the resampled voices and the resampled sum agree within rounding). A participant whose audio
comes at another rate is resampled to the meeting rate first. The mixed stream is one
continuous signal through one filter; when the last person present leaves, one frame of
silence follows their last words so the end still inside the filter (under 6 ms) is sent
too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .audio.mixer import Mixer
from .audio.resampler import StreamResampler

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

AGENT_RATE = 24000

#: A participant's audio as pushed: (participant id, PCM16 at the meeting rate, arrival).
Heard = tuple[str, bytes, float]


def push_each(
    push: Callable[[str, bytes, int, float], bytes], frames: list[tuple[str, bytes, int, float]]
) -> list[Heard]:
    """Push ``(pid, audio, rate, arrival)`` frames one by one through ``push``; returns
    what each returned, as ``(pid, PCM16, arrival)``, where it returned anything."""
    heard: list[Heard] = []
    for pid, pcm, rate, at in frames:
        pushed = push(pid, pcm, rate, at)
        if pushed:
            heard.append((pid, pushed, at))
    return heard


class InboundPath:
    def __init__(self, chunk_ms: int = 20, rate: int = AGENT_RATE, max_lag_ms: int = 60) -> None:
        self.rate = rate
        self.chunk_ms = chunk_ms
        self.max_lag_ms = max_lag_ms
        #: The rate participants are mixed at: that of the first audio (None until then).
        self.meeting_rate: int | None = None
        self._mixer: Mixer | None = None  # made at the meeting rate by the first audio
        self._out: StreamResampler | None = None  # meeting rate -> rate (None: the same)
        # Members; the value is the resampler of one whose rate is not the meeting's.
        self._members: dict[str, StreamResampler | None] = {}
        self._silence = bytes(rate * chunk_ms // 1000 * 2)
        self._meeting_silence = b""
        self._last_in = b""  # the last mixed frame fed to the output resampler
        self._quiet = 0  # silence samples fed to it since the last audio
        self._tail_due = False  # someone left: the filter's tail may need pushing out

    def _start(self, sample_rate: int) -> Mixer:
        self.meeting_rate = sample_rate
        mixer = self._mixer = Mixer(sample_rate, self.chunk_ms, self.max_lag_ms)
        if sample_rate != self.rate:
            self._out = StreamResampler(sample_rate, self.rate)
        self._meeting_silence = bytes(mixer.frame_bytes)
        for pid in self._members:
            mixer.add(pid)
        return mixer

    def add(self, pid: str) -> None:
        self._members.setdefault(pid, None)  # a resampler only if its rate turns out odd
        if self._mixer is not None:
            self._mixer.add(pid)

    def remove(self, pid: str, now: float) -> None:
        """Stop mixing ``pid``: the end of its audio still queued is played out (see
        :meth:`pop`), then it is forgotten."""
        rs = self._members.pop(pid, None)
        mixer = self._mixer
        if mixer is None:
            return
        if rs is not None:
            tail = rs.flush()
            if tail:
                mixer.push(pid, tail, now)
        mixer.remove(pid)
        self._tail_due = True

    def set_members(self, pids: Iterable[str], now: float) -> None:
        """Make exactly ``pids`` the mixed participants (joins, leaves, listen policy)."""
        wanted = set(pids)
        for pid in list(self._members):
            if pid not in wanted:
                self.remove(pid, now)
        for pid in wanted:
            if pid not in self._members:
                self.add(pid)

    def push(self, pid: str, pcm: bytes, sample_rate: int, now: float) -> bytes:
        """Feed one participant's audio to the mixer; returns it at the meeting rate."""
        mixer = self._mixer or self._start(sample_rate)
        rs = self._members.get(pid)
        if sample_rate != self.meeting_rate:
            if rs is None or rs.in_rate != sample_rate:
                rs = self._members[pid] = StreamResampler(sample_rate, mixer.sample_rate)
            pcm = rs.process(pcm)
        elif rs is not None:  # back at the meeting rate: the old filter's tail, then as is
            self._members[pid] = None
            tail = rs.flush()
            if tail:
                mixer.push(pid, tail, now)
        elif pid not in self._members:
            self._members[pid] = None
        if pcm:
            mixer.push(pid, pcm, now)
        return pcm

    def push_frames(self, frames: list[tuple[str, bytes, int, float]]) -> list[Heard]:
        """:meth:`push` for the audio of one hand-off, ``(pid, PCM16, rate, arrival)`` in
        arrival order; returns what was pushed at the meeting rate, as ``(pid, PCM16,
        arrival)``. The usual tick -- one whole frame from everyone, at the meeting rate,
        nothing queued -- is offered to the mixer as it is (:meth:`Mixer.offer`), which
        spares queueing every piece only to take it back in the same pass."""
        mixer = self._mixer
        if mixer is not None:
            rate, members = self.meeting_rate, self._members
            offered: list[Heard] = []
            for pid, pcm, r, at in frames:
                if r != rate or members.get(pid, 0) is not None:
                    break
                offered.append((pid, pcm, at))
            else:
                if mixer.offer(offered):
                    return offered
        return push_each(self.push, frames)

    def pop(self, now: float) -> list[bytes]:
        """Complete mixed frames of ``chunk_ms`` at the agent's rate that are due at ``now``."""
        mixer = self._mixer
        if mixer is None:
            return []
        frames = self._resample(mixer.pop(now))
        if self._tail_due and not mixer.queued:
            self._tail_due = False
            quiet = self._quiet + (_trailing_zeros(self._last_in) if self._last_in else 0)
            if not mixer.present and self._last_in and quiet < self._history():
                frames += self._resample([self._meeting_silence])
        return frames

    def next_due(self) -> float | None:
        """When queued audio becomes due if nothing else arrives (call :meth:`pop` then), or
        None when nothing is queued."""
        return self._mixer.next_due() if self._mixer is not None else None

    def keepalive(self, frames: int) -> list[bytes]:
        """``frames`` frames for a stream nobody is feeding: whatever is still queued first
        (padded with silence), then silence for the rest."""
        if self._mixer is None:
            return [self._silence] * max(0, frames)
        out = self._resample(self._mixer.drain())
        missing = max(0, frames - len(out))
        if missing:
            out += self._resample([self._meeting_silence] * missing)
        return out

    # -- batched with the other calls on the loop (core/inbound_batch.py) ------------
    @property
    def frame_bytes(self) -> int:
        """Bytes of one mixed frame at the meeting rate (0 before the first audio)."""
        return self._mixer.frame_bytes if self._mixer is not None else 0

    def take(self, now: float) -> list[list[bytes]] | None:
        """The frames due at ``now``, unmixed (see :meth:`Mixer.pop_pieces`), for the batch
        to mix and resample; None when they must take :meth:`pop` (a leaver's tail may
        have to be pushed out of the filter, or nothing has arrived yet)."""
        mixer = self._mixer
        if mixer is None or self._tail_due:
            return None
        return mixer.pop_pieces(now)

    def batch_resampler(self, samples: int) -> StreamResampler | None:
        """The call's resampler, if the batch can run ``samples`` more through it at once."""
        out = self._out
        return out if out is not None and out.batchable(samples) else None

    def resample_rows(self, rows: np.ndarray) -> list[bytes]:
        """Mixed frames (one per row) through this call's own path."""
        return self._resample([row.tobytes() for row in rows])

    def sent_mix(self, last: bytes) -> None:
        """The batch resampled mixed frames for this call, ``last`` the last of them."""
        self._quiet = 0
        self._last_in = last

    def count_limited(self, samples: int) -> None:
        if samples and self._mixer is not None:
            self._mixer.stats.limited_samples += samples

    def _history(self) -> int:
        return 0 if self._out is None else self._out.history

    def _resample(self, frames: list[bytes]) -> list[bytes]:
        """Mixed frames at the meeting rate -> the agent's rate, through the call's one
        resampler (once it has only silence inside, silence needs no filtering)."""
        out = self._out
        if out is None or not frames:
            return frames
        history = self._history()
        result = []
        for frame in frames:
            if frame is self._meeting_silence:
                if self._quiet >= history:
                    result.append(self._silence)
                    continue
                self._quiet += len(frame) // 2
            else:
                self._quiet = 0
                self._last_in = frame
            result.append(out.process(frame))
        return result


def _trailing_zeros(pcm: bytes) -> int:
    """Silent samples at the end of a PCM16 frame."""
    x = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(x)
    return int(x.size if loud.size == 0 else x.size - 1 - loud[-1])
