"""The browser transport: one call with one web page over a WebSocket.

The page (static/) captures the microphone with an AudioWorklet and sends PCM16 at the
rate it announced; the bot's voice goes back as PCM16 at :data:`OUTPUT_RATE`, which the
page plays through a small jitter buffer that a ``flush`` message empties (barge-in).
Every bridge event is also sent to the page (:meth:`BrowserTransport.observe`), which
draws the transcript, tool calls, latency and state from them.

The transport never resamples: the bridge takes the page's rate as it comes, and the bot's
voice is produced at the agent's rate. The call ends when the page hangs up (Esc) or
closes; :meth:`hang_up` (the bot ends the call) tells the page and leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING

from botrun.core.events import BridgeEvent
from botrun.core.transport import Transport, TransportEvents

from .messages import (
    MAX_FRAME,
    OUTPUT_RATE,
    BadMessage,
    HangUp,
    Hello,
    Mute,
    check_audio,
    control,
    event_message,
    parse_text,
)

if TYPE_CHECKING:
    from aiohttp import web

    from .server import PageServer

log = logging.getLogger("botrun.browser")

PAGE_ID = "browser"  # the page's participant id
BOT_ID = "browser-bot"
LEAVE_WAIT_S = 5.0  # how long a page that left waits for the "ended" message
_LOGGED_DROPS = 5  # malformed messages logged as warnings; the rest at debug level


def _connection_error(exc: BaseException | None) -> str:
    """Why the page's WebSocket failed, in words (a message over the socket's hard limit
    closes it: 1009, message too big)."""
    from aiohttp import WSCloseCode

    if getattr(exc, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
        return f"it sent a message over the hard limit of {MAX_FRAME} bytes ({exc})"
    return f"connection error: {exc}"


class BrowserTransport(Transport):
    name = "browser"
    output_sample_rate = OUTPUT_RATE
    output_chunk_ms = 20
    # write_audio hands the chunk to the loop and returns at once: shared pacer thread
    write_blocks = False
    record_from_join = True  # --record starts when a page takes the call (bots/runner.py)
    call_starts_at_join = True  # its length and max_duration_s too, not the wait (bridge)

    def __init__(self, server: PageServer, *, owns_server: bool = False, person: str = "you"):
        self.server = server
        self.owns_server = owns_server
        self.person = person
        self.dropped: Counter[str] = Counter()  # malformed page messages, by reason
        self.muted = False
        self.end_reason = ""
        self._events: TransportEvents | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ws: web.WebSocketResponse | None = None
        self._rate: int | None = None
        self._out: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._attached = False  # a page has taken this call (once: the call is that page's)
        self._left = False
        self._gone = asyncio.Event()  # leave() is done

    @property
    def bot_participant_id(self) -> str:
        return BOT_ID

    def participants_pending(self) -> bool:
        return not self._attached  # waiting for someone to open the page

    @property
    def attached(self) -> bool:
        """A page took this call."""
        return self._attached

    @property
    def available(self) -> bool:
        """No page has taken this call yet and it is still running."""
        return not self._attached and not self._left and self._events is not None

    # ------------------------------------------------------------------ loop
    async def join(self, events: TransportEvents) -> None:
        self._events = events
        self._loop = asyncio.get_running_loop()
        if self.owns_server:
            await self.server.start()
            for line in self.server.open_lines():
                print(line, flush=True)
        self.server.offer(self)

    async def attach(self, ws: web.WebSocketResponse) -> None:
        """Run the call with the page on ``ws`` until it hangs up or goes away (called by
        the server for the page's WebSocket)."""
        from aiohttp import WSMsgType

        assert self._events is not None
        self._attached = True
        self._ws = ws
        self._sender = asyncio.create_task(self._send_loop(ws))
        self._out.put_nowait(control("welcome", rate=OUTPUT_RATE))
        events = self._events
        events.participant_joined(PAGE_ID, self.person)
        reason = "the page was closed"
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    self._on_audio(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    if self._on_text(msg.data):
                        reason = "hung up on the page"
                        break
                elif msg.type == WSMsgType.ERROR:
                    reason = f"the page's connection closed: {_connection_error(ws.exception())}"
                    log.warning("%s", reason)
        finally:
            self.end_reason = self.end_reason or reason
            events.participant_left(PAGE_ID, reason)
            events.ended(reason)
        # The socket stays open until the bridge has left (the page hears why the call
        # ended): the server closes it when this returns.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._gone.wait(), LEAVE_WAIT_S)

    def _drop(self, reason: str) -> None:
        self.dropped[reason.split(" (")[0]] += 1
        n = sum(self.dropped.values())
        level = logging.WARNING if n <= _LOGGED_DROPS else logging.DEBUG
        log.log(level, "dropped a message from the page: %s (%d dropped so far)", reason, n)

    def _on_audio(self, data: bytes) -> None:
        try:
            check_audio(data)
        except BadMessage as exc:
            self._drop(str(exc))
            return
        if self._rate is None:
            self._drop("audio before hello")
            return
        if self._events is not None and data:
            self._events.audio(PAGE_ID, data, self._rate)

    def _on_text(self, text: str) -> bool:
        """Handle a text message; True when the page hung up."""
        try:
            msg = parse_text(text)
        except BadMessage as exc:
            self._drop(str(exc))
            return False
        if isinstance(msg, Hello):
            if self._rate is not None:  # the rate is the call's: it never changes mid-call
                self._drop(f"a second hello (rate {msg.rate} Hz; the call's is {self._rate} Hz)")
                return False
            self._rate = msg.rate
            log.info("page microphone at %d Hz", msg.rate)
        elif isinstance(msg, Mute):
            if msg.muted != self.muted and self._events is not None:
                self._events.status("muted" if msg.muted else "unmuted")
            self.muted = msg.muted
        elif isinstance(msg, HangUp):
            return True
        return False

    async def _send_loop(self, ws: web.WebSocketResponse) -> None:
        while True:
            item = await self._out.get()
            if item is None:
                return
            try:
                if isinstance(item, bytes):
                    await ws.send_bytes(item)
                else:
                    await ws.send_str(item)
            except (ConnectionError, RuntimeError) as exc:  # the page went away mid-send
                log.debug("page send failed: %s", exc)
                return

    def _queue(self, item: str | bytes) -> None:
        if self._ws is not None and not self._left:
            self._out.put_nowait(item)

    def _flush_queued(self) -> None:
        """Barge-in: drop the bot's voice not yet sent, then tell the page to drop its own."""
        kept: list[str | bytes | None] = []
        while not self._out.empty():
            item = self._out.get_nowait()
            if not isinstance(item, bytes):
                kept.append(item)
        for item in kept:
            self._out.put_nowait(item)
        self._queue(control("flush"))

    def observe(self, event: BridgeEvent) -> None:
        """A bridge event, for the page (the runner attaches this as an observer)."""
        self._queue(event_message(event))

    # ------------------------------------------------------------------ pacer thread
    def write_audio(self, pcm: bytes) -> None:
        loop = self._loop
        if loop is not None and self._ws is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the call is over
                loop.call_soon_threadsafe(self._queue, bytes(pcm))

    def flush_audio(self) -> None:
        loop = self._loop
        if loop is not None and self._ws is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._flush_queued)

    # ------------------------------------------------------------------ leaving
    async def hang_up(self, reason: str) -> None:
        """The bot ends the call: the page is told why, then the bridge leaves."""
        self.end_reason = reason or "the bot hung up"
        self._queue(control("ended", reason=self.end_reason))

    async def leave(self) -> None:
        if self._left:
            return
        self._queue(control("ended", reason=self.end_reason or "the call ended"))
        self._left = True
        self.server.withdraw(self)
        self._out.put_nowait(None)
        if self._sender is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._sender, 1.0)
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError, RuntimeError):
                await asyncio.wait_for(ws.close(message=b"call ended"), 1.0)
        self._gone.set()
        if self.owns_server:
            await self.server.stop()
        if self.dropped:
            log.warning(
                "dropped %d malformed messages from the page: %s",
                sum(self.dropped.values()),
                dict(self.dropped),
            )
