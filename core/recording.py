"""Call recordings (``--record DIR``, any transport): the participants' mix as the agent
heard it (``mix.wav``, at the agent's input rate), the bot's voice as the transport got it
(``bot.wav``, at the transport's rate; a phone call's μ-law is recorded as PCM16) and every
bridge event (``events.jsonl``), all on one time axis: seconds since the recording started
(meeting time: a ``--speed`` WAV call is scaled back). Both WAVs keep the call's timeline:
each is as long as the call (silence to its end), and what was heard or said sits at the
time it was heard or said.

:class:`CallRecorder` is a bridge observer and the bridge's audio taps (core/taps.py). It
never writes on the event loop or the pacer thread: both only queue, and a writer thread
of its own places each chunk at its time (silence fills a pause longer than
:data:`SLACK_S`; shorter jitter is absorbed so speech is never split) and writes the lines.
The bot's voice is handed over as it starts to play, so a chunk *starts* at its time. The
mix is handed over after it was heard, and sometimes in bursts: audio held up while the
event loop was busy (an agent session connecting) or keep-alive silence covering the time
since the last frame all go at once. So a mix chunk *ends* at its time at the latest: a
burst is placed back in the pause before it (up to :data:`LOOKBACK_S`), never after it,
where it would push everything that follows later than it was heard (the recording would
drift from the call and outlast it). The last :data:`LOOKBACK_S` of the mix stay in memory
until a pause or the end makes their place final.
The WAV headers are rewritten after every write (the ``wave`` module does), so a process
that dies leaves files that still open, and ``botrun report`` says what is missing. The files
are opened at start (one that cannot be is a usage error); a write failing during the call
stops the recording, logged once, and the command exits 1 (:class:`RecordingFailed`).

``events.jsonl`` starts with a ``recording.start`` line (transport, start time) and ends
with a ``recording.end`` line (reason, error, what each WAV holds and its rate, summary);
every other line is ``{"t": seconds, "kind": ..., <the event's fields>}``. Strings are
redacted like the logs."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from .audio.g711 import ulaw_to_pcm16
from .errors import BotrunError, UsageError
from .events import BridgeEvent
from .secrets import redact

log = logging.getLogger("botrun.recording")

MIX_WAV, BOT_WAV, EVENTS = "mix.wav", "bot.wav", "events.jsonl"
REPORT = "report.html"  # where ``botrun report DIR`` writes by default
#: Every file a recording folder holds, named as ``--record``'s (output paths must not collide).
FILES = (MIX_WAV, BOT_WAV, EVENTS, REPORT)
MIX_RATE, BOT_RATE = 24000, 16000  # the files' rates when nothing was written to them
SLACK_S = 0.1  # a chunk this much late is appended as it is; later than that, after silence
LOOKBACK_S = 5.0  # how far back a burst of the mix can be placed (kept in memory until then)
START, END = "recording.start", "recording.end"
_STOP = object()


def plain(value: Any) -> Any:
    """JSON-safe and redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return redact(str(value))


class TimelineWav:
    """A mono PCM16 WAV whose chunks are placed at their time on the call's axis. The file
    is opened (and so checked) at once; its header is written at the first chunk, at that
    chunk's rate (the backend's or the transport's); a chunk at another rate is dropped and
    counted. The file object is ours: ``wave`` gets it open, so a file that cannot be
    opened never leaves a half-built ``Wave_write`` behind (its ``__del__`` would print a
    traceback).

    ``ends_at_time``: a chunk's time is when it was handed over, after it was heard, so
    the chunk ends then at the latest (the mix; see the module's docstring). The chunks
    since the last pause (the *run*) stay in memory, up to :data:`LOOKBACK_S`, so a burst
    can move the run back into that pause; otherwise a chunk starts at its time (the bot's
    voice)."""

    def __init__(self, path: Path, default_rate: int, *, ends_at_time: bool = False) -> None:
        self.path = path
        self.rate = default_rate
        self.written = 0  # samples on disk
        self.dropped = 0  # chunks at another rate than the first
        self._ends_at_time = ends_at_time
        self._run: deque[bytes] = deque()  # the run not yet on disk (ends_at_time)
        self._run_at = 0  # where the run starts, in samples (never before ``written``)
        self._run_len = 0  # samples in the run
        self._file: BinaryIO | None = path.open("wb")  # closed in close()
        self._w: wave.Wave_write | None = None
        self._closed = False

    def _open(self, rate: int) -> wave.Wave_write:
        assert self._file is not None
        w = wave.open(self._file, "wb")  # noqa: SIM115 - closed in close()
        self._w = w
        self.rate = rate
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"")  # the header is on disk from the start
        return w

    def write(self, pcm: bytes, rate: int, t: float) -> None:
        if self._closed:
            return
        w = self._w or self._open(rate)
        if rate != self.rate:
            self.dropped += 1
            return
        pcm = pcm[: len(pcm) & ~1]
        if self._ends_at_time:
            self._place_ending(pcm, t)
            return
        at = round(t * self.rate)
        if at - self.written > SLACK_S * self.rate:  # a pause: silence up to its time
            w.writeframes(b"\0\0" * (at - self.written))
            self.written = at
        w.writeframes(pcm)
        self.written += len(pcm) // 2

    def _place_ending(self, pcm: bytes, t: float) -> None:
        """Place a chunk that ended by ``t``: after the run if it follows it closely, else
        after a pause; then move the run back if it would end later than ``t``."""
        n = len(pcm) // 2
        end = round(t * self.rate)
        gap = end - n - (self._run_at + self._run_len)
        if gap > SLACK_S * self.rate or (gap > 0 and not self.written and not self._run):
            self._commit()  # a pause: the run before it is where it belongs
            self._run_at = end - n
        self._run.append(pcm)
        self._run_len += n
        over = self._run_at + self._run_len - end
        if over > 0:  # (handed over after it was heard: a burst) back into the pause
            self._run_at = max(self.written, self._run_at - over)
        if self._run_len > (LOOKBACK_S + 1.0) * self.rate:  # (written in blocks of ~1 s)
            keep = LOOKBACK_S * self.rate
            head: list[bytes] = []
            while self._run_len - len(self._run[0]) // 2 >= keep:
                chunk = self._run.popleft()
                head.append(chunk)
                self._run_len -= len(chunk) // 2
            start = self._run_at
            self._put(start, b"".join(head))
            self._run_at = self.written  # (the rest follows what was written, unmoved)

    def _put(self, at: int, pcm: bytes) -> None:
        """Write ``pcm`` at sample ``at`` (never before what is written): silence first."""
        w = self._w
        assert w is not None
        if at > self.written:
            w.writeframes(b"\0\0" * (at - self.written))
            self.written = at
        w.writeframes(pcm)
        self.written += len(pcm) // 2

    def _commit(self) -> None:
        """Write the run where it is (its place is final)."""
        if self._run:
            self._put(self._run_at, b"".join(self._run))
            self._run.clear()
            self._run_len = 0
        self._run_at = self.written

    def pad_to(self, t: float) -> None:
        """The end of the call at ``t``: what is held is written, then silence up to ``t``
        (nothing was heard or said after the last chunk). Never shortens the file."""
        if self._closed:
            return
        w = self._w or self._open(self.rate)
        self._commit()
        at = round(t * self.rate)
        if at > self.written:
            w.writeframes(b"\0\0" * (at - self.written))
            self.written = at

    @property
    def seconds(self) -> float:
        return self.written / self.rate

    def close(self) -> None:
        """Finish the header and close the file; the first OSError is raised, after both
        the ``wave`` writer and the file are closed."""
        if self._closed:
            return
        try:
            # (nothing was said: an empty file all the same)
            w = self._w or self._open(self.rate)
            self._commit()
        except BaseException:
            self.abandon()
            raise
        self._closed = True
        try:
            self._w = None
            w.close()  # (ours to close: wave leaves a file object it was given open)
        finally:
            f, self._file = self._file, None
            if f is not None:
                f.close()

    def abandon(self) -> None:
        """Close without writing more (the recording failed): errors are ignored."""
        self._closed = True
        self._run.clear()
        w, self._w = self._w, None
        f, self._file = self._file, None
        if w is not None:
            with contextlib.suppress(OSError, wave.Error):
                w.close()
        if f is not None:
            with contextlib.suppress(OSError):
                f.close()


class RecordingFailed(BotrunError):
    """Writing the recording failed during the call: it stopped there (exit code 1)."""


class CallRecorder:
    """Records one call to ``directory`` (created; existing recordings are replaced)."""

    def __init__(
        self,
        directory: Path,
        *,
        transport: str = "",
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.directory = directory
        self.scale = scale
        self._clock = clock  # the audio's time (tests give their own)
        opened: list[TimelineWav] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, rate in ((MIX_WAV, MIX_RATE), (BOT_WAV, BOT_RATE)):
                # (the mix is handed over after it was heard: it ends at its time)
                opened.append(TimelineWav(directory / name, rate, ends_at_time=name == MIX_WAV))
            self._mix, self._bot = opened
            self._events = (directory / EVENTS).open("w", encoding="utf-8")
            # A report of an earlier call in this folder would not be this call's: removed
            # (``botrun report DIR`` writes this one's).
            (directory / REPORT).unlink(missing_ok=True)
        except OSError as exc:
            for track in opened:
                track.abandon()
            where = f"{exc.filename}" if exc.filename else str(directory)
            raise UsageError(f"cannot record to {where}: {exc.strerror or exc}") from None
        self._mono0 = clock()
        self._wall0 = time.time()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.lines = 0
        self.failed: OSError | None = None
        self._closed = False
        self._line(
            {
                "t": 0.0,
                "kind": START,
                "started_at": datetime.fromtimestamp(self._wall0, UTC).isoformat(),
                "transport": transport,
                "time_scale": scale,
                "files": {"mix": MIX_WAV, "bot": BOT_WAV},
            }
        )
        self._thread = threading.Thread(target=self._run, name="botrun-recorder", daemon=True)
        self._thread.start()

    @classmethod
    def for_transport(cls, directory: Path, transport: Any) -> CallRecorder:
        return cls(
            directory,
            transport=str(getattr(transport, "name", "")),
            scale=float(getattr(transport, "time_scale", 1.0) or 1.0),
        )

    def _now(self) -> float:
        return (self._clock() - self._mono0) * self.scale

    # ------------------------------------------------------------------ any thread: queue only
    def __call__(self, event: BridgeEvent) -> None:
        """The observer: one line per event."""
        if not self._closed:
            t = max(0.0, (event.time - self._wall0) * self.scale)
            self._queue.put(("line", {"t": round(t, 4), "kind": event.kind, **event.data}))

    def heard(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        if not self._closed:
            self._queue.put((self._mix, data, rate, encoding, self._now()))

    def spoken(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        if not self._closed:
            self._queue.put((self._bot, bytes(data), rate, encoding, self._now()))

    # ------------------------------------------------------------------ writer thread
    def _line(self, obj: dict[str, Any]) -> None:
        self._events.write(json.dumps(plain(obj), ensure_ascii=False) + "\n")
        self.lines += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self.failed is not None:
                continue  # the recording stopped: what is queued is dropped
            try:
                if item[0] == "line":
                    self._line(item[1])
                    self._events.flush()
                else:
                    track, data, rate, encoding, t = item
                    if encoding == "pcmu":  # a phone call's G.711: recorded as PCM16
                        data = ulaw_to_pcm16(data)
                    track.write(data, rate, t)
            except (OSError, wave.Error) as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """Stop recording after the first failure: logged once, the files closed as they are."""
        if self.failed is not None:
            return
        self.failed = exc if isinstance(exc, OSError) else OSError(str(exc))
        log.error("recording to %s failed: %s; the recording stopped", self.directory, exc)
        for track in (self._mix, self._bot):
            track.abandon()
        with contextlib.suppress(OSError):
            self._events.close()

    @property
    def failure(self) -> RecordingFailed | None:
        """Why the recording stopped during the call (the command exits non-zero), or None."""
        exc = self.failed
        if exc is None:
            return None
        why = exc.strerror or str(exc)
        where = exc.filename or self.directory
        return RecordingFailed(f"the recording to {self.directory} failed ({where}: {why})")

    def close(self, reason: str = "", error: str | None = None, summary: Any = None) -> None:
        """Write what is queued and the end line, then close the files. Blocking (call it
        from a thread, never on the loop). Idempotent."""
        if self._closed:
            return
        t_end = round(self._now(), 4)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(10.0)
        if self._thread.is_alive():  # (the writer is stuck: nothing more is written)
            return
        for f in (self._mix, self._bot):
            if self.failed is not None:
                f.abandon()
                continue
            try:
                f.pad_to(t_end)  # (as long as the call: the tracks and the events agree)
                f.close()
            except (OSError, wave.Error) as exc:
                self._fail(exc)
        end: dict[str, Any] = {
            "t": t_end,
            "kind": END,
            "reason": reason,
            "error": error,
            # what the WAV files hold: a report finding less knows they were cut short
            "mix_s": round(self._mix.seconds, 3),
            "bot_s": round(self._bot.seconds, 3),
            "mix_rate": self._mix.rate,
            "bot_rate": self._bot.rate,
        }
        if summary is not None:
            end["summary"] = summary
        if self.failed is None:  # (last: an end line says the whole recording is on disk)
            try:
                self._line(end)
                self._events.close()
            except OSError as exc:
                self._fail(exc)


def recorded_whole(directory: Path) -> bool:
    """``directory``'s events.jsonl ends with a ``recording.end`` line: the recording was
    closed whole (one that failed or was cut short has none)."""
    try:
        with (directory / EVENTS).open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - (1 << 20)))
            last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return bool(json.loads(last).get("kind") == END)
    except (OSError, ValueError, AttributeError):
        return False


class RecorderOnJoin:
    """A :class:`CallRecorder` that starts when the call does: at the first participant who
    joins (a browser page that waits for someone to open it). Until then nothing is on disk,
    so a call nobody came to leaves no folder; the recording's time axis starts with the
    call, not with the wait. The parent folder is made (and checked) at once."""

    def __init__(self, directory: Path, transport: Any) -> None:
        self.directory = directory
        self._transport = transport
        self.recorder: CallRecorder | None = None
        self._error: RecordingFailed | None = None
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot record to {directory}: {exc.strerror or exc}") from None
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"cannot record to {directory}: Not a directory")

    def __call__(self, event: BridgeEvent) -> None:
        rec = self.recorder
        if rec is None and event.kind == "participant.joined":
            try:  # (once a call: a folder and three files)
                rec = self.recorder = CallRecorder.for_transport(self.directory, self._transport)
            except UsageError as exc:
                log.error("%s", exc)
                self._error = RecordingFailed(str(exc))  # (the command exits non-zero)
                return
        if rec is not None:
            rec(event)

    def heard(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        rec = self.recorder
        if rec is not None:
            rec.heard(data, rate, encoding)

    def spoken(self, data: bytes, rate: int, encoding: str = "pcm16") -> None:
        rec = self.recorder
        if rec is not None:
            rec.spoken(data, rate, encoding)

    def close(self, reason: str = "", error: str | None = None, summary: Any = None) -> None:
        if self.recorder is not None:
            self.recorder.close(reason, error, summary)

    @property
    def failure(self) -> RecordingFailed | None:
        return self._error if self.recorder is None else self.recorder.failure


def summary_figures(summary: Any) -> dict[str, Any]:
    """The call summary's figures for the end line (a :class:`~botrun.core.bridge.CallSummary`)."""
    m = summary.metrics
    lat = m.latencies_ms
    return {
        "turns": len(m.turns),
        "interrupted_turns": sum(1 for t in m.turns if t.interrupted),
        "barge_ins": m.barge_ins,
        "stale_ms_flushed": round(m.stale_ms_flushed, 1),
        # (unrounded: the report rounds them as the console did; rounded here first, a
        # 1128.5 ms the console printed as 1129 became 1128 in the report)
        "latencies_ms": list(lat),
        "spoken_ms": None if m.spoken_ms is None else round(m.spoken_ms, 1),
        "agent_answered": m.agent_answered,
    }
