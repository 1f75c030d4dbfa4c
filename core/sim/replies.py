"""Reply audio and its word timing: the user's utterance echoed back, a speech-like tone whose
duration matches the text, a WAV file, or silence.

The echo is the exact received PCM (sample for sample), so a test can compare what a bot sent
with what it got back. Tones are built to look like speech to an energy detector: a voiced
harmonic signal (about 140 Hz) shaped word by word, with short gaps between words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TONE_F0_HZ = 140.0
TONE_LEVEL = 0.25  # peak amplitude, full scale = 1.0 (about -18 dBFS RMS while voiced)
MIN_TONE_MS = 200


@dataclass(frozen=True)
class Word:
    text: str
    start_ms: int
    end_ms: int


@dataclass
class ReplyPlan:
    """Everything one reply will send: audio (int16 at the output rate), the words with their
    timing, and an optional tool call made at the start."""

    text: str
    audio: np.ndarray
    words: list[Word]
    final_transcript: bool = True
    tool_call: dict[str, Any] | None = None
    kind: str = "tone"
    meta: dict[str, Any] = field(default_factory=dict)

    def duration_ms(self, rate: int) -> int:
        return len(self.audio) * 1000 // rate


def word_timings(text: str, duration_ms: int) -> list[Word]:
    """Spread the words of ``text`` over ``duration_ms`` in proportion to their length (one
    extra character per word stands for the gap after it)."""
    words = text.split()
    if not words or duration_ms <= 0:
        return []
    total = sum(len(w) + 1 for w in words)
    out, used = [], 0
    for w in words:
        start = used * duration_ms // total
        used += len(w) + 1
        end = max(start + 1, (used - 1) * duration_ms // total)
        out.append(Word(w, start, end))
    return out


def tone_for_text(text: str, rate: int, ms_per_char: int) -> tuple[np.ndarray, list[Word]]:
    """A speech-like tone lasting ``len(text) * ms_per_char`` (at least ``MIN_TONE_MS``), and
    the word timing that matches it."""
    duration_ms = max(MIN_TONE_MS, len(text) * ms_per_char)
    n = duration_ms * rate // 1000
    words = word_timings(text, duration_ms) or [Word("", 0, duration_ms)]
    t = np.arange(n) / rate
    voiced = sum(np.sin(2 * np.pi * TONE_F0_HZ * k * t) / k for k in (1, 2, 3, 4))
    envelope = np.zeros(n)
    for w in words:
        a, b = w.start_ms * rate // 1000, min(n, w.end_ms * rate // 1000)
        if b > a:
            envelope[a:b] = np.hanning(b - a) ** 0.5
    peak = float(np.max(np.abs(voiced))) or 1.0
    audio = np.round(voiced / peak * envelope * TONE_LEVEL * 32767).astype(np.int16)
    return audio, [w for w in words if w.text]


def echo_plan(utterance: np.ndarray, rate: int, text: str) -> ReplyPlan:
    """The user's own audio, unchanged, with ``text`` spread over it."""
    duration_ms = len(utterance) * 1000 // rate
    return ReplyPlan(
        text, np.asarray(utterance, dtype=np.int16), word_timings(text, duration_ms), kind="echo"
    )


def tone_plan(text: str, rate: int, ms_per_char: int) -> ReplyPlan:
    audio, words = tone_for_text(text, rate, ms_per_char)
    return ReplyPlan(text, audio, words, kind="tone")


def audio_plan(audio: np.ndarray, rate: int, text: str, kind: str) -> ReplyPlan:
    """Given audio (a WAV reply, or silence) with ``text`` spread over it."""
    duration_ms = len(audio) * 1000 // rate
    return ReplyPlan(
        text, np.asarray(audio, dtype=np.int16), word_timings(text, duration_ms), kind=kind
    )


def spoken_text(words: list[Word], sent_ms: int) -> str:
    """The part of the reply that was heard when playback stopped at ``sent_ms``: every word
    that had started."""
    return " ".join(w.text for w in words if w.start_ms < sent_ms)
