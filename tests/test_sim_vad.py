"""The energy speech detector as a plain state machine: samples in, positioned events out."""

from __future__ import annotations

import numpy as np
import pytest

from botrun.core.sim.vad import (
    EnergyVad,
    SpeechStarted,
    SpeechStopped,
    TurnEnded,
    rms_dbfs,
    threshold_dbfs,
)
from tests.sim_support import silence, voiced

MS = 24  # samples per ms at 24 kHz


def feed_chunks(vad: EnergyVad, audio: np.ndarray, chunk: int) -> list:
    events = []
    for i in range(0, len(audio), chunk):
        events += vad.feed(audio[i : i + chunk])
    return events


def test_threshold_mapping_and_levels() -> None:
    assert threshold_dbfs(0.0) == -70 and threshold_dbfs(0.5) == -40 and threshold_dbfs(1) == -10
    assert rms_dbfs(silence(10)) == -np.inf
    full = np.full(240, 32767, dtype=np.int16)
    assert rms_dbfs(full) == pytest.approx(0.0, abs=0.01)


def test_one_utterance_positions_are_exact() -> None:
    vad = EnergyVad(24000, min_silence_ms=500, hangover_ms=200, start_ms=60, preroll_ms=100)
    audio = np.concatenate((silence(300), voiced(400), silence(800)))
    events = vad.feed(audio)
    assert events == [
        SpeechStarted(300 * MS),
        SpeechStopped(700 * MS),
        TurnEnded(200 * MS, 800 * MS),  # 100 ms pre-roll and tail around the speech
    ]
    assert not vad.in_turn


@pytest.mark.parametrize("chunk", [1, 7, 240, 1200, 4801])
def test_events_do_not_depend_on_chunking(chunk: int) -> None:
    audio = np.concatenate((silence(250), voiced(300), silence(200), voiced(300), silence(1200)))
    whole = EnergyVad(24000).feed(audio)
    assert feed_chunks(EnergyVad(24000), audio, chunk) == whole
    assert sum(isinstance(e, TurnEnded) for e in whole) == 1


def test_short_click_does_not_start_speech() -> None:
    vad = EnergyVad(24000, start_ms=60)
    assert vad.feed(np.concatenate((silence(100), voiced(40), silence(500)))) == []


def test_quiet_audio_below_threshold_is_silence() -> None:
    quiet = (voiced(500) // 30).astype(np.int16)  # about -44 dBFS
    assert EnergyVad(24000, vad_threshold=0.5).feed(quiet) == []
    assert EnergyVad(24000, vad_threshold=0.2).feed(quiet)[0] == SpeechStarted(0)


def test_unfinished_turn_waits_for_max_silence() -> None:
    vad = EnergyVad(24000, min_silence_ms=300, max_silence_ms=1000)
    vad.expect_complete = False
    events = vad.feed(np.concatenate((voiced(200), silence(900))))
    assert not any(isinstance(e, TurnEnded) for e in events)
    assert isinstance(vad.feed(silence(120))[-1], TurnEnded)


def test_idle_wall_time_ends_a_turn_without_audio() -> None:
    vad = EnergyVad(24000, min_silence_ms=400, hangover_ms=300)
    vad.feed(voiced(200))
    assert vad.idle(350) == [SpeechStopped(200 * MS)]
    assert vad.idle(100) == [TurnEnded(0, 200 * MS)]  # tail clipped to what was received
    assert vad.idle(1000) == []


def test_configure_changes_take_effect() -> None:
    vad = EnergyVad(24000, min_silence_ms=2000)
    vad.feed(voiced(200))
    vad.configure(0.5, 200, 3000)
    assert isinstance(vad.feed(silence(250))[-1], TurnEnded)
