"""The event loop's inbound work per participant frame, without real time or sockets: a
steady figure for before/after comparisons on a loaded machine.

N real :class:`botrun.core.bridge.Bridge` objects, each with P listened participants (16 kHz,
20 ms frames: speech-like bursts and room tone), get their frames through the bridge's own
hand-off consumer (``Bridge.inbound.on_handoff``, core/routing.py), then the loop's inbound
batch at the end of each tick (``core/inbound_batch.py``: mixing, energy for attribution,
resampling, batching), and send the mixed 24 kHz frames to a stub agent client that only
keeps them. What is left out is the WebSocket send, which the floor (benchmarks/ws_floor.py)
pays too.

Printed: CPU microseconds per participant frame (process time; quote ratios between builds
measured in the same minute, the machine is shared), and the audio sent per session (a
check that the work was done). For instruction counts that do not depend on the machine's
load, run it under ``valgrind --tool=callgrind`` with a small ``--frames`` and compare the
totals of two builds.

Run: ``.venv/bin/python benchmarks/inbound_cpu.py [--sessions 50] [--participants 2]
[--frames 500]``
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np

from botrun.core.bridge import Bridge
from botrun.core.config import config_from_dict
from botrun.core.session import SessionState
from botrun.core.transport import Transport, TransportEvents

RATE = 16000
FRAME = RATE // 50  # 20 ms


class StubTransport(Transport):
    name = "stub"

    @property
    def bot_participant_id(self) -> str | None:
        return "bot"

    async def join(self, events: TransportEvents) -> None: ...

    async def leave(self) -> None: ...

    def write_audio(self, pcm: bytes) -> None: ...


class KeepingClient:
    """Stands in for the agent client: keeps the byte count of what it is sent."""

    def __init__(self) -> None:
        self.sent = 0
        self.state = SessionState({})

    def send_audio(self, pcm: bytes) -> None:
        self.sent += len(pcm)


def frames(seconds: float, seed: int) -> list[bytes]:
    """Alternating 1 s voiced bursts and 0.5 s of faint room tone, as 20 ms frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 120 + 60 * rng.random()
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3)) * 6000
    x = np.where((t % 1.5) < 1.0, x, rng.standard_normal(t.size) * 16)
    pcm = np.round(x).astype("<i2")
    return [pcm[i : i + FRAME].tobytes() for i in range(0, pcm.size - FRAME + 1, FRAME)]


async def run(sessions: int, participants: int, n_frames: int) -> tuple[float, list[int]]:
    loop = asyncio.get_running_loop()
    from botrun.core.inbound import InboundPath

    cfg = config_from_dict({"agent": {"greeting": ""}})
    bridges = []
    for _ in range(sessions):
        b = Bridge(StubTransport(), cfg)
        b.inbound._loop = loop
        b.inbound._inbound = InboundPath(chunk_ms=cfg.bridge.chunk_ms)
        b.client = KeepingClient()  # type: ignore[assignment]
        for p in range(participants):
            b._on_joined(f"p{p}", f"P{p}")
        bridges.append(b)
    audio = [frames(n_frames * 0.02 + 0.1, seed=p) for p in range(participants)]
    pids = [f"p{p}" for p in range(participants)]
    from botrun.core.audio.resampler import design

    design(RATE, 24000)  # the filter is designed once per process: not per-frame work
    try:  # the loop's inbound batch (core/inbound_batch.py), flushed after each tick
        from botrun.core.inbound_batch import batch_for

        flush = batch_for(loop).flush
    except ImportError:  # a build from before the batch: each call sends at once
        flush = None
    c0 = time.process_time()
    t0 = time.monotonic()
    for k in range(n_frames):  # one hand-off tick: every call's frames, then the batch
        now = t0 + k * 0.02
        for b in bridges:
            b.inbound.on_handoff([(pid, audio[p][k], RATE, now) for p, pid in enumerate(pids)])
        if flush is not None:
            flush()
    cpu = time.process_time() - c0
    for b in bridges:
        b.inbound.stop()
    return cpu, [b.client.sent for b in bridges]  # type: ignore[union-attr]


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--participants", type=int, default=2)
    p.add_argument("--frames", type=int, default=500, help="20 ms frames per participant")
    args = p.parse_args()
    cpu, sent = asyncio.run(run(args.sessions, args.participants, args.frames))
    n = args.sessions * args.participants * args.frames
    print(
        f"{args.sessions} sessions x {args.participants} participants x {args.frames} frames: "
        f"{cpu * 1e6 / n:.1f} us CPU per participant frame "
        f"({cpu * 1e6 / (args.sessions * args.frames):.1f} us per session per 20 ms); "
        f"sent {min(sent) / 48000:.2f}-{max(sent) / 48000:.2f} s of audio per session"
    )


if __name__ == "__main__":
    main()
