"""The floor any Python bridge pays: N sessions that only send audio to the agent.

Each session is one ``websockets`` client connection (opened as botrun's agent client opens
it: no compression) that sends one ``input.audio`` message every 20 ms: 20 ms of PCM16 at
24 kHz, base64 in JSON, encoded by :func:`botrun.core.protocol.encode_input_audio` and sent
as a text frame, exactly as the bridge's client sends it. Sends follow an absolute 20 ms
schedule per session, each session with its own random phase (calls start at random
moments). Nothing else happens: no
meeting SDK, no resampling, no mixing, no reading from the agent. The receiving end is a
sink in ANOTHER process (this script with ``--sink``) that reads and discards every
message, so only the sending side is measured.

Printed: CPU of this process per session, in % of one core (process CPU time / wall / N
over the measured window), with the machine's load average. benchmarks/bridge.py runs the
same measurement in its own run and prints the bridge's net CPU per session as a multiple
of this floor (goal: at most 2x).

Run: ``.venv/bin/python benchmarks/ws_floor.py [--sessions 50] [--seconds 10]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

AGENT_RATE = 24000
FRAME_MS = 20


@dataclass(frozen=True)
class Floor:
    sessions: int
    seconds: float
    cpu_pct_per_session: float  # % of one core
    messages: int
    late_sends: int  # sends that started more than one frame behind their schedule
    load_before: float
    load_after: float

    def describe(self) -> str:
        return (
            f"ws floor: {self.sessions} sessions sending a {FRAME_MS} ms input.audio every "
            f"{FRAME_MS} ms to a sink process, {self.seconds:.0f} s: "
            f"{self.cpu_pct_per_session:.3f} % of a core per session "
            f"({self.messages} messages, {self.late_sends} sent over a frame late; "
            f"load average {self.load_before:.2f} -> {self.load_after:.2f})"
        )


# ---------------------------------------------------------------------- sink (other process)
async def _sink() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def drain(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(drain, "127.0.0.1", 0, compression=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Event().wait()


def start_sink() -> tuple[subprocess.Popen[str], str]:
    """Start the sink process; returns it and its URL."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--sink"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("ws://"):
        proc.kill()
        raise RuntimeError(f"ws sink did not start: {proc.communicate(timeout=10)[1]}")
    return proc, url


# ---------------------------------------------------------------------- senders (this process)
def frames() -> list[bytes]:
    """A few distinct 20 ms frames of speech-loud noise at 24 kHz."""
    rng = np.random.default_rng(3)
    n = AGENT_RATE * FRAME_MS // 1000
    return [(rng.standard_normal(n) * 3000).astype("<i2").tobytes() for _ in range(16)]


async def _sender(
    url: str, phase_s: float, pcm: list[bytes], stop: asyncio.Event, counts: list[int]
) -> None:
    from websockets.asyncio.client import connect

    from botrun.core.protocol import encode_input_audio

    async with connect(url, compression=None, max_size=None) as ws:
        period = FRAME_MS / 1000
        t0 = time.monotonic() + phase_s
        k = 0
        while not stop.is_set():
            delay = t0 + k * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -period:
                counts[1] += 1
            await ws.send(encode_input_audio(pcm[k % len(pcm)]), text=True)
            counts[0] += 1
            k += 1


async def measure_floor(sessions: int, seconds: float, url: str | None = None) -> Floor:
    """Run the floor in this process's event loop (the sink in its own process, started
    here unless ``url`` names one) and return the figures."""
    proc = None
    if url is None:
        proc, url = await asyncio.to_thread(start_sink)
    try:
        pcm = frames()
        stop = asyncio.Event()
        counts = [0, 0]  # messages sent, late sends
        rng = np.random.default_rng(5)
        tasks = [
            asyncio.create_task(_sender(url, rng.uniform(0, FRAME_MS / 1000), pcm, stop, counts))
            for _ in range(sessions)
        ]
        await asyncio.sleep(1.0)  # connected and in step
        for t in tasks:
            if t.done():
                t.result()  # a failed connection: say so
        load0 = os.getloadavg()[0]
        m0, late0 = counts
        c0, w0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        m1, late1 = counts
        stop.set()
        await asyncio.gather(*tasks)
        return Floor(
            sessions=sessions,
            seconds=wall,
            cpu_pct_per_session=100 * cpu / wall / sessions,
            messages=m1 - m0,
            late_sends=late1 - late0,
            load_before=load0,
            load_after=os.getloadavg()[0],
        )
    finally:
        if proc is not None:
            proc.kill()
            await asyncio.to_thread(proc.wait)


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=50, help="sending sessions (default 50)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds (default 10)")
    p.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.sink:
        asyncio.run(_sink())
        return
    if args.sessions < 1 or args.seconds <= 0:
        p.error("--sessions must be >= 1 and --seconds > 0")
    print(f"machine: {os.cpu_count()} cores")
    print(asyncio.run(measure_floor(args.sessions, args.seconds)).describe())


if __name__ == "__main__":
    main()
