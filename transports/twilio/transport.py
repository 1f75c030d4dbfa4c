"""The Twilio transport: one phone call over a Media Streams WebSocket.

Whoever accepted the WebSocket (``botrun serve``'s Twilio routes) reads its frames and hands
each to :meth:`TwilioTransport.feed` on the event loop, and sends what
:meth:`TwilioTransport.outgoing` yields. The transport itself owns no socket, so many calls
share one process. Audio is G.711 μ-law at 8 kHz both ways (``audio_encoding = "pcmu"``):
the bridge passes it through to an agent that takes ``audio/pcmu``, or transcodes.

Marks: after every chunk of the bot's voice a ``mark`` follows; Twilio sends it back once
that chunk has played (or was dropped by a ``clear``). So the transport knows what the caller
has actually heard (:attr:`TwilioStats.heard_ms`), and on barge-in (``clear``) how much
Twilio still held (``cleared_ms``) and how long the clear took to take effect
(``clear_ms``: Twilio played at most that much stale audio after the barge-in).
"""

from __future__ import annotations

import array
import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botrun.core.errors import ActionUnsupported
from botrun.core.transport import Transport, TransportEvents

from . import messages as m
from . import twiml

if TYPE_CHECKING:
    from .rest import TwilioRest

log = logging.getLogger("botrun.twilio")

CALLER_ID = "caller"
CHUNK_MS = 20
#: The longest a hang-up or transfer waits for Twilio to play what it holds.
PLAY_OUT_S = 2.0
_LOG_FIRST = 5  # log the first N bad frames, then every 100th
_CLOSE = None  # the outgoing queue's end


@dataclass
class TwilioStats:
    media_in: int = 0  # media messages from Twilio
    bad_messages: int = 0  # malformed, unknown or out of order (logged, counted, survived)
    sent_ms: float = 0.0  # bot audio sent to Twilio
    heard_ms: float = 0.0  # of it, played to the caller (its mark came back, not cleared)
    cleared_ms: float = 0.0  # dropped by a clear (barge-in) before it played
    unconfirmed_ms: float = 0.0  # still queued at Twilio when the stream ended (not heard)
    clears: int = 0
    clear_ms: list[float] = field(default_factory=list)  # clear sent -> its marks back
    dtmf: int = 0


class TwilioTransport(Transport):
    name = "twilio"
    output_sample_rate = 8000
    output_chunk_ms = CHUNK_MS
    #: Twilio plays what it receives in order, so a cushion against network jitter costs no
    #: stale audio: a barge-in's ``clear`` drops it (200 ms kept ahead).
    output_max_ahead = 10
    # write_audio hands the chunk to the loop and returns at once: shared pacer thread
    write_blocks = False
    audio_encoding = "pcmu"

    def __init__(
        self,
        start: m.Start,
        *,
        rest: TwilioRest | None = None,
        passthrough: bool = True,
    ) -> None:
        self.start = start
        self.call_sid = start.call_sid
        self.stream_sid = start.stream_sid
        params = start.custom_parameters
        self.caller = params.get("from") or ""
        self.direction = params.get("direction") or ""
        self.answered_by = params.get("answered_by") or ""
        self.agent_audio = "pcmu" if passthrough else ""
        self.stats = TwilioStats()
        self._rest = rest
        self._events: TransportEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._pending: deque[tuple[str, float]] = deque()  # marks sent, not back: (name, ms)
        self._pending_names: set[str] = set()
        self._cleared: dict[str, int] = {}  # mark -> the clear that dropped it
        self._clear_sent: dict[int, float] = {}  # clear -> when sent, until its marks return
        self._chunks = 0  # chunks written (pacer thread); each is CHUNK_MS long
        #: Where in the bot's audio stream (ms since the call began) the caller has heard
        #: up to: the end of the last chunk whose mark came back played, not cleared.
        self.heard_position_ms = 0.0
        self._heard = array.array("I")  # numbers of the chunks heard, ascending (4 bytes each)
        self._stopped = False
        self._transferred = False
        self._left = False
        self.joined = asyncio.Event()
        self._played_out = asyncio.Event()  # every mark sent has come back
        self._played_out.set()
        self.end_reason = ""

    @property
    def bot_participant_id(self) -> str:
        return "bot"

    @property
    def sent_position_ms(self) -> float:
        """Where in the bot's audio stream the next chunk written starts (pacer thread)."""
        return float(self._chunks * CHUNK_MS)

    # ------------------------------------------------------------------ meeting
    async def join(self, events: TransportEvents) -> None:
        self._events = events
        self._loop = asyncio.get_running_loop()
        label = self.caller or "caller"
        events.status("in-progress", self.direction or "inbound")  # the stream is the call
        events.participant_phone(CALLER_ID, self.caller or None)
        events.participant_joined(CALLER_ID, label)
        if self.answered_by:  # answering-machine detection: after the join, so a hook can
            events.status("answered-by", self.answered_by)  # say() into the new session
        self.joined.set()

    async def leave(self) -> None:
        if self._left:
            return
        self._left = True
        self._out.put_nowait(_CLOSE)  # the route closes the WebSocket

    def heard_between(self, start_ms: float, end_ms: float) -> float:
        """Milliseconds heard of the bot's audio stream between two positions (from the
        marks: chunks played, not cleared); the bridge asks it per reply at the end."""
        # chunk n covers [(n - 1) * CHUNK_MS, n * CHUNK_MS)
        first = int(start_ms // CHUNK_MS) + 1
        last = int(end_ms // CHUNK_MS) if end_ms != float("inf") else 1 << 62
        n = bisect.bisect_right(self._heard, last) - bisect.bisect_left(self._heard, first)
        return float(n * CHUNK_MS)

    async def outgoing(self) -> AsyncIterator[str]:
        """Frames to send to Twilio, in order, until the call leaves."""
        while True:
            frame = await self._out.get()
            if frame is _CLOSE:
                return
            yield frame

    # ------------------------------------------------------------------ from Twilio
    def feed(self, frame: str | bytes) -> None:
        """One frame from the WebSocket (event loop)."""
        msg = m.parse(frame)
        events = self._events
        match msg:
            case m.Media(payload=payload):
                if self._stopped or events is None:
                    self._bad("media after stop" if self._stopped else "media before start")
                    return
                self.stats.media_in += 1
                if payload:
                    events.audio(CALLER_ID, payload, 8000)
            case m.Mark(name=name):
                self._on_mark(name)
            case m.Dtmf(digit=digit):
                self.stats.dtmf += 1
                if events is not None:
                    events.dtmf(CALLER_ID, digit)
            case m.Stop():
                self.stream_closed("transferred" if self._transferred else "the caller hung up")
            case m.Start():
                self._bad("a second start")
            case m.Connected():
                pass
            case m.BadMessage(reason=reason):
                self._bad(reason)

    def _bad(self, reason: str) -> None:
        self.stats.bad_messages += 1
        n = self.stats.bad_messages
        if n <= _LOG_FIRST or n % 100 == 0:
            log.warning(
                "call %s: bad Media Streams message (#%d, ignored): %s", self.call_sid, n, reason
            )

    def stream_closed(self, reason: str) -> None:
        """The stream ended (``stop``, or the socket closed): the caller is gone."""
        if self._stopped:
            return
        self._stopped = True
        self.end_reason = reason
        self.stats.unconfirmed_ms += sum(ms for _name, ms in self._pending)
        self._pending.clear()
        self._pending_names.clear()
        self._played_out.set()
        if self._events is not None:
            self._events.participant_left(CALLER_ID, reason)
            self._events.ended(reason)

    def call_status(self, status: str, answered_by: str = "") -> None:
        """A status callback for this call (serve's /twilio/status)."""
        events = self._events
        if events is None:
            return
        if answered_by and answered_by != self.answered_by:
            self.answered_by = answered_by
            events.status("answered-by", answered_by)
        events.status(status)
        if status in ("completed", "busy", "no-answer", "failed", "canceled"):
            self.stream_closed(f"call {status}")

    def _on_mark(self, name: str) -> None:
        if self._stopped:  # the marks still in flight when the stream stopped: all dropped
            return
        if name not in self._pending_names:
            self._bad(f"mark {name[:32]!r} that was never sent (or came back twice)")
            return
        now = time.monotonic()
        while self._pending:
            sent, ms = self._pending.popleft()
            self._pending_names.discard(sent)
            clear = self._cleared.pop(sent, None)
            if clear is not None:
                self.stats.cleared_ms += ms
                sent_at = self._clear_sent.pop(clear, None)
                if sent_at is not None:  # the first mark back: the clear took effect
                    self.stats.clear_ms.append((now - sent_at) * 1000)
            else:
                self.stats.heard_ms += ms
                with contextlib.suppress(ValueError):
                    self._heard.append(int(sent))
                    self.heard_position_ms = float(int(sent) * CHUNK_MS)
            if sent == name:
                break
        if not self._pending:
            self._played_out.set()

    # ------------------------------------------------------------------ to Twilio
    def write_audio(self, pcm: bytes) -> None:
        """Pacer thread: a chunk of μ-law, then a mark for it."""
        loop = self._loop
        if loop is None or self._left or self._stopped:
            return
        self._chunks += 1
        name = str(self._chunks)
        ms = len(pcm) / 8.0
        frames = (m.media(self.stream_sid, pcm), m.mark(self.stream_sid, name))
        loop.call_soon_threadsafe(self._queue_audio, frames, name, ms)

    def _queue_audio(self, frames: tuple[str, str], name: str, ms: float) -> None:
        if self._stopped:  # the stream is gone: nobody hears it
            return
        self.stats.sent_ms += ms
        self._pending.append((name, ms))
        self._pending_names.add(name)
        self._played_out.clear()
        for f in frames:
            self._out.put_nowait(f)

    def flush_audio(self) -> None:
        """Pacer thread, barge-in: Twilio drops what it holds (``clear``)."""
        loop = self._loop
        if loop is not None and not self._left:
            loop.call_soon_threadsafe(self._clear)

    def _clear(self) -> None:
        if not self._pending:
            return
        self.stats.clears += 1
        self._clear_sent[self.stats.clears] = time.monotonic()
        for name, _ms in self._pending:
            self._cleared[name] = self.stats.clears
        self._out.put_nowait(m.clear(self.stream_sid))

    # ------------------------------------------------------------------ call actions
    async def played_out(self, timeout_s: float = PLAY_OUT_S) -> None:
        """Wait (bounded) until Twilio has played everything sent: its marks are back."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._played_out.wait(), timeout_s)

    async def hang_up(self, reason: str) -> None:
        """REST: the call's status to ``completed``, once what Twilio holds has played (the
        goodbye is heard to its end, as the marks tell)."""
        if self._rest is None:
            return  # closing the stream (leave) ends the <Connect>, and so the call
        await self.played_out()
        await self._rest.hang_up(self.call_sid)

    async def transfer(self, target: str, participant_id: str | None = None) -> None:
        """REST: the live call redirected to ``<Dial>`` the target (the stream ends; the
        call goes on), once the hand-over line has played."""
        if self._rest is None:
            raise ActionUnsupported(
                self.name, "transfer calls", "no REST client (TWILIO_ACCOUNT_SID)"
            )
        await self.played_out()
        self._transferred = True  # (the stream's stop can come before the REST answer)
        try:
            await self._rest.redirect(self.call_sid, twiml.dial(target))
        except BaseException:
            self._transferred = False
            raise

    async def send_dtmf(self, digits: str, participant_id: str | None = None) -> None:
        raise ActionUnsupported(
            self.name,
            "send DTMF tones",
            "a Media Stream carries audio only, and TwiML <Play digits> would end the stream",
        )

    async def dial_out(self, number: str) -> str:
        raise ActionUnsupported(
            self.name, "dial out", "place another call with `botrun call` instead"
        )
