"""Call recordings (``--record DIR``, any transport): the participants' mix as the agent
heard it (``mix.wav``, at the agent's input rate), the bot's voice as the transport got it
(``bot.wav``, at the transport's rate; a phone call's μ-law is recorded as PCM16) and every
bridge event (``events.jsonl``), all on one time axis: seconds since the recording started
(meeting time: a ``--speed`` WAV call is scaled back).

:class:`CallRecorder` is a bridge observer and the bridge's audio taps (core/taps.py). It
never writes on the event loop or the pacer thread: both only queue, and a writer thread
of its own places each chunk at its time (silence fills a pause longer than
:data:`SLACK_S`; shorter jitter is absorbed so speech is never split) and writes the lines.
The WAV headers are rewritten after every write (the ``wave`` module does), so a process
that dies leaves files that still open, and ``botrun report`` says what is missing.

``events.jsonl`` starts with a ``recording.start`` line (transport, start time) and ends
with a ``recording.end`` line (reason, error, what each WAV holds and its rate, summary);
every other line is ``{"t": seconds, "kind": ..., <the event's fields>}``. Strings are
redacted like the logs."""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import wave
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .audio.g711 import ulaw_to_pcm16
from .errors import UsageError
from .events import BridgeEvent
from .secrets import redact

log = logging.getLogger("botrun.recording")

MIX_WAV, BOT_WAV, EVENTS = "mix.wav", "bot.wav", "events.jsonl"
MIX_RATE, BOT_RATE = 24000, 16000  # the files' rates when nothing was written to them
SLACK_S = 0.1  # a chunk this much late is appended as it is; later than that, after silence
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
    """A mono PCM16 WAV whose chunks are placed at their time on the call's axis. Opened at
    the first chunk, at that chunk's rate (the backend's or the transport's); a chunk at
    another rate is dropped and counted."""

    def __init__(self, path: Path, default_rate: int) -> None:
        self.path = path
        self.rate = default_rate
        self.written = 0  # samples
        self.dropped = 0  # chunks at another rate than the first
        self._w: wave.Wave_write | None = None
        self._closed = False

    def _open(self, rate: int) -> wave.Wave_write:
        w = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed in close()
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"")  # the header is on disk from the start
        self.rate = rate
        self._w = w
        return w

    def write(self, pcm: bytes, rate: int, t: float) -> None:
        if self._closed:
            return
        w = self._w or self._open(rate)
        if rate != self.rate:
            self.dropped += 1
            return
        pcm = pcm[: len(pcm) & ~1]
        at = round(t * self.rate)
        if at - self.written > SLACK_S * self.rate:  # a pause: silence up to its time
            w.writeframes(b"\0\0" * (at - self.written))
            self.written = at
        w.writeframes(pcm)
        self.written += len(pcm) // 2

    @property
    def seconds(self) -> float:
        return self.written / self.rate

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        w = self._w or self._open(self.rate)  # (nothing was said: an empty file all the same)
        self._w = None
        w.close()


class CallRecorder:
    """Records one call to ``directory`` (created; existing recordings are replaced)."""

    def __init__(self, directory: Path, *, transport: str = "", scale: float = 1.0):
        self.directory = directory
        self.scale = scale
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._mix = TimelineWav(directory / MIX_WAV, MIX_RATE)
            self._bot = TimelineWav(directory / BOT_WAV, BOT_RATE)
            self._events = (directory / EVENTS).open("w", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot record to {directory}: {exc.strerror or exc}") from None
        self._mono0 = time.monotonic()
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
        return (time.monotonic() - self._mono0) * self.scale

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
            try:
                if item[0] == "line":
                    self._line(item[1])
                    self._events.flush()
                else:
                    track, data, rate, encoding, t = item
                    if encoding == "pcmu":  # a phone call's G.711: recorded as PCM16
                        data = ulaw_to_pcm16(data)
                    track.write(data, rate, t)
            except OSError as exc:
                if self.failed is None:
                    log.error("recording to %s failed: %s", self.directory, exc)
                self.failed = exc

    def close(self, reason: str = "", error: str | None = None, summary: Any = None) -> None:
        """Write what is queued and the end line, then close the files. Blocking (call it
        from a thread, never on the loop). Idempotent."""
        if self._closed:
            return
        t_end = round(self._now(), 4)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(10.0)
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
        if not self._thread.is_alive():
            try:
                self._line(end)
            except OSError as exc:
                log.error("recording to %s failed: %s", self.directory, exc)
        for f in (self._mix, self._bot):
            try:
                f.close()
            except OSError as exc:
                log.error("closing %s failed: %s", f.path, exc)
        try:
            self._events.close()
        except OSError as exc:
            log.error("closing %s failed: %s", self.directory / EVENTS, exc)


def summary_figures(summary: Any) -> dict[str, Any]:
    """The call summary's figures for the end line (a :class:`~botrun.core.bridge.CallSummary`)."""
    m = summary.metrics
    lat = m.latencies_ms
    return {
        "turns": len(m.turns),
        "interrupted_turns": sum(1 for t in m.turns if t.interrupted),
        "barge_ins": m.barge_ins,
        "stale_ms_flushed": round(m.stale_ms_flushed, 1),
        "latencies_ms": [round(x, 1) for x in lat],
        "spoken_ms": None if m.spoken_ms is None else round(m.spoken_ms, 1),
        "agent_answered": m.agent_answered,
    }
