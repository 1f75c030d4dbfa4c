"""The SDK-thread -> event-loop hand-off of audio frames: one ``call_soon_threadsafe`` per
frame (the bridge before issue 15) against :class:`botrun.core.handoff.Handoff` (every call's
frames taken by the loop on one 10 ms clock).

N sessions, each with a thread of its own (like a meeting SDK) that delivers P participant
frames every 20 ms (each session at its own random phase); the loop-side consumer does
nothing but count. Printed: process CPU per session in % of one core for each way (and for
the delivering threads alone, to subtract), and the consumer calls per frame.

Run: ``.venv/bin/python benchmarks/handoff.py [--sessions 50] [--participants 2] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable

from botrun.core.handoff import Handoff

FRAME = bytes(640)


def deliver(put: Callable[[str], None], participants: int, stop: threading.Event) -> None:
    pids = [f"p{i}" for i in range(participants)]
    t0 = time.monotonic() + random.random() * 0.02
    k = 0
    while not stop.is_set():
        delay = t0 + k * 0.02 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for pid in pids:
            put(pid)
        k += 1


async def measure(
    way: str, sessions: int, participants: int, seconds: float
) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    frames = 0
    wakeups = 0

    def one(pid: str, pcm: bytes) -> None:
        nonlocal frames, wakeups
        frames += 1
        wakeups += 1

    def many(items: list[tuple[str, bytes]]) -> None:
        nonlocal frames, wakeups
        frames += len(items)
        wakeups += 1

    puts: list[Callable[[str], None]] = []
    for _ in range(sessions):
        if way == "nothing (baseline)":

            def put(pid: str) -> None:
                bytes(FRAME)

        elif way == "call_soon_threadsafe":

            def put(pid: str) -> None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(one, pid, bytes(FRAME))

        else:
            h: Handoff[tuple[str, bytes]] = Handoff(loop, many)

            def put(pid: str, h: Handoff[tuple[str, bytes]] = h) -> None:
                h.put((pid, bytes(FRAME)))

        puts.append(put)
    stop = threading.Event()
    threads = [
        threading.Thread(target=deliver, args=(p, participants, stop), daemon=True) for p in puts
    ]
    for t in threads:
        t.start()
    await asyncio.sleep(0.5)
    c0, w0, f0, k0 = time.process_time(), time.perf_counter(), frames, wakeups
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n_frames, n_wake = frames - f0, wakeups - k0
    stop.set()
    for t in threads:
        t.join(1)
    return 100 * cpu / wall / sessions, n_wake / max(1, n_frames)


async def main(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    print(
        f"{args.sessions} sessions x {args.participants} participants, 20 ms frames, "
        f"{args.seconds:g} s each; load average {load:.2f}"
    )
    base = 0.0
    for way in ("nothing (baseline)", "call_soon_threadsafe", "Handoff", "nothing (baseline)"):
        cpu, per = await measure(way, args.sessions, args.participants, args.seconds)
        if way.startswith("nothing"):
            base = cpu if not base else (base + cpu) / 2
            print(f"{way:22s} {cpu:.3f} % of a core per session (the delivering threads alone)")
        else:
            print(
                f"{way:22s} {cpu:.3f} % of a core per session, {per:.2f} consumer calls per frame"
            )
    print(f"(net of the baseline: subtract {base:.3f} %)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--participants", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(p.parse_args()))
