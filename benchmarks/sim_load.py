"""Load test for the voice-agent simulator: N concurrent sessions on loopback.

The simulator runs in its own process (``botrun agent-sim``) so its CPU time is measured apart
from the clients. Each client streams a voiced utterance in real time (20 ms chunks, like the
bridge), waits for the echoed reply, checks it is sample-exact, and ends the session.

    .venv/bin/python benchmarks/sim_load.py --sessions 100

Prints errors, lost audio, connect and turn latencies, and the simulator's CPU per session.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import websockets

RATE = 24000
CHUNK_MS = 20


@dataclass
class Result:
    ok: bool = False
    error: str = ""
    connect_s: float = 0.0
    turn_latency_s: float = 0.0  # end of speech sent -> first reply.audio
    sent_bytes: int = 0
    echo_exact: bool = False
    session_errors: list[str] = field(default_factory=list)


def speech(seed: int, speech_ms: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(speech_ms * RATE // 1000) / RATE
    f0 = 120 + 80 * rng.random()
    voiced = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    voiced = voiced / np.max(np.abs(voiced)) * 0.3 * 32767
    lead, tail = np.zeros(RATE // 5), np.zeros(RATE * 7 // 10)
    return np.concatenate((lead, voiced, tail)).astype(np.int16)


async def session(url: str, seed: int, speech_ms: int, min_silence: int) -> Result:
    res = Result()
    audio = speech(seed, speech_ms)
    res.sent_bytes = audio.nbytes
    t0 = time.perf_counter()
    try:
        async with websockets.connect(url, max_size=2**24) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "session.update",
                        "session": {"input": {"turn_detection": {"min_silence": min_silence}}},
                    }
                )
            )
            while json.loads(await ws.recv())["type"] != "session.ready":
                pass
            res.connect_s = time.perf_counter() - t0
            echoed = bytearray()
            first_audio: float | None = None
            done = asyncio.Event()

            async def reader() -> None:
                nonlocal first_audio
                async for msg in ws:
                    ev = json.loads(msg)
                    if ev["type"] == "reply.audio":
                        first_audio = first_audio or time.perf_counter()
                        echoed.extend(base64.b64decode(ev["data"]))
                    elif ev["type"] == "reply.done":
                        done.set()
                    elif ev["type"] == "session.error":
                        res.session_errors.append(ev["code"])
                    elif ev["type"] == "session.ended":
                        return

            task = asyncio.create_task(reader())
            step = CHUNK_MS * RATE // 1000
            start = time.perf_counter()
            speech_end = int(np.flatnonzero(audio)[-1])
            speech_end_sent = 0.0
            for i, off in enumerate(range(0, len(audio), step)):
                chunk = audio[off : off + step].tobytes()
                await ws.send(
                    json.dumps({"type": "input.audio", "audio": base64.b64encode(chunk).decode()})
                )
                if off <= speech_end < off + step:
                    speech_end_sent = time.perf_counter()
                await asyncio.sleep(
                    max(0.0, start + (i + 1) * CHUNK_MS / 1000 - time.perf_counter())
                )
            await asyncio.wait_for(done.wait(), 30)
            res.turn_latency_s = (first_audio or speech_end_sent) - speech_end_sent
            await ws.send(json.dumps({"type": "session.end"}))
            await asyncio.wait_for(task, 10)
            nonzero = np.flatnonzero(audio)
            got = np.frombuffer(bytes(echoed), dtype="<i2")
            # the echo is a contiguous slice of what was sent, covering all of the speech
            raw = audio.tobytes()
            pos = raw.find(bytes(echoed))
            res.echo_exact = (
                len(got) > 0
                and pos >= 0
                and pos % 2 == 0
                and pos // 2 <= nonzero[0]
                and pos // 2 + len(got) > nonzero[-1]
            )
            res.ok = res.echo_exact and not res.session_errors
    except Exception as exc:  # a benchmark reports failures, it does not stop on them
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


async def run(args: argparse.Namespace) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "agent-sim",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--speed",
            str(args.speed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("ws://"):
        print("simulator did not start:", proc.communicate(timeout=10)[1])
        return 1
    wall0 = time.perf_counter()
    results = await asyncio.gather(
        *(session(url, i, args.speech_ms, args.min_silence) for i in range(args.sessions))
    )
    wall = time.perf_counter() - wall0
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_cpu = usage.ru_utime + usage.ru_stime
    me = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = me.ru_utime + me.ru_stime

    failed = [r for r in results if not r.ok]
    print(
        f"sessions: {args.sessions} concurrent, {args.speech_ms} ms of speech each, "
        f"speed {args.speed}x, wall {wall:.2f} s"
    )
    print(
        f"ok: {len(results) - len(failed)}  failed: {len(failed)}  "
        f"echo exact: {sum(r.echo_exact for r in results)}"
    )
    for r in failed[:5]:
        print("  failure:", r.error or f"errors={r.session_errors} echo_exact={r.echo_exact}")
    connect = [r.connect_s * 1000 for r in results if r.connect_s]
    turn = [r.turn_latency_s * 1000 for r in results if r.ok]
    print(f"connect->ready ms: median {statistics.median(connect):.1f}  p99 {pct(connect, 99):.1f}")
    if turn:
        designed = (args.min_silence + 300) / args.speed
        print(
            f"end of speech->first reply.audio ms: median {statistics.median(turn):.1f}  "
            f"p99 {pct(turn, 99):.1f}  (designed: {designed:.0f} = min_silence + 300 ms "
            f"think time; overhead p99 {pct(turn, 99) - designed:.1f})"
        )
    audio_s = sum(r.sent_bytes for r in results) / 2 / RATE
    print(
        f"simulator CPU: {sim_cpu:.2f} s for {audio_s:.0f} s of received audio "
        f"({100 * sim_cpu / wall / args.sessions:.2f} % of one core per session); "
        f"clients' CPU {client_cpu:.2f} s ({100 * client_cpu / wall:.0f} % of a core: near "
        "100 % means the latencies above measure the client, not the simulator)"
    )
    if "Traceback" in err:
        print("simulator stderr had a traceback:\n" + err)
        return 1
    return 0 if not failed else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--speech-ms", type=int, default=1500)
    p.add_argument("--min-silence", type=int, default=500)
    p.add_argument("--speed", type=float, default=1.0)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
