"""Real speech for tests: sentences spoken by espeak-ng, converted to 16 kHz mono PCM16."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
from system_tools import require

from botrun.transports.wav.wavio import read_wav_mono16


def speak(
    text: str, path: Path, rate: int = 16000, voice: str = "en-us", pad_s: float = 0.0
) -> np.ndarray:
    """Write ``text`` spoken by espeak-ng to ``path`` (PCM16 mono at ``rate``, plus ``pad_s``
    of trailing silence) and return the samples."""
    exe = require("espeak-ng")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(
        [exe, "-v", voice, "-s", "165", "-w", str(raw), text], check=True, capture_output=True
    )
    pcm = read_wav_mono16(raw, rate) + b"\0\0" * int(pad_s * rate)
    raw.unlink()
    write_wav(path, pcm, rate)
    return np.frombuffer(pcm, dtype="<i2")


def write_wav(path: Path, pcm: bytes, rate: int, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(pcm)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def align(reference: np.ndarray, recording: np.ndarray) -> tuple[int, float]:
    """Lag (samples, may be negative) such that ``recording[lag + i] ~ reference[i]``, found
    by cross-correlation, and the normalised correlation of the overlap (1.0 = same shape)."""
    from scipy.signal import correlate

    ref = reference.astype(np.float64)
    rec = recording.astype(np.float64)
    if not len(ref) or not len(rec):
        return 0, 0.0
    c = correlate(rec, ref, mode="full", method="fft")
    lag = int(np.argmax(np.abs(c))) - (len(ref) - 1)
    a, b = overlap(ref, rec, lag)
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b)) or 1.0
    return lag, float(np.dot(a, b) / denom)


def overlap(
    reference: np.ndarray, recording: np.ndarray, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``reference`` and ``recording`` that line up at ``lag``."""
    start = max(0, -lag)
    stop = min(len(reference), len(recording) - lag)
    if stop <= start:
        return reference[:0], recording[:0]
    return reference[start:stop], recording[start + lag : stop + lag]


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    err = ref - test.astype(np.float64)
    return float(10 * np.log10(np.dot(ref, ref) / max(np.dot(err, err), 1e-9)))


def blocks_found(
    reference: np.ndarray, recording: np.ndarray, block: int, min_rms: float = 300.0
) -> list[tuple[int, int, float]]:
    """Where each voiced ``block``-sample piece of ``reference`` lies in ``recording``:
    ``(start in reference, lag, normalised correlation)`` per piece, quiet pieces skipped.

    Why piecewise: under CPU load a starved delivery thread or event loop can leave a gap in
    what the agent hears (the mixer lines a late participant up by arrival time; after 300 ms
    of nothing the bridge feeds silence), which shifts everything after it; one correlation
    over the whole utterance then only finds the longest unbroken stretch. Piece by piece,
    each stretch is checked on its own."""
    from scipy.signal import correlate

    rec = recording.astype(np.float64)
    # energy of every block-long window of the recording, for a normalised correlation (a
    # raw one favours loud stretches and misplaces quiet pieces)
    energy = np.concatenate([[0.0], np.cumsum(rec * rec)])
    window = energy[block:] - energy[:-block]
    out = []
    for start in range(0, len(reference) - block + 1, block):
        piece = reference[start : start + block].astype(np.float64)
        if np.sqrt(np.mean(piece**2)) < min_rms or len(rec) < block:
            continue
        c = correlate(rec, piece, mode="valid", method="fft")
        norm = c / np.sqrt(np.maximum(window * np.dot(piece, piece), 1e-9))
        pos = int(np.argmax(norm))
        out.append((start, pos - start, float(norm[pos])))
    return out


def assert_found_in_order(
    reference: np.ndarray,
    recording: np.ndarray,
    block: int,
    min_corr: float,
    max_missed: float = 0.25,
) -> None:
    """Every voiced piece of ``reference`` is in ``recording`` (correlation above
    ``min_corr``), in order and never earlier than the piece before it: nothing dropped,
    repeated or distorted. Silence inserted between pieces only delays what follows; a piece
    that straddles such an insertion matches less well, so up to ``max_missed`` of the
    pieces may fall below ``min_corr``."""
    found = blocks_found(reference, recording, block)
    assert found, "no voiced audio in the reference"
    good = [(s, lag) for s, lag, c in found if c >= min_corr]
    missed = 1 - len(good) / len(found)
    assert missed <= max_missed, f"{missed:.0%} of the pieces not found: {found}"
    from itertools import pairwise

    lags = [lag for _, lag in good]  # (a one-sample wobble is the resampler's, not a drop)
    assert all(b >= a - 1 for a, b in pairwise(lags)), f"out of order: {found}"
