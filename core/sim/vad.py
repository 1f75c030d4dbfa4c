"""Energy-based speech detection driven by the session's ``turn_detection`` settings.

A sans-I/O state machine over the *audio clock*: it is fed int16 samples and returns what
happened at which sample position, so its decisions depend only on the audio (a client may send
faster than real time and gets the same turns). When a client stops sending audio mid-turn, the
session advances the clock with :meth:`EnergyVad.idle` so the turn still ends.

Frame decision: 10 ms frames; a frame is voiced when its RMS level is at or above
``threshold_dbfs(vad_threshold)``. ``start_ms`` of consecutive voiced audio starts speech,
``hangover_ms`` of silence reports it stopped, and ``min_silence`` (or ``max_silence`` for a
turn the semantic model would judge unfinished) ends the turn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def threshold_dbfs(vad_threshold: float) -> float:
    """Map the protocol's 0..1 ``vad_threshold`` to an RMS level: 0 -> -70 dBFS (anything
    above near-silence is speech), 0.5 -> -40 dBFS, 1 -> -10 dBFS (only very loud audio)."""
    return -70.0 + 60.0 * min(max(vad_threshold, 0.0), 1.0)


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB relative to full scale (-inf for digital silence)."""
    if len(samples) == 0:
        return -math.inf
    ms = float(np.mean(np.square(samples.astype(np.float64))))
    return -math.inf if ms <= 0 else 10.0 * math.log10(ms / (32768.0**2))


@dataclass(frozen=True)
class SpeechStarted:
    at: int  # sample position where the voiced run began


@dataclass(frozen=True)
class SpeechStopped:
    at: int  # sample position just after the last voiced frame


@dataclass(frozen=True)
class TurnEnded:
    start: int  # first sample of the utterance (with pre-roll)
    end: int  # one past its last sample (with tail)


VadEvent = SpeechStarted | SpeechStopped | TurnEnded


class EnergyVad:
    """Per-session speech detector. Positions are absolute sample indices of the input stream."""

    IDLE, SPEAKING, PAUSED = "idle", "speaking", "paused"

    def __init__(
        self,
        sample_rate: int,
        *,
        vad_threshold: float = 0.5,
        min_silence_ms: int = 1000,
        max_silence_ms: int = 3000,
        start_ms: int = 60,
        hangover_ms: int = 300,
        preroll_ms: int = 100,
    ) -> None:
        self.rate = sample_rate
        self.frame = max(1, sample_rate // 100)
        self.start_ms, self.hangover_ms, self.preroll_ms = start_ms, hangover_ms, preroll_ms
        self.configure(vad_threshold, min_silence_ms, max_silence_ms)
        self.state = self.IDLE
        self.expect_complete = True
        self.pos = 0  # samples consumed (including a partial frame held in _carry)
        self._carry = np.zeros(0, dtype=np.int16)
        self._frame_pos = 0  # position of the next whole frame
        self._run_start = -1  # start of the current voiced run
        self._run_samples = 0
        self._silence_ms = 0.0
        self._last_voiced_end = 0
        self._turn_start = 0
        self._prev_turn_end = 0
        self.speech_samples = 0  # voiced samples in the current turn (drives partial transcripts)

    def configure(self, vad_threshold: float, min_silence_ms: int, max_silence_ms: int) -> None:
        """Apply (possibly updated) turn_detection settings; takes effect at the next frame."""
        self.threshold = threshold_dbfs(vad_threshold)
        self.min_silence_ms, self.max_silence_ms = min_silence_ms, max_silence_ms

    @property
    def in_turn(self) -> bool:
        return self.state != self.IDLE

    def _turn_silence_ms(self) -> int:
        return (
            self.min_silence_ms
            if self.expect_complete
            else max(self.max_silence_ms, self.min_silence_ms)
        )

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Consume samples; return the events they caused, in order."""
        self.pos += len(samples)
        buf = np.concatenate((self._carry, samples)) if len(self._carry) else samples
        n_frames = len(buf) // self.frame
        events: list[VadEvent] = []
        for i in range(n_frames):
            chunk = buf[i * self.frame : (i + 1) * self.frame]
            self._frame(rms_dbfs(chunk) >= self.threshold, events)
            self._frame_pos += self.frame
        self._carry = np.array(buf[n_frames * self.frame :], dtype=np.int16)
        return events

    def idle(self, ms: float) -> list[VadEvent]:
        """No audio arrived for ``ms`` of wall time: count it as silence inside a turn."""
        events: list[VadEvent] = []
        if self.state != self.IDLE:
            self._run_samples = 0
            self._silence(ms, events)
        return events

    def _frame(self, voiced: bool, events: list[VadEvent]) -> None:
        frame_ms = 1000.0 * self.frame / self.rate
        if voiced:
            if self._run_samples == 0:
                self._run_start = self._frame_pos
            self._run_samples += self.frame
            self._silence_ms = 0.0
            self._last_voiced_end = self._frame_pos + self.frame
            if self.state != self.IDLE:
                self.speech_samples += self.frame
            started = self._run_samples * 1000 >= self.start_ms * self.rate
            if self.state != self.SPEAKING and started:
                if self.state == self.IDLE:
                    preroll = self.preroll_ms * self.rate // 1000
                    self._turn_start = max(self._run_start - preroll, self._prev_turn_end, 0)
                    self.speech_samples = self._run_samples
                self.state = self.SPEAKING
                events.append(SpeechStarted(self._run_start))
            return
        self._run_samples = 0
        if self.state != self.IDLE:
            self._silence(frame_ms, events)

    def _silence(self, ms: float, events: list[VadEvent]) -> None:
        self._silence_ms += ms
        end_ms = self._turn_silence_ms()
        if self.state == self.SPEAKING and self._silence_ms >= min(self.hangover_ms, end_ms):
            self.state = self.PAUSED
            events.append(SpeechStopped(self._last_voiced_end))
        if self.state == self.PAUSED and self._silence_ms >= end_ms:
            tail = self.preroll_ms * self.rate // 1000
            end = min(self._last_voiced_end + tail, self.pos)
            events.append(TurnEnded(self._turn_start, end))
            self._prev_turn_end = end
            self.state = self.IDLE
            self._silence_ms = 0.0
            self.expect_complete = True
