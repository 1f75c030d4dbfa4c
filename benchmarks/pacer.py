"""Benchmark the OutboundPacer: stale audio after flush() and chunk write-time jitter.

Sinks measured (16 kHz, 20 ms chunks, max_ahead 2):
* "sleep-blocking": returns after the chunk's duration, like Daily's blocking write_frames;
* "returns-at-once": like Agora's push (played out in real time by a model of the SDK);
* "daily CustomAudioSource": the real daily-python source with blocking write_frames,
  when daily-python is installed (it paces in real time offline).

Stale audio: a reply is playing and flush() is called at a random moment; stale = audio that
still reaches the listener afterwards (the rest of the chunk playing, what was already inside
the sink, and anything written later), from the sink's own timestamps.
Jitter: the spread of the intervals between consecutive chunk writes during steady playback,
quiet and with a CPU-bound Python thread competing for the GIL. The sleep-blocking model has
zero slack (a write returns exactly when its chunk has played), so with a busy GIL each
late wake-up becomes a gap and intervals drift long; the real Daily source does not show
this drift.

Run: ``.venv/bin/python benchmarks/pacer.py``
"""

from __future__ import annotations

import itertools
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable

from botrun.core.audio.pacer import OutboundPacer

RATE = 16000
CHUNK_MS = 20
FLUSH_TRIALS = 25
JITTER_SECONDS = 2.0


class TimedSink:
    """Wraps a write function; records (start, end) of every call and what was played when."""

    def __init__(self, write: Callable[[bytes], object], blocking: bool) -> None:
        self.write = write
        self.blocking = blocking
        self.spans: list[tuple[float, float]] = []

    def __call__(self, chunk: bytes) -> None:
        start = time.monotonic()
        self.write(chunk)
        self.spans.append((start, time.monotonic()))

    def stale_after(self, t_flush: float) -> float:
        """Milliseconds of audio heard after ``t_flush``."""
        chunk_s = CHUNK_MS / 1000
        heard_until = 0.0
        stale = 0.0
        for start, end in self.spans:
            if self.blocking:  # the chunk plays while the call blocks
                play_start, play_end = end - chunk_s, end
            else:  # the SDK queues it and plays queued audio back to back
                play_start = max(heard_until, start)
                play_end = play_start + chunk_s
            heard_until = play_end
            stale += max(0.0, play_end - max(play_start, t_flush))
        return stale * 1000


class RealTimeDevice:
    """A blocking sink like Daily's write_frames: the device plays at a fixed rate and a
    write returns once its chunk has played (sleeping to an absolute deadline, so a late
    wake-up does not slow the device down)."""

    def __init__(self) -> None:
        self.played_until = 0.0

    def __call__(self, chunk: bytes) -> None:
        self.played_until = max(self.played_until, time.monotonic()) + len(chunk) / 2 / RATE
        delay = self.played_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def instant_write(chunk: bytes) -> None:
    return None


def daily_write() -> Callable[[bytes], object] | None:
    """A blocking write into a real daily-python CustomAudioSource, or None if unavailable."""
    try:
        from botrun.transports.daily import sdk

        daily = sdk.ensure_init()
    except Exception:
        try:
            import daily  # type: ignore[import-not-found]

            daily.Daily.init(worker_threads=2, log_level=daily.LogLevel.Off)
        except Exception:
            return None
    source = daily.CustomAudioSource(RATE, 1)
    daily_write.source = source  # type: ignore[attr-defined]  # alive until process exit
    return source.write_frames


def measure_stale(write: Callable[[bytes], object], blocking: bool) -> list[float]:
    results = []
    rng = random.Random(5)
    for _ in range(FLUSH_TRIALS):
        sink = TimedSink(write, blocking)
        pacer = OutboundPacer(sink, RATE, chunk_ms=CHUNK_MS, max_ahead=2)
        pacer.put(bytes(RATE * 2))  # a 1 s reply
        pacer.start()
        time.sleep(0.1 + rng.random() * 0.2)
        t_flush = time.monotonic()
        pacer.flush()
        time.sleep(0.08)
        pacer.close()
        results.append(sink.stale_after(t_flush))
    return results


def busy_python(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(10000):
            x += i * i


def measure_jitter(write: Callable[[bytes], object], blocking: bool, busy: bool) -> list[float]:
    """Deviation (ms) of each write interval from the chunk duration, steady state."""
    sink = TimedSink(write, blocking)
    pacer = OutboundPacer(sink, RATE, chunk_ms=CHUNK_MS, max_ahead=2)
    stop = threading.Event()
    worker = threading.Thread(target=busy_python, args=(stop,), daemon=True)
    if busy:
        worker.start()
    pacer.put(bytes(int(RATE * 2 * JITTER_SECONDS)))
    pacer.start()
    n = int(JITTER_SECONDS * 1000 / CHUNK_MS)
    while pacer.written_chunks < n:
        time.sleep(0.05)
    pacer.close()
    stop.set()
    starts = [s for s, _ in sink.spans][3:]  # skip the initial max_ahead burst
    return [(b - a) * 1000 - CHUNK_MS for a, b in itertools.pairwise(starts)]


def describe(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"mean {statistics.mean(values):6.2f}  sd {statistics.pstdev(values):5.2f}  "
        f"p99 {p99:6.2f}  max {max(values):6.2f}"
    )


def main() -> int:
    sinks: list[tuple[str, Callable[[bytes], object], bool]] = [
        ("sleep-blocking (Daily-like)", RealTimeDevice(), True),
        ("returns-at-once (Agora-like)", instant_write, False),
    ]
    real = daily_write()
    if real is not None:
        sinks.append(("daily CustomAudioSource", real, True))
    else:
        print("daily-python not importable: skipping the real CustomAudioSource")
    print(f"16 kHz, {CHUNK_MS} ms chunks, max_ahead 2 (bound: {2 * CHUNK_MS} ms stale)")
    print(f"\n== stale audio after flush(), {FLUSH_TRIALS} random flush moments (ms) ==")
    for name, write, blocking in sinks:
        print(f"  {name:30s} {describe(measure_stale(write, blocking))}")
    print("\n== write interval minus 20 ms, steady playback (ms) ==")
    for name, write, blocking in sinks:
        for busy in (False, True):
            label = f"{name}{', busy GIL' if busy else ''}"
            print(f"  {label:40s} {describe(measure_jitter(write, blocking, busy))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
