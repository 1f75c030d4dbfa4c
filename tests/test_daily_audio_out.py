"""The bot-voice sinks with the real daily-python (offline).

A ``CustomAudioSource`` paces blocking writes in real time even offline; a virtual
microphone accepts writes offline without playing them (it only runs inside a call)."""

from __future__ import annotations

import threading
import time

import pytest

from botrun.transports.daily import sdk
from botrun.transports.daily.audio_out import (
    CustomTrackSink,
    VirtualMicSink,
    make_sink,
    whole_ticks,
)

pytest.importorskip("daily")

MS20 = 640  # bytes of 20 ms PCM16 mono at 16 kHz


def test_whole_ticks_makes_even_bytes_padded_to_10ms() -> None:
    assert whole_ticks(bytearray(MS20), 16000) == bytes(MS20)
    assert type(whole_ticks(memoryview(bytes(MS20)), 16000)) is bytes
    assert len(whole_ticks(b"\x01" * 481, 16000)) == 640  # 15 ms (+1 odd byte) -> 20 ms
    assert whole_ticks(b"\x01\x02" * 240, 16000)[:480] == b"\x01\x02" * 240
    assert len(whole_ticks(b"\x01" * 500, 24000)) == 960
    assert whole_ticks(b"", 16000) == b""


def test_custom_track_sink_takes_pacer_chunks_as_blocking_writes() -> None:
    sink = CustomTrackSink(16000)
    settings = sink.microphone_settings()
    assert settings == {"isEnabled": True, "settings": {"customTrack": {"id": sink.track_id}}}
    for chunk in (bytes(MS20), bytearray(MS20), b"\x00" * 321):  # odd and short ones too
        sink.write(chunk)
    assert sink.frames_written == 320 * 2 + 160 and sink.write_errors == 0
    sink.close()
    sink.write(bytes(MS20))  # after close: dropped, never reaches a released source
    assert sink.frames_written == 800 and sink.closed


def test_close_waits_for_the_write_in_flight() -> None:
    """The source must outlive its last write: close() returns only after it completed."""
    sink = CustomTrackSink(16000)
    started = threading.Event()
    seen_at_close: list[int] = []

    def pacer() -> None:
        started.set()
        sink.write(bytes(MS20 * 10))  # 200 ms, paced in real time by the SDK

    writer = threading.Thread(target=pacer)
    writer.start()
    started.wait(2)
    while not sink._lock.locked() and writer.is_alive():
        time.sleep(0.001)  # until the writer is inside write_frames
    sink.close(timeout=5)
    seen_at_close.append(sink.frames_written)
    writer.join(5)
    assert seen_at_close == [3200]
    assert sink._source is None  # released once nothing was in flight


def test_close_that_cannot_wait_parks_the_source_instead_of_dropping_it() -> None:
    sink = CustomTrackSink(16000)
    kept = len(sdk._kept)
    writer = threading.Thread(target=sink.write, args=(bytes(MS20 * 15),))  # 300 ms
    writer.start()
    while not sink._lock.locked() and writer.is_alive():
        time.sleep(0.001)
    sink.close(timeout=0.0)
    writer.join(5)
    assert len(sdk._kept) == kept + 1 and sink._source is None and sink.closed


def test_virtual_mic_accepts_writes_offline() -> None:
    sink = make_sink("virtual-mic", 16000)
    assert isinstance(sink, VirtualMicSink)
    assert sink.microphone_settings() == {"isEnabled": True, "settings": {"deviceId": "botrun-mic"}}
    for _ in range(5):
        sink.write(bytes(MS20))
    assert sink.frames_written == 1600 and sink.write_errors == 0
    # One process-global device per name: a second sink reuses it.
    again = VirtualMicSink(16000)
    assert again._mic is sink._mic
    sink.close()
    again.close()


def test_virtual_mic_at_another_rate_is_refused() -> None:
    from botrun.core.errors import UsageError

    VirtualMicSink(16000, name="botrun-rate-test")
    with pytest.raises(UsageError, match="already exists at 16000 Hz"):
        VirtualMicSink(24000, name="botrun-rate-test")
