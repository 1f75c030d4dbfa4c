"""Test helpers for the Agora transport: the ``cloud`` fixture (the published SDK wrapper of
every supported version over a fake native library, see sdist.py and native.py), a
recording TransportEvents and real speech (espeak-ng + sox).

Imported by tests as ``agora_double.harness`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from system_tools import require

from .native import Cloud
from .sdist import VERSIONS, installed

CHANNEL = "botrun-test"
APP_ID = "0123456789abcdef0123456789abcdef"
CERTIFICATE = "fedcba9876543210fedcba9876543210"
#: The native calls of a full teardown, in the order the wrapper makes them for botrun's
#: disconnect -> connection.release -> service.release.
RELEASE_ORDER = ["agora_rtc_conn_disconnect", "agora_rtc_conn_destroy", "agora_service_release"]


def released(trace: list[str]) -> list[str]:
    return [t for t in trace if t in RELEASE_ORDER]


@pytest.fixture(name="cloud", params=VERSIONS, ids=[f"sdk{v}" for v in VERSIONS])
def cloud_fixture(request: pytest.FixtureRequest) -> Iterator[Cloud]:
    """``import agora`` finds the published wrapper of one supported version, over a fake
    native library; yields the :class:`~native.Cloud` behind it (``cloud.version`` says which)."""
    cloud = Cloud()
    cloud.version = request.param
    with installed(request.param, cloud) as lib:
        cloud.lib = lib
        yield cloud


@dataclass
class RecordingEvents:
    """A TransportEvents like the bridge's: thread-safe entry points that hand off to the
    loop with call_soon_threadsafe; records what arrives and on which thread."""

    loop: asyncio.AbstractEventLoop
    joined: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)
    heard: dict[str, bytearray] = field(default_factory=dict)
    rates: set[int] = field(default_factory=set)
    ended_calls: list[tuple[str, str | None]] = field(default_factory=list)
    order: list[tuple[str, str]] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    fail_audio: bool = False

    def _note_thread(self) -> None:
        self.threads.add(threading.get_ident())

    def participant_joined(self, participant_id: str, name: str | None = None) -> None:
        self._note_thread()
        self.loop.call_soon_threadsafe(self._joined, participant_id)

    def participant_updated(self, participant_id: str, name: str | None = None) -> None:
        self._note_thread()

    def participant_left(self, participant_id: str, reason: str = "") -> None:
        self._note_thread()
        self.loop.call_soon_threadsafe(self._left, participant_id, reason)

    def audio(self, participant_id: str, pcm: bytes, sample_rate: int) -> None:
        self._note_thread()
        if self.fail_audio:
            raise RuntimeError("bridge bug (simulated)")
        assert isinstance(pcm, bytes)
        self.loop.call_soon_threadsafe(self._audio, participant_id, pcm, sample_rate)

    def ended(self, reason: str, error: str | None = None) -> None:
        self._note_thread()
        self.loop.call_soon_threadsafe(self.ended_calls.append, (reason, error))

    def _joined(self, pid: str) -> None:
        self.joined.append(pid)
        self.order.append(("joined", pid))

    def _left(self, pid: str, reason: str) -> None:
        self.left.append((pid, reason))
        self.order.append(("left", pid))

    def _audio(self, pid: str, pcm: bytes, rate: int) -> None:
        if pid not in self.heard:
            self.order.append(("audio", pid))
        self.heard.setdefault(pid, bytearray()).extend(pcm)
        self.rates.add(rate)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` on the loop (not a timing assert: a generous upper bound)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def speech_pcm16k(text: str, workdir: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 16 kHz mono PCM16 samples (sox converts)."""
    espeak, sox = require("espeak-ng"), require("sox")
    workdir.mkdir(parents=True, exist_ok=True)
    stem = workdir / f"s{abs(hash(text))}"
    wav, raw = stem.with_suffix(".wav"), stem.with_suffix(".raw")
    subprocess.run([espeak, "-v", "en-us", "-w", str(wav), text], check=True, capture_output=True)
    subprocess.run(
        [
            sox,
            str(wav),
            "-r",
            "16000",
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            "-t",
            "raw",
            str(raw),
        ],
        check=True,
        capture_output=True,
    )
    return np.frombuffer(raw.read_bytes(), dtype="<i2").copy()


def best_correlation(segment: np.ndarray, recording: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``segment`` inside ``recording`` (1.0 = the same
    waveform somewhere in the recording)."""
    from scipy.signal import correlate

    ref = segment.astype(np.float64)
    rec = recording.astype(np.float64)
    if len(rec) < len(ref):
        return 0.0
    c = correlate(rec, ref, mode="valid", method="fft")
    lag = int(np.argmax(np.abs(c)))
    window = rec[lag : lag + len(ref)]
    denom = np.sqrt(np.dot(ref, ref) * np.dot(window, window)) or 1.0
    return float(c[lag] / denom)
