"""Inbound audio path: per-participant resampling to the agent's 24 kHz, mixing and
batching into ``chunk_ms`` frames."""

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
        self._resamplers: dict[str, StreamResampler] = {}

    def add(self, pid: str) -> None:
        self._mixer.add(pid)

    def remove(self, pid: str) -> None:
        self._resamplers.pop(pid, None)
        self._mixer.remove(pid)

    def set_members(self, pids: Iterable[str]) -> None:
        """Make exactly ``pids`` the mixed participants (listen policy changes)."""
        wanted = set(pids)
        for pid in list(self._resamplers):
            if pid not in wanted:
                self.remove(pid)
        for pid in wanted:
            if pid not in self._resamplers:
                self._resamplers[pid] = None  # type: ignore[assignment]  # created lazily
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
        """Complete mixed frames of ``chunk_ms``."""
        return self._mixer.pop(now)
