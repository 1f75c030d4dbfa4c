"""Twilio calls through `botrun serve`: CPU per call with μ-law passed through vs transcoded,
and the stale audio after each barge-in as the marks bound it.

Runs the simulator (`botrun agent-sim`) and `botrun serve` (Twilio on) as processes of their
own, and N callers from this process with the fake Twilio of the tests (signed webhook,
Media Streams in real time: a sentence, the bot's echo, a second sentence over the echo).
Prints serve's CPU per call (% of one core) for each audio path, their ratio, and the
largest "stale audio after a clear" figure serve logged (clear sent -> its marks back: the
most the caller can have heard after the barge-in). Figures on a shared machine are noisy:
compare the two paths of one run, not runs with each other.

``--backend openai`` (or ``gemini``) runs the simulator speaking that protocol and serve on
that backend; the "passthrough" run is whatever serve chooses on its own (it logs the path:
μ-law passed through for a backend that takes ``audio/pcmu``, transcoded otherwise), the
"transcode" run forces transcoding (``[twilio] transcode = true``, the path OpenAI calls took
before they were passed through).

Run: .venv/bin/python benchmarks/twilio_calls.py [--calls 10] [--backend assemblyai]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

from botrun.core.audio.g711 import pcm16_to_ulaw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def voiced(ms: int, f0: float = 170.0) -> bytes:
    import numpy as np

    t = np.arange(ms * 8) / 8000
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    pcm = np.round(x / np.max(np.abs(x)) * 0.3 * 32767).astype("<i2").tobytes()
    return pcm16_to_ulaw(pcm)


SILENCE = b"\xff" * 8 * 1500  # 1.5 s


async def caller(tw: FakeTwilio) -> None:
    call, status, twiml = await tw.incoming_call()
    if status != 200:
        raise SystemExit(f"webhook answered {status}: {twiml}")
    stream = await tw.open_stream(call, twiml)
    await stream.speak(SILENCE + voiced(1500) + SILENCE)  # a turn; the echo follows
    await stream.speak(b"\xff" * 8 * 500 + voiced(800) + SILENCE)  # over the echo
    await stream.speak(SILENCE)
    await stream.stop()


async def run(
    mode: str, calls: int, tmp: Path, backend: str
) -> tuple[float, float, list[float], str]:
    exe = [sys.executable, "-m", "botrun.bots.cli"]
    sim_port, port = free_port(), free_port()
    public = f"http://127.0.0.1:{port}"
    cfg = tmp / f"{mode}.toml"
    cfg.write_text(
        f'[agent]\nbackend = "{backend}"\nurl = "ws://127.0.0.1:{sim_port}"\ngreeting = ""\n'
        f"[twilio]\ntranscode = {'true' if mode == 'transcode' else 'false'}\n"
    )
    log = tmp / f"{mode}.log"
    env = {
        **os.environ,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_URL": public,
        "TWILIO_API_URL": "http://127.0.0.1:9",
    }
    env.pop("DAILY_API_KEY", None)
    sim = await asyncio.create_subprocess_exec(
        *exe,
        "agent-sim",
        "--port",
        str(sim_port),
        "--protocol",
        backend,
        stdout=asyncio.subprocess.DEVNULL,
    )
    with log.open("w") as out:
        serve = await asyncio.create_subprocess_exec(
            *exe,
            "serve",
            "--port",
            str(port),
            "--config",
            str(cfg),
            "--max-calls",
            str(calls),
            "--log-level",
            "info",
            env=env,
            cwd=tmp,
            stdout=out,
            stderr=out,
        )
        try:
            while "listening on" not in log.read_text():
                await asyncio.sleep(0.1)
            async with FakeTwilio(public) as tw:
                c0, t0 = cpu_s(serve.pid), time.monotonic()
                await asyncio.gather(*(caller(tw) for _ in range(calls)))
                while log.read_text().count(" ended: ") < calls:
                    await asyncio.sleep(0.1)
                cpu, wall = cpu_s(serve.pid) - c0, time.monotonic() - t0
        finally:
            for p in (serve, sim):
                p.terminate()
                await p.wait()
    text = log.read_text()
    stale = [float(x) for x in re.findall(r"stale audio after each at most (\d+) ms", text)]
    path = re.search(r"audio (μ-law passed through|transcoded for \w+)", text)
    return cpu, wall, stale, path.group(1) if path else "?"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10)
    ap.add_argument("--backend", choices=("assemblyai", "openai", "gemini"), default="assemblyai")
    args = ap.parse_args()
    import tempfile

    per_call: dict[str, float] = {}
    paths: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        for mode in ("passthrough", "transcode"):
            cpu, wall, stale, path = await run(mode, args.calls, Path(d), args.backend)
            per_call[mode] = cpu / wall / args.calls * 100
            paths[mode] = path
            print(
                f"{args.backend} {mode:12s} ({path}) {args.calls} calls, {wall:.1f} s: "
                f"serve CPU {per_call[mode]:.2f} % "
                f"of a core per call; stale after a clear (from marks): max "
                f"{max(stale) if stale else float('nan'):.0f} ms over {len(stale)} calls with a "
                f"barge-in (load average {os.getloadavg()[0]:.1f})"
            )
    ratio = per_call["transcode"] / per_call["passthrough"]
    if paths["passthrough"] == paths["transcode"]:  # Gemini: no audio/pcmu, both transcoded
        print(f"both runs {paths['transcode']}: ratio {ratio:.2f}x is the noise")
    else:
        print(f"transcoded / passed through: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
