"""The agent client: one voice-agent session over ``websockets``, kept alive across failures.

A thin I/O layer around :class:`~botrun.core.session.SessionState` (the rules) and
:mod:`~botrun.core.protocol` (the wire format), split the way ``websockets`` splits its own
protocol and I/O layers. What it adds is the part that needs a socket and a clock:

* connect with a Bearer API key or a ``?token=`` temporary token, a connect timeout, keepalive
  pings, a size limit on incoming messages, and no per-message compression (audio does not
  compress; deflate would only cost CPU);
* on transient failures (close codes 1005/1006/1011/1009, HTTP 429/5xx, network errors,
  ``server_error``, ``agent_timeout``, ``agent_init_failed``, ``rate_limited``) reconnect with
  exponential backoff and jitter, resuming the session within its window. **One retry
  policy** covers the start of a call and a mid-call loss alike: the session may be without
  ``session.ready`` for at most ``give_up_s`` (the bridge passes ``agent.ready_timeout_s``),
  counted from the first connect or from the loss; every attempt's connect and ready waits
  are cut to what is left of it. What a close or an error code means is the session's
  rule (:meth:`SessionState.classify_close`, :meth:`SessionState.classify_error`): a code
  means the same in-band (``session.error``) or as a close reason (a 1008 close with
  reason ``server_error`` is retried, whichever of the two frames is read first);
* a first ``session.update`` answered with ``invalid_value``, ``invalid_config`` or
  ``invalid_format`` before ``session.ready`` means the service refused the configuration:
  fatal (an :class:`AgentError` quoting the service's message and parameter);
* an agent that never answers within that window at the start is an :class:`AgentError`
  saying so ("never answered"), not a silent call;
* on ``session_not_found`` / ``session_forbidden`` / ``session_expired`` (in-band or as a 1008
  close) start a fresh session with the same config;
* on ``UNAUTHORIZED`` / ``FORBIDDEN`` stop with an :class:`AgentError` naming
  ``ASSEMBLYAI_API_KEY`` (never its value);
* inbound audio waits in a bounded buffer while the session is not ready and is replayed in
  order after the next ``session.ready``; what the bound forces out is counted and logged;
* tool calls run through the :class:`~botrun.core.tools.ToolRegistry`, their results sent when
  the session rules allow;
* the session sees both directions: every message we send passes
  :meth:`SessionState.send` first (a socket's first message, nothing before ready, results
  of a replaced session dropped), every server event :meth:`SessionState.admit` (the
  conversation only from a ready session). The client holds no protocol rule of its own.

Audio written to a socket that dies before the service reads it cannot be detected (the
protocol has no acknowledgements); everything the client still holds is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import AgentError
from .protocol import (
    BYTES_PER_SECOND,
    SETUP_REFUSED,
    NewSession,
    Notice,
    ProtocolError,
    Reconnecting,
    ReplyAudio,
    ReplyCreate,
    ReplyMuted,
    Resumed,
    ServerEvent,
    SessionEnd,
    SessionEnded,
    SessionError,
    SessionReady,
    SpeechStarted,
    ToolCall,
    ToolDone,
    ToolResult,
    UnknownEvent,
    decode,
    encode,
    encode_input_audio,
    get_path,
    tool_payload,
)
from .secrets import mask_url, redact, register_secret
from .session import SessionState
from .tools import ToolOutcome, ToolRegistry, error_result

log = logging.getLogger("botrun.agent")

KEY_VAR = "ASSEMBLYAI_API_KEY"
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_LOG_FIRST = 5  # log the first N bad messages, then every 100th
_QUOTE_MAX = 200  # characters of a service-supplied message quoted in our errors


def _quote(text: str) -> str:
    """A message from the network, made safe to quote: one line, bounded, secrets redacted."""
    text = " ".join(str(text).split())
    if len(text) > _QUOTE_MAX:
        text = text[: _QUOTE_MAX - 3] + "..."
    return redact(text)


@dataclass
class ClientStats:
    """Counters for logs, metrics and tests."""

    connects: int = 0
    #: WebSocket handshakes the service answered with an HTTP error (401, 503...).
    refused_handshakes: int = 0
    reconnects: int = 0
    resumes: int = 0
    fresh_sessions: int = 0
    messages_received: int = 0
    protocol_errors: int = 0
    unknown_events: int = 0
    session_errors: int = 0
    oversized_messages: int = 0
    audio_sent_bytes: int = 0
    audio_received_bytes: int = 0
    audio_dropped_ms: float = 0.0
    audio_replayed_ms: float = 0.0
    stale_audio_chunks: int = 0
    late_audio_chunks: int = 0  # reply audio after its reply.done: dropped
    refused_events: int = 0  # conversation events before session.ready / after session.ended
    tool_calls: int = 0
    tool_results_sent: int = 0
    tool_results_discarded: int = 0

    @property
    def reached(self) -> bool:
        """The service answered at all (a socket opened, or a handshake was refused)."""
        return self.connects > 0 or self.refused_handshakes > 0


Kind = Literal["transient", "fresh", "fatal", "closed"]
#: Buffered audio is replayed in messages of at most this many bytes (100 ms at 24 kHz;
#: a G.711 session replays 100 ms of its own rate).
REPLAY_CHUNK_BYTES = BYTES_PER_SECOND // 10


class _Disconnect(Exception):
    """Internal: why a connection ended and what to do next."""

    def __init__(self, kind: Kind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_END = object()


class AgentClient:
    """One voice-agent session for one call. Use from a single event loop::

        client = AgentClient(url, session_payload(cfg, tools.specs), api_key=key, tools=tools)
        await client.start()                 # connected and ready, or AgentError
        client.send_audio(pcm24k)            # any time; buffered while not ready
        async for event in client.events():  # server events + notices (Reconnecting, ...)
            ...
        await client.close()

    ``api_key`` goes in a Bearer header; ``token`` (a temporary token) in ``?token=``.
    Temporary tokens are single use, so reconnecting with one needs ``token_provider``, an
    async callable that mints a new one. ``buffer_s`` bounds inbound audio held while not
    ready. ``reconnect_window_s`` is how long a lost session can be resumed; ``give_up_s``
    how long the session may go without ``session.ready`` -- from the first connect, or from
    a loss mid-call -- before :meth:`start` or :meth:`events` raises :class:`AgentError` (one
    policy for both); ``start_attempts`` (None: no limit) optionally caps how many connects
    :meth:`start` tries within it. ``regreet`` speaks the greeting again when a fresh session
    replaces a lost one (default: no).

    Other services subclass it (core/backends/): the ``_wire_*`` methods are the seam where
    the wire format differs -- the first message(s) of a socket, how a control event and
    audio are encoded, how a message decodes into :mod:`~botrun.core.protocol` events, the
    auth header, the key's name -- and everything else (retry policy, buffering, tools,
    the session rules) is shared.
    """

    #: The environment variable named when the service refuses the key.
    key_var = KEY_VAR
    #: The wire protocol this client speaks (a name of :data:`.backends.mismatch.NAMES`).
    protocol = "assemblyai"

    def __init__(
        self,
        url: str,
        session: dict[str, Any],
        *,
        api_key: str | None = None,
        token: str | None = None,
        tools: ToolRegistry | None = None,
        buffer_s: float = 5.0,
        connect_timeout: float = 10.0,
        max_message_bytes: int = 16 * 2**20,
        reconnect_window_s: float = 30.0,
        backoff_base: float = 0.25,
        backoff_max: float = 5.0,
        ready_timeout: float = 15.0,
        give_up_s: float = 30.0,
        start_attempts: int | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        regreet: bool = False,
        token_provider: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        register_secret(api_key)
        register_secret(token)
        self.url = url
        self._display_url = mask_url(urlunsplit(urlsplit(url)._replace(query="", fragment="")))
        self._api_key = api_key
        self._token = token
        self._token_provider = token_provider
        self._token_spent = False  # temporary tokens are single use
        self._tools = tools
        if tools is not None and len(tools) and "tools" not in session:
            session = {**session, "tools": [tool_payload(s) for s in tools.specs]}
        self._state = SessionState(session, resume_window_s=reconnect_window_s, regreet=regreet)
        # Input audio is PCM16 at 24 kHz, or G.711 at 8 kHz one byte a sample (telephony
        # pass-through: the session's input.format says which).
        in_fmt = get_path(session, ("input", "format")) or {}
        out_fmt = get_path(session, ("output", "format")) or {}
        self._pcm16_in = in_fmt.get("encoding", "audio/pcm") == "audio/pcm"
        self._pcm16_out = out_fmt.get("encoding", "audio/pcm") == "audio/pcm"
        self._bps = BYTES_PER_SECOND if self._pcm16_in else int(in_fmt.get("sample_rate") or 8000)
        self._max_audio = max(0, int(buffer_s * self._bps)) & (~1 if self._pcm16_in else ~0)
        self._connect_timeout = connect_timeout
        self._max_message = max_message_bytes
        self._backoff = (backoff_base, backoff_max)
        self._ready_timeout = ready_timeout
        self._give_up_s = give_up_s
        self._start_attempts = None if start_attempts is None else max(1, start_attempts)
        self._deadline: float | None = None  # monotonic end of the current outage window
        self._last_failure = ""  # why the last connection attempt ended (for messages)
        self._pings = (ping_interval, ping_timeout)
        self._rng = random.Random()
        self._stats = ClientStats()
        self._audio: deque[bytes] = deque()
        self._audio_bytes = 0
        self._dropping = False
        self._controls: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        # run_events(): its handler, what waits for the end, what is still to hand over
        self._handler: Callable[[ServerEvent | Notice], None] | None = None
        self._handled: asyncio.Future[None] | None = None
        self._to_hand: deque[Any] = deque()
        self._handing = False
        self._ws: Any = None
        self._supervisor: asyncio.Task[None] | None = None
        self._first_ready: asyncio.Future[None] | None = None
        self._tool_tasks: set[asyncio.Task[None]] = set()
        self._fatal: AgentError | None = None
        self._closing = False
        self._closed = False
        self._want_end = False
        self._was_ready = False  # the current connection reached session.ready
        self._writer_error: str | None = None  # why the writer task died, if it did
        self._writer_busy = False  # the writer task is between messages: it sends, in order
        self._direct_failed: Exception | None = None  # see _direct_text
        self._ws_open: Any = None  # websockets' State.OPEN (imported with websockets)

    # -- public surface ---------------------------------------------------------------------

    def _ms(self, nbytes: int) -> float:
        """Milliseconds of input audio in ``nbytes`` (PCM16 24 kHz or G.711 8 kHz)."""
        return nbytes * 1000.0 / self._bps

    @property
    def session_id(self) -> str | None:
        return self._state.session_id

    @property
    def ready(self) -> bool:
        """Connected and ready: audio sent now goes straight out."""
        return self._state.can_send_audio

    @property
    def state(self) -> SessionState:
        """The session rules' view (reply in progress, turn timing marks); read-only use."""
        return self._state

    @property
    def stats(self) -> ClientStats:
        self._stats.stale_audio_chunks = self._state.stale_audio_chunks
        self._stats.late_audio_chunks = self._state.late_audio_chunks
        self._stats.refused_events = self._state.refused_events
        self._stats.tool_results_discarded = self._state.discarded_results
        return self._stats

    @property
    def buffered_ms(self) -> float:
        """Inbound audio waiting to be sent."""
        return self._ms(self._audio_bytes)

    async def start(self) -> None:
        """Connect and wait for ``session.ready``. Raises :class:`AgentError` on a refused
        key or when the service cannot be reached after ``start_attempts`` tries."""
        if self._supervisor is not None:
            return
        if self._closed:
            raise AgentError("this agent client was closed; make a new one")
        first_ready = self._first_ready = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.create_task(self._run(), name="agent-client")
        try:
            # the supervisor fails the start when the window passes; this is the backstop
            await asyncio.wait_for(asyncio.shield(first_ready), self._give_up_s + 1.0)
        except asyncio.CancelledError:
            await self._shutdown()  # nobody will use this session: do not leave it open
            raise
        except TimeoutError:
            if first_ready.done():  # ready (or failed) at the very deadline
                first_ready.result()
                return
            self._fail(self._never_answered())
            first_ready.exception()  # mark retrieved: raised below
            await self._shutdown()
            assert self._fatal is not None
            raise self._fatal from None

    def send_audio(self, pcm24k: bytes) -> None:
        """Queue PCM16 24 kHz mono audio for the agent. Non-blocking; call on the loop.

        While the session is not ready the audio waits (up to ``buffer_s``; beyond that the
        oldest is dropped, counted in ``stats.audio_dropped_ms`` and logged)."""
        if not pcm24k:
            return
        if self._pcm16_in and len(pcm24k) % 2:
            raise ValueError(f"PCM16 audio needs an even number of bytes, got {len(pcm24k)}")
        if self._closing or self._closed:
            self._stats.audio_dropped_ms += self._ms(len(pcm24k))
            return
        if not self._audio and self._state.can_send_audio and self._send_one(pcm24k):
            return  # the usual case: sent from this pass of the loop, nothing queued
        self._audio.append(bytes(pcm24k))
        self._audio_bytes += len(pcm24k)
        dropped = 0
        while self._audio_bytes > self._max_audio and len(self._audio) > 1:
            old = self._audio.popleft()
            self._audio_bytes -= len(old)
            dropped += len(old)
        if dropped:
            self._stats.audio_dropped_ms += self._ms(dropped)
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "agent not ready: inbound audio beyond %.1f s is being dropped (oldest first)",
                    self._max_audio / self._bps,
                )
        if self._state.can_send_audio and not self._send_now():
            self._wake.set()

    async def events(self) -> AsyncIterator[ServerEvent | Notice]:
        """Server events (reply audio the session rules refuse -- stale or late -- already
        dropped; tool calls are handled here and still yielded for observers) and the notices
        :class:`Reconnecting`, :class:`Resumed`, :class:`NewSession`, :class:`ReplyMuted`
        (just before the ``input.speech.started`` that cut a reply). Ends after
        :meth:`close`; raises :class:`AgentError` when the session failed for good.
        One consumer at a time."""
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)  # later iterators end too
                if self._fatal is not None:
                    raise self._fatal
                return
            yield item

    async def run_events(self, handle: Callable[[ServerEvent | Notice], None]) -> None:
        """What :meth:`events` yields, handed to ``handle`` on the loop in the same pass
        that read it: no queue and no task wake-up between the socket and the caller
        (reply audio comes 10 to 50 times a second per call). In order; an event made
        while ``handle`` runs is handed over right after it returns. Returns after
        :meth:`close`; raises :class:`AgentError` when the session failed for good, or
        whatever ``handle`` raised (it gets nothing more then). Use this or
        :meth:`events`, one consumer at a time."""
        done = self._handled = asyncio.get_running_loop().create_future()
        self._handler = handle
        try:
            while not self._queue.empty() and self._handler is handle:  # (came before)
                self._emit(self._queue.get_nowait())
            await done
        finally:
            if self._handled is done:
                self._handler = self._handled = None

    async def update_session(self, changes: dict[str, Any]) -> None:
        """Send a partial ``session.update`` (prompt, turn detection, key terms, tools,
        volume); kept and re-applied across reconnects. Immutable fields (greeting,
        output.voice, output.format) raise :class:`UsageError` without a round-trip."""
        for ev in self._state.update_session(changes):
            self._send_control(ev)

    def abandon_reply(self) -> None:
        """Treat the reply in progress as over (it stopped progressing and no ``reply.done``
        came): the session rules then drop whatever audio of it still arrives."""
        self._state.abandon_reply()

    async def request_reply(self, instructions: str | None = None) -> None:
        """Ask the agent to reply now (``reply.create``); sent once the session is ready."""
        self._send_control(ReplyCreate(instructions))

    async def close(self, timeout: float = 2.0) -> None:
        """End the session cleanly: flush queued audio, ``session.end``, wait briefly for
        ``session.ended``, close the socket. Idempotent. The closing handshake takes at most
        ``timeout`` plus 1 s; cancelled before that, the socket is dropped at once (never left
        open behind a caller that gave up waiting)."""
        if self._closed:
            return
        self._closing = True
        try:
            if self._ws is not None and self._state.can_send_audio:
                self._want_end = True
                self._wake.set()
                try:
                    await asyncio.wait_for(self._ended.wait(), timeout)
                except TimeoutError:
                    log.info("no session.ended within %.1f s; closing anyway", timeout)
            await self._shutdown()
        except asyncio.CancelledError:
            self._abort()
            raise

    def _abort(self) -> None:
        """Drop the connection now, without waiting for anything (close was cancelled)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.transport.abort()
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            sup.cancel()
        for task in list(self._tool_tasks):
            task.cancel()
        if not self._closed:
            self._closed = True
            self._emit(_END)

    # -- supervisor: connect, serve, reconnect ------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        # The start is an outage until the first session.ready: one window for both.
        self._deadline = time.monotonic() + self._give_up_s
        try:
            while not self._closing:
                try:
                    await self._connect_and_serve()
                    return  # closed on purpose
                except _Disconnect as d:
                    if self._closing or d.kind == "closed":
                        return
                    self._last_failure = redact(d.reason)
                    if d.kind == "fatal":
                        self._fail(AgentError(redact(d.reason)))
                        return
                    if d.kind == "fresh":
                        self._state.forget_session()
                    started = self._first_ready is not None and self._first_ready.done()
                    if self._was_ready:  # a loss mid-call: a new window opens
                        attempt, self._deadline = 0, time.monotonic() + self._give_up_s
                    attempt += 1
                    capped = self._start_attempts is not None and attempt >= self._start_attempts
                    if not started and capped:
                        self._fail(
                            AgentError(
                                redact(
                                    f"cannot connect to the voice agent at {self._display_url}: "
                                    f"{d.reason} (tried {attempt} times)"
                                )
                            )
                        )
                        return
                    delay = 0.0 if d.kind == "fresh" and attempt == 1 else self._delay(attempt)
                    if time.monotonic() + delay >= self._deadline:
                        self._fail(self._never_answered() if not started else self._lost(d))
                        return
                    log.warning(
                        "agent connection: %s; reconnecting in %.2f s (attempt %d)",
                        redact(d.reason),
                        delay,
                        attempt,
                    )
                    if started:
                        self._stats.reconnects += 1
                        self._emit(Reconnecting(attempt, redact(d.reason), delay))
                    await asyncio.sleep(delay)
        except Exception as exc:  # a bug here must not hang the call
            log.exception("agent client failed")
            self._fail(AgentError(f"agent client failed: {type(exc).__name__}: {exc}"))

    def _never_answered(self) -> AgentError:
        why = f" (last attempt: {self._last_failure})" if self._last_failure else ""
        if not self._stats.reached:  # unreachable, not silent
            return AgentError(
                redact(
                    f"could not reach the voice agent at {self._display_url} within "
                    f"{self._give_up_s:g} s{why}"
                )
            )
        return AgentError(
            redact(
                f"the voice agent at {self._display_url} never answered: no "
                f"session.ready within {self._give_up_s:g} s{why}"
            )
        )

    def _lost(self, d: _Disconnect) -> AgentError:
        return AgentError(
            redact(
                f"lost the voice agent at {self._display_url} and could not "
                f"reconnect within {self._give_up_s:g} s: {d.reason}"
            )
        )

    def _left(self, limit: float) -> float:
        """``limit``, cut to what is left of the outage window (never below 10 ms)."""
        if self._deadline is None or self._state.ready:
            return limit
        return max(0.01, min(limit, self._deadline - time.monotonic()))

    def _delay(self, attempt: int) -> float:
        base, cap = self._backoff
        return min(cap, base * 2 ** (attempt - 1)) * (0.5 + 0.5 * self._rng.random())

    def _fail(self, err: AgentError) -> None:
        self._fatal = err
        # Raised to the caller (start() or events()), who reports it: the CLI prints it as
        # its one error line, so logging it as an error too would say it twice.
        log.info("agent session failed: %s", err)
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(err)
        self._emit(_END)

    async def _connect_and_serve(self) -> None:
        self._was_ready = False
        from websockets.protocol import State

        ws = await self._open()
        self._ws, self._ws_open = ws, State.OPEN
        self._stats.connects += 1
        writer: asyncio.Task[None] | None = None
        try:
            self._wire_connecting()
            first = self._state.connection_opened()
            self._state.send(first)
            try:
                for frame in self._wire_first(first):
                    await ws.send(frame)
            except Exception as exc:
                raise self._closed_reason(exc) from None
            writer = asyncio.create_task(self._writer(ws), name="agent-writer")
            writer.add_done_callback(lambda t: self._writer_done(t, ws))
            await self._read(ws)
        finally:
            self._state.connection_lost()
            self._ws = None
            self._direct_failed = None
            if getattr(ws, "on_text", None) is not None:
                ws.on_text = None
            if writer is not None and not writer.done():
                writer.cancel()
                await asyncio.wait([writer])
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except asyncio.CancelledError:
                ws.transport.abort()  # never leave the socket open behind us
                raise
            except Exception:
                ws.transport.abort()

    def _writer_done(self, task: asyncio.Task[None], ws: Any) -> None:
        """A writer that died of an error would leave a socket that pings keep alive but
        that carries no audio: log it and drop the socket, so the reader reconnects."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        self._send_failed(exc, ws)

    def _send_failed(self, exc: BaseException, ws: Any) -> None:
        self._writer_error = f"{type(exc).__name__}: {exc}"
        log.error(
            "sending to the agent failed (%s); reconnecting", self._writer_error, exc_info=exc
        )
        with contextlib.suppress(Exception):
            ws.transport.abort()

    async def _open(self) -> Any:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus, InvalidURI

        url = self.url
        if self._token_provider is not None and (self._token_spent or not self._token):
            try:
                self._token = await self._token_provider()
            except Exception as exc:
                raise _Disconnect(
                    "transient", f"could not get a temporary token: {type(exc).__name__}: {exc}"
                ) from None
            register_secret(self._token)
            self._token_spent = False
        if self._token:
            parts = urlsplit(url)
            query = [*parse_qsl(parts.query), ("token", self._token)]
            url = urlunsplit(parts._replace(query=urlencode(query)))
        url, headers = self._wire_auth(url)
        local = (urlsplit(url).hostname or "") in _LOCAL_HOSTS
        open_timeout = self._left(self._connect_timeout)
        try:
            from .agent_socket import AgentConnection

            ws = await connect(
                url,
                create_connection=AgentConnection,
                additional_headers=headers,
                open_timeout=open_timeout,
                ping_interval=self._pings[0],
                ping_timeout=self._pings[1],
                close_timeout=1.0,
                max_size=self._max_message,
                compression=None,
                proxy=None if local else True,
            )
            self._token_spent = self._token is not None
            return ws
        except InvalidStatus as exc:
            self._stats.refused_handshakes += 1
            status = exc.response.status_code
            if status in (401, 403):
                raise _Disconnect("fatal", self._auth_message(f"HTTP {status}")) from None
            if status == 429 or status >= 500:
                raise _Disconnect("transient", f"HTTP {status} from the service") from None
            raise _Disconnect(
                "fatal", f"the voice agent at {self._display_url} answered HTTP {status}"
            ) from None
        except InvalidURI as exc:
            raise _Disconnect("fatal", f"invalid voice-agent URL: {exc}") from None
        except TimeoutError:
            raise _Disconnect("transient", f"no connection within {open_timeout:.3g} s") from None
        except Exception as exc:  # OSError (refused, DNS), handshake trouble
            raise _Disconnect("transient", f"{type(exc).__name__}: {exc}") from None

    def _auth_message(self, detail: str) -> str:
        key_var = self.key_var
        what = "temporary token" if self._token else f"API key in {key_var}"
        hint = (
            " Temporary tokens are single use and expire." if self._token else f" Check {key_var}."
        )
        if not self._token and not self._api_key:
            what, hint = "connection (no API key was sent)", f" Set {key_var}."
        return f"the voice agent at {self._display_url} refused the {what} ({detail}).{hint}"

    # -- the wire (overridden by other services' clients, core/backends/) --------------------

    def _wire_auth(self, url: str) -> tuple[str, dict[str, str]]:
        """The URL to open and the handshake headers (the key as a Bearer header)."""
        return url, ({"Authorization": f"Bearer {self._api_key}"} if self._api_key else {})

    def _wire_connecting(self) -> None:
        """A socket just opened, before the session picks its first message."""

    def _wire_first(self, first: Any) -> list[str]:
        """The frames that start a socket, for the session's first message."""
        return [encode(first)]

    def _wire_encode(self, ev: Any) -> list[str]:
        """The frames of one control event (none: nothing to send)."""
        return [encode(ev)]

    def _wire_may_send(self, ev: Any) -> bool:
        """May this control event go out now? (The session's rule: core/session.py.)"""
        return self._state.send(ev)

    #: One message of inbound audio (sent as a text frame): ``(pcm) -> bytes | str``. The
    #: codec's function itself, not a method calling it: it runs 50 times a second a call.
    _wire_audio: Callable[[bytes], bytes | str] = staticmethod(encode_input_audio)

    def _wire_decode(self, msg: str | bytes) -> list[Any]:
        """The :mod:`~botrun.core.protocol` events one message from the service means."""
        return [decode(msg, pcm16=self._pcm16_out)]

    def _wire_close(self, code: int, reason: str) -> tuple[int, str]:
        """A close frame as the session's classifier should read it."""
        return code, reason

    # -- reading ----------------------------------------------------------------------------

    async def _read(self, ws: Any) -> None:
        loop = asyncio.get_running_loop()
        wait = self._left(self._ready_timeout)
        deadline = loop.time() + wait
        # core/agent_socket.py: once the session is ready, whole text messages are handled
        # as the socket reads them; what they leave to recv() comes through here, in order
        recv = getattr(ws, "recv_message", ws.recv)
        direct = hasattr(ws, "on_text")
        while True:
            try:
                if self._state.ready:
                    if direct and ws.on_text is None:
                        ws.on_text = functools.partial(self._direct_text, ws)
                    msg = await recv()
                else:
                    msg = await asyncio.wait_for(recv(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _Disconnect("transient", f"no session.ready within {wait:.3g} s") from None
            except Exception as exc:
                raise self._closed_reason(exc) from None
            failed, self._direct_failed = self._direct_failed, None
            if failed is not None:  # handling this message as it was read failed
                raise failed
            self._stats.messages_received += 1
            self._handle(msg)

    def _direct_text(self, ws: Any, msg: str) -> bool:
        """A whole text message from ``ws``, handled in the pass of the loop that read it
        (core/agent_socket.py). False hands it to the reader instead: ``ws`` is no longer
        the connection, or handling a message failed (the reader then raises that error
        in its place, as if it had read it itself)."""
        if ws is not self._ws or self._direct_failed is not None:
            return False
        self._stats.messages_received += 1
        try:
            self._handle(msg)
        except Exception as exc:
            self._direct_failed = exc
            ws.on_text = None
            return False
        return True

    def _closed_reason(self, exc: BaseException) -> _Disconnect:
        from websockets.exceptions import ConnectionClosed

        if self._closing:
            return _Disconnect("closed", "closed by us")
        if self._writer_error is not None:
            why, self._writer_error = self._writer_error, None
            return _Disconnect("transient", f"sending failed: {why}")
        if not isinstance(exc, ConnectionClosed):
            return _Disconnect("transient", f"{type(exc).__name__}: {exc}")
        sent = exc.sent.code if exc.sent is not None else None
        code = exc.rcvd.code if exc.rcvd is not None else (sent or 1006)
        reason = exc.rcvd.reason if exc.rcvd is not None else ""
        code, reason = self._wire_close(code, reason)
        label = f"connection closed ({code}{': ' + _quote(reason) if reason else ''})"
        # what it means is a protocol rule: the session's (core/session.py)
        match self._state.classify_close(code, reason, sent):
            case "oversized":
                self._stats.oversized_messages += 1
                return _Disconnect(
                    "transient", f"a message larger than {self._max_message} bytes (close 1009)"
                )
            case "auth":
                return _Disconnect("fatal", self._auth_message(label))
            case "refused":
                return _Disconnect("fatal", f"the voice agent at {self._display_url} {label}")
            case "fresh" if self._state.ended:
                return _Disconnect("fresh", "the service ended the session")
            case "fresh":
                return _Disconnect("fresh", label)
        return _Disconnect("transient", label)

    def _handle(self, msg: str | bytes) -> None:
        events = self._wire_decode(msg)
        for ev in events:
            if isinstance(ev, (UnknownEvent, ProtocolError)):  # a tuple: no union made per message
                self._check_protocol(msg)
                break
        for ev in events:
            self._handle_event(ev)

    def _check_protocol(self, msg: str | bytes) -> None:
        """A message this backend does not understand: fail fast if it is recognisably
        another backend's (a service or simulator speaking another protocol, issue 18)."""
        from .backends.mismatch import client_message, server_protocol

        theirs = server_protocol(msg)
        if theirs is not None and theirs != self.protocol:
            raise _Disconnect("fatal", client_message(self._display_url, self.protocol, theirs))

    def _handle_event(self, ev: Any) -> None:
        if not self._state.admit(ev):  # forbidden where it came (core/session.py)
            n = self._state.refused_events
            if n <= _LOG_FIRST or n % 100 == 0:
                log.warning(
                    "agent sent %s %s (#%d, ignored)",
                    type(ev).__name__,
                    "after session.ended" if self._state.ended else "before session.ready",
                    n,
                )
            return
        match ev:
            case ReplyAudio():
                play = self._state.audio_to_play(ev)  # stale or late audio: None
                if play is not None:
                    self._stats.audio_received_bytes += len(play.pcm)
                    self._emit(play)
                return
            case ProtocolError():
                self._stats.protocol_errors += 1
                n = self._stats.protocol_errors
                if n <= _LOG_FIRST or n % 100 == 0:
                    log.warning(
                        "bad message from the agent (#%d, ignored): %s | %s", n, ev.reason, ev.raw
                    )
                return
            case UnknownEvent():
                self._stats.unknown_events += 1
                log.debug("ignoring unknown agent event %r", ev.type)
                return
            case SessionError():
                self._on_error(ev)
                return
            case ToolCall():
                self._state.receive(ev)
                self._stats.tool_calls += 1
                task = asyncio.create_task(self._run_tool(ev), name=f"tool-{ev.name}")
                self._tool_tasks.add(task)
                task.add_done_callback(self._tool_tasks.discard)
                self._emit(ev)
                return
        for action in self._state.receive(ev):
            self._send_control(action)
        if isinstance(ev, SpeechStarted) and self._state.muted_reply_id is not None:
            self._emit(ReplyMuted(self._state.muted_reply_id))  # before it: see ReplyMuted
        self._emit(ev)
        if isinstance(ev, SessionReady):
            self._on_ready(ev)
        elif isinstance(ev, SessionEnded):
            self._ended.set()
            if not self._closing:
                raise _Disconnect("fresh", "the service ended the session")

    def _on_ready(self, ev: SessionReady) -> None:
        self._was_ready = True
        kind = self._state.ready_kind
        if kind == "resumed":
            self._stats.resumes += 1
            self._emit(Resumed(ev.session_id))
        elif kind == "new":
            self._stats.fresh_sessions += 1
            self._emit(NewSession(ev.session_id, self._state.previous_session_id))
            # (results queued for the old session are refused by SessionState.send)
        if self._audio_bytes:
            self._stats.audio_replayed_ms += self._ms(self._audio_bytes)
            log.info(
                "agent ready (%s): sending %.0f ms of buffered audio (%.0f ms dropped)",
                kind,
                self._ms(self._audio_bytes),
                self._stats.audio_dropped_ms,
            )
        self._dropping = False
        self._wake.set()
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_result(None)

    def _on_error(self, ev: SessionError) -> None:
        self._stats.session_errors += 1
        self._emit(ev)
        detail = f"{ev.code}: {_quote(ev.message)}"
        match self._state.classify_error(ev):  # a protocol rule: core/session.py
            case "auth":
                raise _Disconnect("fatal", self._auth_message(detail))
            case "transient":
                raise _Disconnect("transient", detail)
            case "fresh" | "refused" as what if ev.code in SETUP_REFUSED:
                if ev.param:
                    detail += f" (param {_quote(ev.param)})"
                if what == "fresh":  # the resume was refused: set the session up afresh
                    raise _Disconnect("fresh", f"resume refused: {detail}")
                raise _Disconnect(
                    "fatal",
                    f"the voice agent at {self._display_url} refused the session: {detail}",
                )
            case "fresh":
                raise _Disconnect("fresh", detail)
        log.warning(
            "agent reported %s: %s%s",
            ev.code,
            _quote(ev.message),
            f" (param {_quote(ev.param)})" if ev.param else "",
        )

    def _emit(self, item: Any) -> None:
        """An event (or ``_END``) for the consumer: queued for :meth:`events`, or handed to
        :meth:`run_events`' handler now."""
        if self._handler is None:
            self._queue.put_nowait(item)
            return
        self._to_hand.append(item)
        if self._handing:
            return  # made while the handler runs: handed over after it, in order
        self._handing = True
        try:
            while self._to_hand and self._handler is not None:
                item = self._to_hand.popleft()
                if item is _END:
                    self._queue.put_nowait(_END)  # later consumers end too
                    self._stop_handing(self._fatal)
                    return
                try:
                    self._handler(item)
                except Exception as exc:
                    self._stop_handing(exc)
        finally:
            self._handing = False

    def _stop_handing(self, exc: BaseException | None) -> None:
        """run_events() ends (raising ``exc``, if any); what was not handed over is queued."""
        done, self._handler, self._handled = self._handled, None, None
        while self._to_hand:
            self._queue.put_nowait(self._to_hand.popleft())
        if done is not None and not done.done():
            if exc is None:
                done.set_result(None)
            elif isinstance(exc, StopIteration):  # (a future refuses to carry one)
                done.set_exception(RuntimeError(f"the event handler raised {exc!r}"))
            else:
                done.set_exception(exc)

    # -- writing ----------------------------------------------------------------------------

    def _send_control(self, ev: Any) -> None:
        self._controls.append(ev)
        self._wake.set()

    async def _run_tool(self, call: ToolCall) -> None:
        if self._tools is None:
            message = f"no tools are configured (the agent asked for '{call.name}')"
            outcome = ToolOutcome(call.name, call.arguments, error_result(message), message)
        elif call.bad_arguments is not None:
            outcome = self._tools.reject(call.name, call.arguments, call.bad_arguments)
        else:
            outcome = await self._tools.run(call.name, call.arguments)
        for action in self._state.add_tool_result(call.call_id, outcome.result):
            self._send_control(action)
        o = outcome
        self._emit(
            ToolDone(
                call.call_id, o.name, o.arguments, o.result, o.error, o.duration_ms, o.truncated
            )
        )

    def _pop_audio(self) -> bytes:
        parts = [self._audio.popleft()]
        size = len(parts[0])
        while self._audio and size + len(self._audio[0]) <= self._bps // 10:
            nxt = self._audio.popleft()
            parts.append(nxt)
            size += len(nxt)
        self._audio_bytes -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _send_one(self, pcm: bytes) -> bool:
        """:meth:`_send_now` for one chunk with nothing queued ahead of it, without the
        queue; False when the writer must send it. (Every call sends 50 of these a
        second: the checks of :meth:`_direct_socket` and the framing are written out.)"""
        ws = self._ws
        if ws is None or self._writer_busy or self._controls or self._want_end:
            return False
        protocol, transport = ws.protocol, ws.transport
        if protocol.state is not self._ws_open or transport.get_write_buffer_size():
            return False
        try:
            message = self._wire_audio(pcm)
            protocol.send_text(message.encode() if isinstance(message, str) else message)
        except Exception as exc:  # as _frame_audio: kept, and a new socket
            self._frame_failed(ws, pcm, exc)
            return True
        self._stats.audio_sent_bytes += len(pcm)
        for data in protocol.data_to_send():
            if data:
                transport.write(data)
        return True

    def _send_now(self) -> bool:
        """Send the queued audio from the caller's own pass of the loop, without waking
        the writer task; False when the writer must send it (it is busy or has control
        messages to send first, or the socket holds unsent bytes: that path waits for them).

        The common case by far: the hand-off tick that made the audio writes it. Waking a
        writer task per message per call cost a future, a task step and websockets'
        ``send`` context for every 20 ms of every call -- a quarter of the loop at 50
        calls. The frame is made by the connection's own Sans-I/O protocol object, so
        ordering, masking and the connection's state stay websockets' business."""
        ws = self._direct_socket()
        if ws is None:
            return False
        while self._audio:
            if not self._frame_audio(ws, self._pop_audio()):
                return True
        self._write_out(ws)
        return True

    def _direct_socket(self) -> Any:
        """The connection, when audio may be framed onto it right now: open, no control
        message waiting, the writer not between messages, no unsent bytes."""
        ws = self._ws
        if ws is None or self._writer_busy or self._controls or self._want_end:
            return None
        if ws.protocol.state is not self._ws_open or ws.transport.get_write_buffer_size():
            return None
        return ws

    def _frame_audio(self, ws: Any, chunk: bytes) -> bool:
        """Frame ``chunk`` as the next message on ``ws``. On failure the chunk goes back to
        the front of the queue and the socket is replaced, as if the writer had died."""
        try:
            message = self._wire_audio(chunk)
            ws.protocol.send_text(message.encode() if isinstance(message, str) else message)
        except Exception as exc:
            self._frame_failed(ws, chunk, exc)
            return False
        self._stats.audio_sent_bytes += len(chunk)
        return True

    def _frame_failed(self, ws: Any, chunk: bytes, exc: BaseException) -> None:
        """Framing ``chunk`` failed: it goes back to the front of the queue and the socket
        is replaced, as if the writer had died."""
        self._audio.appendleft(bytes(chunk))
        self._audio_bytes += len(chunk)
        self._send_failed(exc, ws)

    @staticmethod
    def _write_out(ws: Any) -> None:
        for data in ws.protocol.data_to_send():
            if data:
                ws.transport.write(data)

    async def _writer(self, ws: Any) -> None:
        """Sends control messages, then audio, whenever the session is ready. A message
        that fails because the socket closed goes back to the front of its queue."""
        try:
            await self._write_loop(ws)
        finally:
            self._writer_busy = False

    async def _write_loop(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        while True:
            self._writer_busy = False
            await self._wake.wait()
            self._wake.clear()
            self._writer_busy = True
            while self._state.can_send_audio and ws is self._ws:
                if self._controls:
                    ev = self._controls.popleft()
                    if not self._wire_may_send(ev):  # obsolete (its session is gone)
                        continue
                    try:
                        for frame in self._wire_encode(ev):
                            await ws.send(frame)
                    except ConnectionClosed:
                        self._state.unsent(ev)
                        self._controls.appendleft(ev)
                        return
                    if isinstance(ev, ToolResult):
                        self._stats.tool_results_sent += 1
                elif self._audio:
                    chunk = self._pop_audio()
                    try:
                        await ws.send(self._wire_audio(chunk), text=True)
                    except ConnectionClosed:
                        self._audio.appendleft(chunk)
                        self._audio_bytes += len(chunk)
                        return
                    except BaseException:  # kept for the next socket (see _writer_done)
                        self._audio.appendleft(chunk)
                        self._audio_bytes += len(chunk)
                        raise
                    self._stats.audio_sent_bytes += len(chunk)
                elif self._want_end:
                    self._want_end = False
                    end = SessionEnd()
                    self._state.send(end)
                    frames = self._wire_encode(end)
                    if not frames:  # the service has no goodbye: closing is the end
                        self._ended.set()
                    with contextlib.suppress(ConnectionClosed):
                        for frame in frames:
                            await ws.send(frame)
                    return
                else:
                    break

    async def _shutdown(self) -> None:
        sup, self._supervisor = self._supervisor, None
        if sup is not None and not sup.done():
            sup.cancel()
            # asyncio.wait: a cancellation of *this* call is not swallowed with the
            # supervisor's own (which closes its socket in its finally either way)
            await asyncio.wait([sup])
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
        for task in list(self._tool_tasks):
            task.cancel()
        if self._tool_tasks:
            await asyncio.gather(*self._tool_tasks, return_exceptions=True)
        if self._audio_bytes:
            self._stats.audio_dropped_ms += self._ms(self._audio_bytes)
            self._audio.clear()
            self._audio_bytes = 0
        self._closed = True
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(AgentError("the agent client was closed"))
            self._first_ready.exception()  # mark retrieved
        self._emit(_END)
