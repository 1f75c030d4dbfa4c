"""Inbound audio of a phone call passed through untouched: G.711 μ-law at 8 kHz.

The μ-law twin of :class:`botrun.core.inbound.InboundPath` (same methods, so the bridge
drives either): when the transport delivers μ-law (``Transport.audio_encoding == "pcmu"``)
and the agent session takes it too, the caller's bytes are only batched into ``chunk_ms``
frames. No resampling and no mixing: a phone call has one caller (the first listened
participant is heard; anyone else is counted and dropped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .audio.g711 import ULAW_SILENCE, ulaw_to_pcm16
from .inbound import Heard, push_each

if TYPE_CHECKING:
    from collections.abc import Iterable

RATE = 8000


class PassthroughPath:
    def __init__(self, chunk_ms: int = 20) -> None:
        self.rate = RATE
        self.chunk_ms = chunk_ms
        self.bytes_per_s = RATE  # one byte a sample
        self.frame_bytes = RATE * chunk_ms // 1000
        self._members: list[str] = []
        self._buf = bytearray()
        self._silence = ULAW_SILENCE * self.frame_bytes
        self.dropped_frames = 0  # audio of a second listened participant (not mixed)

    def set_members(self, pids: Iterable[str], now: float) -> None:
        wanted = set(pids)
        if self._members and self._members[0] not in wanted and self._buf:
            # the caller left: the end of their words goes out now, padded to a whole frame
            self._buf += ULAW_SILENCE * (-len(self._buf) % self.frame_bytes)
        self._members = [p for p in self._members if p in wanted] + sorted(
            wanted.difference(self._members)
        )

    def push(self, pid: str, data: bytes, sample_rate: int, now: float) -> bytes:
        """Queue one participant's μ-law; returns it as PCM16 (for the speaker's energy),
        or nothing when ``pid`` is not the caller heard."""
        if not self._members or pid != self._members[0]:
            self.dropped_frames += 1
            return b""
        self._buf += data
        return ulaw_to_pcm16(data)

    def push_frames(self, frames: list[tuple[str, bytes, int, float]]) -> list[Heard]:
        """:meth:`push` for the audio of one hand-off (see InboundPath.push_frames)."""
        return push_each(self.push, frames)

    def pop(self, now: float) -> list[bytes]:
        """The complete ``chunk_ms`` frames queued so far."""
        n = len(self._buf) // self.frame_bytes * self.frame_bytes
        if not n:
            return []
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return [data[i : i + self.frame_bytes] for i in range(0, n, self.frame_bytes)]

    def take(self, now: float) -> None:
        """Never batched with other calls (core/inbound_batch.py): nothing to mix or
        resample; the batch calls :meth:`pop`."""
        return None

    def next_due(self) -> float | None:
        return None  # nothing waits on a clock: frames leave as they complete

    def keepalive(self, frames: int) -> list[bytes]:
        """``frames`` frames for a stream nobody is feeding: the queued rest first (padded
        with μ-law silence), then silence."""
        out = self.pop(0.0)
        if self._buf:
            out.append(bytes(self._buf) + ULAW_SILENCE * (self.frame_bytes - len(self._buf)))
            self._buf.clear()
        return out + [self._silence] * max(0, frames - len(out))
