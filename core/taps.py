"""Audio taps: a read-only view of the two audio streams of a call, for recorders.

The bridge calls :meth:`AudioTaps.heard` with each frame of the participants' mix exactly
as it goes to the agent (at the backend's rate, after the listen policy, keep-alive silence
included), on the event loop, and :meth:`AudioTaps.spoken` with each chunk of the bot's
voice as it is handed to the transport, on the pacer's thread. Both must return at once
(copy and queue). ``encoding`` is ``"pcm16"`` (little-endian mono) or ``"pcmu"`` (G.711
μ-law at 8 kHz: a phone transport's audio, passed through to an agent that takes it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class AudioTaps(Protocol):
    def heard(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        """Participants' mix, as the agent hears it (event loop)."""

    def spoken(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        """The bot's voice, as the transport gets it (pacer thread)."""


def tee_sink(
    write: Callable[[bytes], None], taps: AudioTaps, rate: int, encoding: str = "pcm16"
) -> Callable[[bytes], None]:
    """``write`` (a transport's audio sink), also handing each chunk to ``taps``."""

    def sink(data: bytes) -> None:
        try:
            taps.spoken(data, rate, encoding)
        finally:
            write(data)

    return sink
