"""Many calls' pacers in one process: a thread each against one shared clock thread.

N pacers with sinks that return at once (like Agora's push), 16 kHz, 10 ms chunks,
max_ahead 2 (the Transport defaults). One feeder thread plays the agent for all of them: every
call gets a 2 s reply in 50 ms pieces sent in real time (as the simulator does), then 1 s of
quiet, each call at its own phase. Optionally a CPU-bound Python thread stands in for a busy
event loop, competing for the GIL.

Printed for each way, alternating (so both see the same machine): process CPU per call in %
of one core (the feeder's share is the same in both), voluntary + involuntary context
switches per second, pacer underruns and the gaps the sinks' own timelines show (a write
more than 5 ms after the sink ran dry inside a reply), and the shared/thread ratios.

Run: ``.venv/bin/python benchmarks/pacer_fleet.py [--calls 50] [--seconds 6] [--rounds 2]
[--busy]``
"""

from __future__ import annotations

import argparse
import random
import resource
import threading
import time

from botrun.core.audio.pacer import OutboundPacer

RATE = 16000
PIECE_MS = 50
REPLY_S = 2.0
QUIET_S = 1.0


class Sink:
    """Returns at once; keeps the arrival time and length of every write."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, int]] = []

    def __call__(self, chunk: bytes) -> None:
        self.writes.append((time.monotonic(), len(chunk)))

    def gaps(self) -> int:
        n, playing_until = 0, None
        for t, size in self.writes:
            if playing_until is not None and 0.005 < t - playing_until < QUIET_S * 0.8:
                n += 1
            start = t if playing_until is None else max(t, playing_until)
            playing_until = start + size / 2 / RATE
        return n


def busy(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(2000):
            x += i * i


def run(calls: int, seconds: float, shared: bool, use_busy: bool) -> dict[str, float]:
    sinks = [Sink() for _ in range(calls)]
    pacers = [
        OutboundPacer(s, RATE, chunk_ms=10, max_ahead=2, prebuffer_ms=60, shared=shared)
        for s in sinks
    ]
    for p in pacers:
        p.start()
    piece = bytes(RATE * PIECE_MS // 1000 * 2)
    rng = random.Random(1)
    phases = [rng.uniform(0, REPLY_S + QUIET_S) for _ in range(calls)]
    stop = threading.Event()
    hog = threading.Thread(target=busy, args=(stop,), daemon=True)
    if use_busy:
        hog.start()
    cycle = REPLY_S + QUIET_S
    pieces_per_reply = int(REPLY_S * 1000 / PIECE_MS)
    # every (time, call) a piece is due, in order
    schedule = sorted(
        (phases[c] + k * cycle + j * PIECE_MS / 1000, c)
        for c in range(calls)
        for k in range(int(seconds / cycle) + 2)
        for j in range(pieces_per_reply)
    )
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0, t0 = time.process_time(), time.monotonic()
    for at, c in schedule:
        if at > seconds:
            break
        delay = t0 + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        pacers[c].put(piece)
    wall = time.monotonic() - t0
    cpu = time.process_time() - c0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    if use_busy:
        hog.join()
    for p in pacers:
        p.close()
    return {
        "cpu_pct": 100 * cpu / wall / calls,
        "switches_s": (r1.ru_nvcsw + r1.ru_nivcsw - r0.ru_nvcsw - r0.ru_nivcsw) / wall,
        "underruns": sum(p.underruns for p in pacers),
        "gaps": sum(s.gaps() for s in sinks),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--busy", action="store_true", help="a CPU-bound thread competes")
    args = p.parse_args()
    print(
        f"{args.calls} pacers, 10 ms chunks, replies of {REPLY_S:g} s in {PIECE_MS} ms "
        f"real-time pieces, {args.seconds:g} s a run"
        + (", a CPU-bound Python thread competing" if args.busy else "")
    )
    for r in range(args.rounds):
        own = run(args.calls, args.seconds, False, args.busy)
        shared = run(args.calls, args.seconds, True, args.busy)
        for name, m in (("a thread each", own), ("one shared  ", shared)):
            print(
                f"round {r + 1} {name}: CPU {m['cpu_pct']:.3f} % per call, "
                f"{m['switches_s']:.0f} context switches/s, underruns {m['underruns']:.0f}, "
                f"gaps {m['gaps']:.0f}"
            )
        print(
            f"round {r + 1} shared / thread each: CPU {shared['cpu_pct'] / own['cpu_pct']:.2f}x, "
            f"context switches {shared['switches_s'] / max(own['switches_s'], 1):.2f}x"
        )


if __name__ == "__main__":
    main()
