"""The WAV transport: a meeting simulated from files, used by ``botrun demo`` and tests.

Each input file is a participant who joins at its offset, speaks its file in real time
(or ``speed`` times faster) in 20 ms frames and leaves when it ends. The bot's voice is
recorded like a loudspeaker would play it: each chunk starts when the previous one ends or
at the current meeting time, whichever is later, so quiet stretches become silence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botrun.core.errors import UsageError
from botrun.core.transport import Transport, TransportEvents

from .wavio import read_wav_mono16

log = logging.getLogger("botrun.wav")

RATES = (8000, 16000, 24000, 48000)
FRAME_MS = 20


@dataclass
class WavInput:
    path: Path
    pcm: bytes
    at_s: float
    name: str


def _nth(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


class WavTransport(Transport):
    name = "wav"

    def __init__(
        self, inputs: list[WavInput], output: Path, rate: int = 16000, speed: float = 1.0
    ) -> None:
        if rate not in RATES:
            raise UsageError(f"--rate must be one of {', '.join(map(str, RATES))}, got {rate}")
        self.inputs = inputs
        self.output = output
        #: The finished recording (set when the call ends): the command says where it is.
        self.recorded: Path | None = None
        self.output_sample_rate = rate
        self.time_scale = speed
        self._events: TransportEvents | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = threading.Lock()
        self._writer: wave.Wave_write | None = None
        self._written = 0  # samples in the output file
        self._t0 = 0.0
        self._left = False
        self._joined = 0  # inputs whose participant has joined

    @classmethod
    def from_options(cls, opts: dict[str, Any]) -> WavTransport:
        paths: list[Path] = list(opts["input"])
        # Aligned with the inputs by the CLI (None: not given for that input) or by position.
        ats: list[float | None] = list(opts.get("at") or [])
        names: list[str | None] = list(opts.get("participant") or [])
        if len(ats) > len(paths):
            raise UsageError(f"{len(ats)} --at values for {len(paths)} --input files")
        if len(names) > len(paths):
            raise UsageError(f"{len(names)} --participant names for {len(paths)} --input files")
        rate = int(opts.get("rate") or 16000)
        if rate not in RATES:
            raise UsageError(f"--rate must be one of {', '.join(map(str, RATES))}, got {rate}")
        inputs = [
            WavInput(
                path=p,
                pcm=read_wav_mono16(p, rate),
                at_s=_nth(ats, i) or 0.0,
                name=_nth(names, i) or p.stem,
            )
            for i, p in enumerate(paths)
        ]
        output = Path(opts.get("output") or "botrun-output.wav")
        if output.exists() and output.is_dir():
            raise UsageError(f"--output {output} is a directory")
        return cls(inputs, output, rate, float(opts.get("speed") or 1.0))

    @property
    def bot_participant_id(self) -> str:
        return "wav-bot"

    def participants_pending(self) -> bool:
        return self._joined < len(self.inputs)

    # ----------------------------------------------------------------- meeting
    async def join(self, events: TransportEvents) -> None:
        self._events = events
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            w = wave.open(str(self.output), "wb")  # noqa: SIM115 - closed in leave()
        except OSError as exc:
            raise UsageError(f"cannot write {self.output}: {exc.strerror or exc}") from None
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(self.output_sample_rate)
        self._writer = w
        self._t0 = time.monotonic()
        for i, inp in enumerate(self.inputs):
            self._tasks.append(asyncio.create_task(self._speak(f"wav-{i + 1}", inp)))

    async def _speak(self, pid: str, inp: WavInput) -> None:
        assert self._events is not None
        speed = self.time_scale
        start = self._t0 + inp.at_s / speed
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        self._joined += 1
        self._events.participant_joined(pid, inp.name)
        frame = self.output_sample_rate * FRAME_MS // 1000 * 2
        frame_s = FRAME_MS / 1000 / speed
        k, n = 0, (len(inp.pcm) + frame - 1) // frame
        while k < n:
            due = int((time.monotonic() - start) / frame_s) + 1  # frames due by now
            while k < min(due, n):
                self._events.audio(
                    pid, inp.pcm[k * frame : (k + 1) * frame], self.output_sample_rate
                )
                k += 1
            await asyncio.sleep(max(0.005, start + k * frame_s - time.monotonic()))
        self._events.participant_left(pid, "input ended")

    def write_audio(self, pcm: bytes) -> None:
        with self._lock:
            if self._writer is None:
                return
            now = round((time.monotonic() - self._t0) * self.time_scale * self.output_sample_rate)
            if now > self._written:  # the bot was quiet: silence up to the meeting time
                self._writer.writeframes(b"\0\0" * (now - self._written))
                self._written = now
            self._writer.writeframes(pcm)
            self._written += len(pcm) // 2

    async def leave(self) -> None:
        if self._left:
            return
        self._left = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
                self.recorded = self.output
                log.info(
                    "recorded the bot to %s (%.1f s)",
                    self.output,
                    self._written / self.output_sample_rate,
                )
