"""Sinks for the bot's voice: a virtual microphone device or a custom audio track.

Both are written the same way, on the pacer's thread, with **blocking** ``write_frames`` of
``bytes`` whose length is a whole multiple of 10 ms. A blocking write returns when Daily has
taken the audio in real time, so at most the chunk being written sits inside Daily: there is
no way to cancel audio once handed over, and barge-in staleness is bounded by keeping that
queue short. Non-blocking writes with completions would queue without limit.

A ``CustomAudioSource`` must stay alive until its last write has completed (dropping it with
work queued deadlocks the process), so :meth:`close` waits for an in-flight write, and when it
cannot wait it parks the source until process exit.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from . import sdk

log = logging.getLogger("botrun.daily")

DEFAULT_MIC_NAME = "botrun-mic"


class AudioSink(Protocol):
    """What the Daily transport needs from a voice sink."""

    sample_rate: int

    def microphone_settings(self) -> dict[str, Any]:
        """The ``inputs.microphone`` client settings that publish this sink."""

    def write(self, pcm: bytes) -> None:
        """Blocking real-time write of PCM16 mono (pacer thread)."""

    def close(self, timeout: float = 2.0) -> None:
        """Stop accepting writes and release the native object once no write is in flight."""

    def park(self) -> None:
        """Stop accepting writes and keep the native object alive until process exit."""


def frame_bytes_10ms(sample_rate: int) -> int:
    return sample_rate // 100 * 2


def whole_ticks(pcm: bytes, sample_rate: int) -> bytes:
    """``pcm`` as ``bytes``, even-length and padded with silence to a whole 10-ms multiple
    (Daily pads partial ticks itself, which would stretch 15 ms into 20 ms of playback)."""
    data = bytes(pcm)
    if len(data) % 2:
        data = data[:-1]
    tick = frame_bytes_10ms(sample_rate)
    rest = len(data) % tick
    if rest:
        data += b"\x00" * (tick - rest)
    return data


class _BlockingSink:
    """Shared write/close logic: one lock held across each native write."""

    sample_rate: int

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._lock = threading.Lock()
        self._closed = False
        self.frames_written = 0
        self.write_errors = 0

    def _device(self) -> Any:
        raise NotImplementedError

    def write(self, pcm: bytes) -> None:
        data = whole_ticks(pcm, self.sample_rate)
        if not data:
            return
        with self._lock:
            if self._closed:
                return
            try:
                self._device().write_frames(data)
            except Exception as exc:  # the pacer thread must keep running
                self.write_errors += 1
                log.warning("Daily rejected %d bytes of bot audio: %s", len(data), exc)
                return
            self.frames_written += len(data) // 2

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout: float = 2.0) -> None:
        self._closed = True
        if self._lock.acquire(timeout=timeout):
            try:
                self._release()
            finally:
                self._lock.release()
        else:  # a write is still inside Daily: never drop its source under it
            log.warning("bot audio write still in flight at close; keeping it until exit")
            self._park()

    def park(self) -> None:
        self._closed = True
        self._park()

    def _release(self) -> None:
        """Drop native references (no write in flight)."""

    def _park(self) -> None:
        """Keep native references alive until exit."""


class VirtualMicSink(_BlockingSink):
    """The process-global virtual microphone (botrun's default). Offline its writes return at
    once (the device runs only inside a call); in a call they block in real time."""

    def __init__(self, sample_rate: int = 16000, name: str = DEFAULT_MIC_NAME) -> None:
        super().__init__(sample_rate)
        self.name = name
        self._mic = sdk.microphone(name, sample_rate)

    def _device(self) -> Any:
        return self._mic

    def microphone_settings(self) -> dict[str, Any]:
        return {"isEnabled": True, "settings": {"deviceId": self.name}}


class CustomTrackSink(_BlockingSink):
    """A per-client ``CustomAudioSource`` + ``CustomAudioTrack`` (what Daily's own framework
    uses). Writes pace in real time even offline."""

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__(sample_rate)
        daily = sdk.ensure_init()
        self._source: Any = daily.CustomAudioSource(sample_rate, 1)
        sdk.hold()
        self._track: Any = daily.CustomAudioTrack(self._source)
        self.track_id: str = self._track.id

    def _device(self) -> Any:
        return self._source

    def microphone_settings(self) -> dict[str, Any]:
        return {"isEnabled": True, "settings": {"customTrack": {"id": self.track_id}}}

    def _release(self) -> None:
        if self._source is not None:
            self._track = self._source = None
            sdk.drop()

    def _park(self) -> None:
        if self._source is not None:
            sdk.keep_forever((self._track, self._source))
            self._track = self._source = None
            sdk.drop()


def make_sink(kind: str, sample_rate: int = 16000) -> AudioSink:
    """``kind`` is ``"virtual-mic"`` or ``"custom-track"``."""
    if kind == "custom-track":
        return CustomTrackSink(sample_rate)
    return VirtualMicSink(sample_rate)
