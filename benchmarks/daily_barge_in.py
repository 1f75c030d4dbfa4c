"""Stale bot audio after a barge-in with the real daily-python sinks (target <= 40 ms).

Daily cannot flush what it was given, so what still plays after ``pacer.flush()`` is the
audio already handed to ``write_frames``. With the real ``CustomAudioSource`` (which paces
blocking writes in real time even offline) this measures, per trial, how long after the
flush audio was still being written: the rest of the write in flight plus any write that
started afterwards. The virtual microphone accepts writes at once offline, so for it the
figure is the pacer's own model of what is inside the sink (``in_sink_ms``).

Run: .venv/bin/python benchmarks/daily_barge_in.py [--trials N]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np

from botrun.core.audio.pacer import OutboundPacer
from botrun.transports.daily.audio_out import CustomTrackSink, VirtualMicSink

RATE = 16000


class TimedSink:
    """Wraps a sink and records (start, end, bytes) of every write."""

    def __init__(self, sink: CustomTrackSink | VirtualMicSink) -> None:
        self.sink = sink
        self.writes: list[tuple[float, float, int]] = []
        self._lock = threading.Lock()

    def __call__(self, pcm: bytes) -> None:
        t0 = time.monotonic()
        self.sink.write(pcm)
        with self._lock:
            self.writes.append((t0, time.monotonic(), len(pcm)))

    def stale_after(self, t_flush: float) -> tuple[float, int]:
        """Seconds of writing after ``t_flush`` and the number of writes involved."""
        with self._lock:
            late = [(max(t0, t_flush), t1) for t0, t1, _ in self.writes if t1 > t_flush]
        return sum(t1 - t0 for t0, t1 in late), len(late)


def tone(seconds: float) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def trial(make_sink: type, speak_s: float) -> tuple[float, float, int]:
    timed = TimedSink(make_sink(RATE))
    pacer = OutboundPacer(timed, RATE, chunk_ms=20, max_ahead=2, name="bench-pacer")
    pacer.start()
    pacer.put(tone(2.0))
    time.sleep(speak_s)
    t_flush = time.monotonic()
    model_ms = pacer.in_sink_ms
    pacer.flush()
    time.sleep(0.15)
    pacer.close()
    timed.sink.close()
    stale_s, n = timed.stale_after(t_flush)
    return stale_s * 1000, model_ms, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    for name, cls in (("custom-track", CustomTrackSink), ("virtual-mic", VirtualMicSink)):
        results = [trial(cls, 0.3 + 0.013 * i) for i in range(args.trials)]
        stale = [r[0] for r in results]
        model = [r[1] for r in results]
        writes = [r[2] for r in results]
        print(
            f"{name:12s} stale written after flush: median {statistics.median(stale):5.1f} ms, "
            f"max {max(stale):5.1f} ms | pacer model in sink: median "
            f"{statistics.median(model):5.1f} ms, max {max(model):5.1f} ms | "
            f"writes overlapping the flush: max {max(writes)} (target <= 40 ms)"
        )


if __name__ == "__main__":
    main()
