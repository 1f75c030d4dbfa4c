"""Test helpers for the simulator: a raw WebSocket client (plain JSON messages, not botrun's
client) and test audio (synthetic voiced bursts and real espeak-ng speech at 24 kHz)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from system_tools import require
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

RATE = 24000


def voiced(ms: int, rate: int = RATE, level: float = 0.3, f0: float = 180.0) -> np.ndarray:
    """A harmonic, speech-loud signal (about -14 dBFS RMS) lasting ``ms``."""
    t = np.arange(ms * rate // 1000) / rate
    if len(t) == 0:
        return np.zeros(0, dtype=np.int16)
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    return np.round(x / np.max(np.abs(x)) * level * 32767).astype(np.int16)


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(ms * rate // 1000, dtype=np.int16)


def utterance(
    speech_ms: int = 600, lead_ms: int = 200, tail_ms: int = 1500, rate: int = RATE
) -> np.ndarray:
    return np.concatenate((silence(lead_ms, rate), voiced(speech_ms, rate), silence(tail_ms, rate)))


def espeak_24k(text: str, directory: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, converted to 24 kHz mono PCM16 by sox."""
    espeak, sox = require("espeak-ng"), require("sox")
    raw, out = directory / "espeak.wav", directory / "speech24k.wav"
    subprocess.run([espeak, "-v", "en-us", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(
        [sox, str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)],
        check=True,
        capture_output=True,
    )
    import wave

    with wave.open(str(out), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def b64(samples: np.ndarray | bytes) -> str:
    data = samples if isinstance(samples, bytes) else samples.astype("<i2").tobytes()
    return base64.b64encode(data).decode("ascii")


def pcm_of(event: dict[str, Any]) -> bytes:
    return base64.b64decode(event["data"])


class RawClient:
    """A protocol-level test client: sends JSON dicts, records every frame it receives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_sent_code: int | None = None  # what this client itself closed with
        self.closed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._cursor = 0
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> RawClient:
        kwargs.setdefault("max_size", 64 * 1024 * 1024)
        return cls(await websockets.connect(url, **kwargs))

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, bytes):
                    ev: dict[str, Any] = {"type": "<binary>", "raw": frame}
                else:
                    try:
                        ev = json.loads(frame)
                    except json.JSONDecodeError:
                        ev = {"type": "<malformed>", "raw": frame}
                async with self._changed:
                    self.events.append(ev)
                    self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            sent = self.ws.protocol.close_sent
            self.close_sent_code = sent.code if sent is not None else None
            self.closed.set()
            async with self._changed:
                self._changed.notify_all()

    async def send(self, type_: str, **fields: Any) -> None:
        await self.ws.send(json.dumps({"type": type_, **fields}))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def send_audio(
        self, samples: np.ndarray | bytes, chunk_ms: int = 50, rate: int = RATE, pace_s: float = 0.0
    ) -> None:
        data = samples if isinstance(samples, bytes) else samples.astype("<i2").tobytes()
        step = chunk_ms * rate // 1000 * 2
        for i in range(0, len(data), step):
            await self.send("input.audio", audio=base64.b64encode(data[i : i + step]).decode())
            await asyncio.sleep(pace_s)

    async def wait(
        self, pred: Callable[[dict[str, Any]], bool] | str, timeout: float = 5.0
    ) -> dict[str, Any]:
        """The next event (after the last one returned) that matches ``pred`` (a type name or a
        predicate); events skipped stay in :attr:`events`."""
        match = (lambda e: e.get("type") == pred) if isinstance(pred, str) else pred

        async def scan() -> dict[str, Any]:
            async with self._changed:
                while True:
                    while self._cursor < len(self.events):
                        ev = self.events[self._cursor]
                        self._cursor += 1
                        if match(ev):
                            return ev
                    if self.closed.is_set():
                        raise AssertionError(
                            f"socket closed ({self.close_code}) before {pred!r}; got {self.types()}"
                        )
                    await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {pred!r} within {timeout} s; got {self.types()}") from None

    def types(self) -> list[str]:
        return [e.get("type", "?") for e in self.events]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]

    async def start(self, **session: Any) -> str:
        """``session.update`` then wait for ``session.ready``; returns the session id."""
        await self.send("session.update", session=session)
        return (await self.wait("session.ready"))["session_id"]

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


async def start_wav_call(
    wav: Path, tmp_path: Path, agent_url: str, transcript: Path
) -> asyncio.subprocess.Process:
    """The real ``botrun wav`` command as a subprocess: ``wav`` as the one participant, the
    bot's voice to ``tmp_path/o.wav``, no API key in its environment (output piped)."""
    import os
    import sys

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "wav",
        "--input",
        str(wav),
        "--output",
        str(tmp_path / "o.wav"),
        "--agent-url",
        agent_url,
        "--transcript",
        str(transcript),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )
