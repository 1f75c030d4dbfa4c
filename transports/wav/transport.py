"""The WAV transport: a meeting simulated from files, used by ``botrun demo`` and tests.

Each input file is a participant who joins at its offset, speaks its file in real time
(or ``speed`` times faster) in 20 ms frames and leaves when it ends. The bot's voice is
recorded like a loudspeaker would play it: each chunk starts when the previous one ends or
at the current meeting time, whichever is later, so quiet stretches become silence.

Call actions, so every flow runs offline (issue 16): ``hang_up`` stops the inputs (the bridge
then leaves and the recording is closed); a ``--dtmf`` schedule presses keys at given call
times (pressed by the first phone caller in the call, else its first participant; skipped
when nobody is in it); ``transfer`` and ``send_dtmf`` are accepted and written down in
:attr:`actions` (a transferred participant leaves, as a phone caller handed over by Daily
would)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from botrun.core.errors import CallActionError, UsageError
from botrun.core.paths import check_output_file
from botrun.core.transport import Transport, TransportEvents

from .keypad import PHONE as _PHONE
from .keypad import PHONE_EXPECTED, KeyPress, parse_dtmf_schedule
from .pairing import PAIRED, unpaired
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
    phone: str | None = None  # a phone caller's number (--phone)


def _pressable(presses: list[KeyPress], inputs: list[WavInput], rate: int) -> list[KeyPress]:
    """The presses due before the last input ends; those after it would come from nobody
    (every participant has left), so they are dropped with one warning at start."""
    end_s = max((i.at_s + len(i.pcm) / 2 / rate for i in inputs), default=0.0)
    late = [p for p in presses if p.at_s >= end_s]
    if late:
        times = ", ".join(f"{p.at_s:g} s" for p in late)
        log.warning(
            "--dtmf: %d key press%s at %s come%s after the last input ends (%.1f s), when "
            "nobody is left to press %s: skipped",
            len(late),
            "" if len(late) == 1 else "es",
            times,
            "s" if len(late) == 1 else "",
            end_s,
            "it" if len(late) == 1 else "them",
        )
    return [p for p in presses if p.at_s < end_s]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _refuse_overwriting_inputs(written: dict[str, Path], inputs: list[Path], what: str) -> None:
    """A :class:`UsageError` when a file the command would write is one of the inputs (a
    file that does not exist yet is none of them)."""
    for name, path in written.items():
        for inp in inputs:
            if _same_file(path, inp):
                raise UsageError(
                    f"{name} {path} is also an input file ({what}): botrun would "
                    "overwrite it (write to another file)"
                )


def _nth(values: list[Any], i: int) -> Any:
    return values[i] if i < len(values) else None


class WavTransport(Transport):
    name = "wav"

    def __init__(
        self,
        inputs: list[WavInput],
        output: Path,
        rate: int = 16000,
        speed: float = 1.0,
        dtmf: list[KeyPress] | None = None,
    ) -> None:
        if rate not in RATES:
            raise UsageError(f"--rate must be one of {', '.join(map(str, RATES))}, got {rate}")
        self.inputs = inputs
        self.output = output
        self.output_label = "--output"  # (where it was given, for errors)
        #: The finished recording (set when the call ends): the command says where it is.
        self.recorded: Path | None = None
        #: Seconds of the bot's voice (and the silences between) in it: 0 when it never spoke.
        self.recorded_s = 0.0
        self.output_sample_rate = rate
        self.time_scale = speed
        self._events: TransportEvents | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = threading.Lock()
        self._writer: wave.Wave_write | None = None
        self._file: BinaryIO | None = None
        #: Why the bot's WAV could not be written (the command exits non-zero), or None.
        self.write_error: str | None = None
        self._written = 0  # samples in the output file
        self._t0 = 0.0
        self._left = False
        self._joined = 0  # inputs whose participant has joined
        self.keypresses = _pressable(list(dtmf or []), inputs, rate)
        self._speakers: dict[str, asyncio.Task[None]] = {}
        self._present: list[str] = []  # participants in the meeting now, in join order
        self._phones: dict[str, str] = {}  # participant id -> number, phone callers
        #: Call actions performed (transfer, send_dtmf, hang_up), for the call summary.
        self.actions: list[dict[str, Any]] = []
        #: Why the bot hung up, once it has.
        self.hung_up: str | None = None

    @classmethod
    def from_options(
        cls, opts: dict[str, Any], labels: dict[str, str] | None = None
    ) -> WavTransport:
        """``labels`` names an option in errors where it came from the config file (e.g.
        ``bot.toml: [wav] phone``); by default the flag (``--phone``)."""

        def label(name: str) -> str:
            return (labels or {}).get(name) or f"--{name}"

        paths: list[Path] = list(opts["input"])
        # Aligned with the inputs by the CLI (None: not given for that input) or by position.
        ats: list[float | None] = list(opts.get("at") or [])
        names: list[str | None] = list(opts.get("participant") or [])
        phones: list[str | None] = list(opts.get("phone") or [])
        files = f"{len(paths)} {label('input')} files"
        if len(ats) > len(paths):
            raise UsageError(f"{len(ats)} {label('at')} values for {files}")
        # A [wav] list pairs by position: one missing would shift the rest silently (the
        # fleet front door refuses a job's lists by the same rule: pairing.py).
        table = {k: list(opts.get(k) or []) for k in PAIRED if k in (labels or {})}
        wrong = unpaired({"input": paths, **table}, label)
        if wrong:
            raise UsageError(wrong)
        if len(names) > len(paths):
            raise UsageError(f"{len(names)} {label('participant')} names for {files}")
        if len(phones) > len(paths):
            raise UsageError(f"{len(phones)} {label('phone')} numbers for {files}")
        for number in phones:
            # "" (in a [wav] list) means that input is not a phone caller
            if number is not None and number.strip() and not _PHONE.match(number.strip()):
                raise UsageError(f"{label('phone')} {number!r}: {PHONE_EXPECTED}")
        rate = int(opts.get("rate") or 16000)
        if rate not in RATES:
            raise UsageError(f"--rate must be one of {', '.join(map(str, RATES))}, got {rate}")
        inputs = [
            WavInput(
                path=p,
                pcm=read_wav_mono16(p, rate),
                at_s=_nth(ats, i) or 0.0,
                name=_nth(names, i) or p.stem,
                phone=(_nth(phones, i) or "").strip() or None,
            )
            for i, p in enumerate(paths)
        ]
        output = Path(opts.get("output") or "botrun-output.wav")
        check_output_file(output, label("output"))
        _refuse_overwriting_inputs({label("output"): output}, paths, label("input"))
        dtmf = parse_dtmf_schedule(opts.get("dtmf"))
        transport = cls(inputs, output, rate, float(opts.get("speed") or 1.0), dtmf)
        transport.output_label = label("output")
        return transport

    def written_files(self) -> dict[str, Path]:
        """The file this transport writes, named as in an error (the runner checks that no
        other output is the same file)."""
        return {self.output_label: self.output}

    def check_written_paths(self, written: dict[str, Path]) -> None:
        """The files the command writes besides ``--output`` (``--transcript``, the
        ``--record`` folder and its files, keyed by what to call them in an error) must
        not be inputs: a :class:`UsageError` if one is (botrun never overwrites an input)."""
        _refuse_overwriting_inputs(written, [i.path for i in self.inputs], "--input")

    @property
    def bot_participant_id(self) -> str:
        return "wav-bot"

    def participants_pending(self) -> bool:
        return self.hung_up is None and self._joined < len(self.inputs)

    # ----------------------------------------------------------------- meeting
    async def join(self, events: TransportEvents) -> None:
        self._events = events
        try:  # (our file object: a failed open leaves no half-built Wave_write to complain)
            self._file = self.output.open("wb")
        except OSError as exc:
            raise UsageError(f"cannot write {self.output}: {exc.strerror or exc}") from None
        w = wave.open(self._file, "wb")  # noqa: SIM115 - closed in leave()
        self._writer = w
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(self.output_sample_rate)
        try:  # the header on disk now: a file that takes no data (/dev/full) fails at start
            w.writeframes(b"")
            self._file.flush()
        except OSError as exc:
            with self._lock:
                self._drop_writer()
            raise UsageError(f"cannot write {self.output}: {exc.strerror or exc}") from None
        self._t0 = time.monotonic()
        for i, inp in enumerate(self.inputs):
            pid = f"wav-{i + 1}"
            self._speakers[pid] = task = asyncio.create_task(self._speak(pid, inp))
            self._tasks.append(task)
        if self.keypresses:
            self._tasks.append(asyncio.create_task(self._keypad()))

    async def _speak(self, pid: str, inp: WavInput) -> None:
        assert self._events is not None
        speed = self.time_scale
        start = self._t0 + inp.at_s / speed
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        self._joined += 1
        self._present.append(pid)
        if inp.phone:
            self._phones[pid] = inp.phone
            self._events.participant_phone(pid, inp.phone)
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
        self._gone(pid, "input ended")

    def _gone(self, pid: str, reason: str) -> None:
        if pid in self._present:
            self._present.remove(pid)
            assert self._events is not None
            self._events.participant_left(pid, reason)

    async def _keypad(self) -> None:
        """Press the scheduled keys at their call times (meeting time, ``--speed`` applies)."""
        assert self._events is not None
        for press in self.keypresses:
            due = self._t0 + press.at_s / self.time_scale
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            pid = self._presser()
            if pid is None:
                log.info(
                    "keypad at %g s: %r skipped: nobody is in the call to press it",
                    press.at_s,
                    press.digits,
                )
                continue
            log.info("keypad at %g s: %r from %s", press.at_s, press.digits, pid)
            for digit in press.digits:
                self._events.dtmf(pid, digit)

    def _presser(self) -> str | None:
        """Who presses a scheduled key: the first phone caller (``--phone``) in the call, else
        the first participant in it (as for :meth:`transfer`); None when nobody is."""
        phones = [p for p in self._present if self._phones.get(p)]
        return next(iter(phones or self._present), None)

    # ----------------------------------------------------------------- call actions
    async def hang_up(self, reason: str) -> None:
        """Stop the inputs: the bridge then leaves, which closes the recording."""
        if self.hung_up is None:
            self.hung_up = reason or "hang_up"
            self.actions.append({"action": "hang_up", "reason": self.hung_up})
            log.info("the bot hung up (%s): the inputs stop", self.hung_up)
        for task in self._tasks:
            task.cancel()

    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        """Accepted and written down; the participant (when none is named: the first phone
        caller still in the meeting, or else the first participant) leaves, as a caller
        handed over by Daily does."""
        pid = participant_id if participant_id is not None else self._presser()
        if pid is None or pid not in self._present:
            who = f"participant {participant_id}" if participant_id else "anyone"
            raise CallActionError(f"cannot transfer {who}: not in the call")
        self.actions.append({"action": "transfer", "target": target, "participant": pid})
        log.info(
            "transfer of %s to %s (recorded: the wav transport has no phone line)", pid, target
        )
        task = self._speakers.get(pid)
        if task is not None:
            task.cancel()
        self._gone(pid, "transferred")

    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        self.actions.append(
            {"action": "send_dtmf", "digits": digits, "participant": participant_id}
        )
        log.info("DTMF %r sent (recorded: the wav transport has no phone line)", digits)

    def write_audio(self, pcm: bytes) -> None:
        with self._lock:
            if self._writer is None:
                return
            now = round((time.monotonic() - self._t0) * self.time_scale * self.output_sample_rate)
            try:
                if now > self._written:  # the bot was quiet: silence up to the meeting time
                    self._writer.writeframes(b"\0\0" * (now - self._written))
                    self._written = now
                self._writer.writeframes(pcm)
            except OSError as exc:
                self._write_failed(exc)
                return
            self._written += len(pcm) // 2

    def _write_failed(self, exc: OSError) -> None:
        """The bot's WAV cannot be written: the file is dropped as it is and the call ends
        with one line (exit code 1). Called with the lock held."""
        if self.write_error is None:
            self.write_error = f"cannot write {self.output}: {exc.strerror or exc}"
            log.error("%s: the call ends", self.write_error)
        self._drop_writer()
        if self._events is not None and not self._left:
            self._events.ended("the bot's WAV could not be written", self.write_error)

    def _drop_writer(self) -> None:
        w, self._writer = self._writer, None
        f, self._file = self._file, None
        if w is not None:
            with contextlib.suppress(OSError, wave.Error):
                w.close()
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()

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
                try:
                    self._writer.close()  # (the header, then ours: the file itself)
                    assert self._file is not None
                    self._file.close()
                except OSError as exc:
                    self._write_failed(exc)
                    return
                self._writer = self._file = None
                self.recorded = self.output
                self.recorded_s = self._written / self.output_sample_rate
                log.info(
                    "recorded the bot to %s (%.1f s)",
                    self.output,
                    self._written / self.output_sample_rate,
                )
