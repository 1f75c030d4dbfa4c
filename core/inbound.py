"""Inbound audio path: per-participant resampling to the agent's 24 kHz, mixing and
batching into ``chunk_ms`` frames.

Everything the agent hears leaves through here, in order: mixed participant audio as it
becomes due (:meth:`InboundPath.pop`, called when audio arrives and again at
:meth:`InboundPath.next_due`, so queued audio drains on a clock even when nobody sends
any more), and the keep-alive silence (:meth:`InboundPath.keepalive`), which first drains
whatever is still queued so silence never lands in front of the end of someone's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .audio.mixer import Mixer
from .audio.resampler import StreamResampler

if TYPE_CHECKING:
    from collections.abc import Iterable

AGENT_RATE = 24000


class InboundPath:
    def __init__(self, chunk_ms: int = 20, rate: int = AGENT_RATE, max_lag_ms: int = 60) -> None:
        self.rate = rate
        self.chunk_ms = chunk_ms
        self._mixer = Mixer(sample_rate=rate, frame_ms=chunk_ms, max_lag_ms=max_lag_ms)
        self._resamplers: dict[str, StreamResampler | None] = {}
        self._silence = bytes(self._mixer.frame_bytes)

    def add(self, pid: str) -> None:
        self._resamplers.setdefault(pid, None)  # created on its first audio
        self._mixer.add(pid)

    def remove(self, pid: str, now: float) -> None:
        """Stop mixing ``pid``: the end of its audio still inside the resampler and the
        mixer is played out (see :meth:`pop`), then it is forgotten."""
        rs = self._resamplers.pop(pid, None)
        if rs is not None:
            tail = rs.flush()
            if tail:
                self._mixer.push(pid, tail, now)
        self._mixer.remove(pid)

    def set_members(self, pids: Iterable[str], now: float) -> None:
        """Make exactly ``pids`` the mixed participants (joins, leaves, listen policy)."""
        wanted = set(pids)
        for pid in list(self._resamplers):
            if pid not in wanted:
                self.remove(pid, now)
        for pid in wanted:
            if pid not in self._resamplers:
                self.add(pid)

    def push(self, pid: str, pcm: bytes, sample_rate: int, now: float) -> bytes:
        """Resample one participant's audio and feed the mixer; returns the 24 kHz PCM."""
        rs = self._resamplers.get(pid)
        if rs is None or rs.in_rate != sample_rate:
            rs = StreamResampler(sample_rate, self.rate)
            self._resamplers[pid] = rs
        out = rs.process(pcm)
        if out:
            self._mixer.push(pid, out, now)
        return out

    def pop(self, now: float) -> list[bytes]:
        """Complete mixed frames of ``chunk_ms`` that are due at ``now``."""
        return self._mixer.pop(now)

    def next_due(self) -> float | None:
        """When queued audio becomes due if nothing else arrives (call :meth:`pop` then), or
        None when nothing is queued."""
        return self._mixer.next_due()

    def keepalive(self, frames: int) -> list[bytes]:
        """``frames`` frames for a stream nobody is feeding: whatever is still queued first
        (padded with silence), then silence for the rest."""
        out = self._mixer.drain()
        return out + [self._silence] * max(0, frames - len(out))
