"""serve's listening socket, hardened against slow and hostile clients.

aiohttp parses HTTP and closes idle keep-alive connections (``keepalive_timeout``); this
module adds what it lacks, at the connection level, without touching HTTP:

* a **connection cap**: beyond ``max_connections`` open connections a new one is closed at
  once, so a flood of half-open connections cannot use up the descriptors serve needs for
  webhooks, Daily's API and its bots (the default is derived from the descriptor limit);
* a **header deadline**: a connection that has not sent a complete request within
  ``idle_timeout_s`` is closed (older aiohttp releases wait for ever for the first request);
* **rate-limited logging** of all of that, and of asyncio's and aiohttp's own complaints.

The request *body* deadline lives in the app (``read_timeout_s``, answered 408).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

net_log = logging.getLogger("botrun.serve.net")

#: Descriptors kept free for everything but client connections (logs, Daily's API, pipes).
_RESERVED_FDS = 64
_FDS_PER_BOT = 4
_MAX_AUTO_CONNECTIONS = 1000
#: The listen backlog; asyncio accepts up to this many sockets before the cap sees them, so
#: the automatic cap leaves room for them too.
BACKLOG = 64


@dataclass(frozen=True)
class Limits:
    """How long and how many: see the module docstring."""

    #: Idle keep-alive connections, and a request's headers, get this long.
    idle_timeout_s: float = 15.0
    #: A request body gets this long (the app answers 408 after it).
    read_timeout_s: float = 10.0
    #: Most client connections open at once (0: derived from the descriptor limit).
    max_connections: int = 0


def auto_max_connections(max_bots: int) -> int:
    """A connection cap that leaves descriptors for everything else serve does."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_AUTO_CONNECTIONS
    spare = soft - _RESERVED_FDS - BACKLOG - _FDS_PER_BOT * max_bots
    return max(8, min(_MAX_AUTO_CONNECTIONS, spare))


class RateLimit(logging.Filter):
    """At most ``burst`` records per message template per ``period_s``; the next record let
    through after a quiet spell says how many were dropped."""

    def __init__(
        self, burst: int = 10, period_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.period_s = period_s
        self._clock = clock
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        start, count, dropped = self._windows.get(key, (now, 0, 0))
        if now - start >= self.period_s:
            start, count = now, 0
        if count >= self.burst:
            self._windows[key] = (start, count, dropped + 1)
            return False
        self._windows[key] = (start, count + 1, 0)
        if len(self._windows) > 1000:  # many distinct templates: forget the oldest
            self._windows.pop(next(iter(self._windows)))
        if dropped:
            record.msg = f"{record.msg} ({dropped} similar message(s) suppressed)"
        return True


#: Loggers whose records a client can cause in bulk.
NOISY_LOGGERS = ("botrun.serve.net", "asyncio", "aiohttp.server", "aiohttp.web")


def install_rate_limits(burst: int = 10, period_s: float = 10.0) -> RateLimit:
    limit = RateLimit(burst, period_s)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).addFilter(limit)
    return limit


class ConnectionGuard:
    """Counts client connections, refuses those over the cap, closes those that send no
    request in time. Its protocol factory wraps aiohttp's (``runner.server``)."""

    def __init__(self, limits: Limits, max_connections: int) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.active = 0
        self.refused = 0
        self.expired = 0
        #: Requests aiohttp could not parse (answered 400).
        self.malformed = 0
        self._waiting: dict[Any, _GuardedProtocol] = {}

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, inner())

    def request_started(self, transport: Any) -> None:
        """A complete request arrived: its connection is past the header deadline."""
        guarded = self._waiting.pop(transport, None)
        if guarded is not None:
            guarded.cancel_deadline()


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol behind a door: counts, caps, and a first-request deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner: asyncio.Protocol | None = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        assert isinstance(transport, asyncio.Transport)
        if guard.active >= guard.max_connections:
            guard.refused += 1
            net_log.warning(
                "connection from %s refused: %d connections open (the cap)",
                _peer(transport),
                guard.active,
            )
            self._inner = None
            transport.abort()  # frees the descriptor now
            return
        guard.active += 1
        self._transport = transport
        guard._waiting[transport] = self
        self._deadline = asyncio.get_running_loop().call_later(
            guard.limits.idle_timeout_s, self._expire
        )
        assert self._inner is not None
        self._inner.connection_made(transport)

    def cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._guard.expired += 1
        net_log.warning(
            "connection from %s closed: no complete request within %.0f s",
            _peer(transport),
            self._guard.limits.idle_timeout_s,
        )
        transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:  # refused at the door
            return
        self.cancel_deadline()
        self._guard.active -= 1
        self._guard._waiting.pop(self._transport, None)
        self._transport = None
        self._inner.connection_lost(exc)


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger for serve: a request aiohttp cannot parse (a 100 kB header
    line, a broken request line: the client's fault, answered 400) is one WARNING line on
    ``botrun.serve.net``, counted by the guard, not a traceback at ERROR. Anything else is
    logged as aiohttp logs it."""

    def __init__(self, guard: ConnectionGuard) -> None:
        from aiohttp.log import server_logger

        super().__init__(server_logger, {})
        self.guard = guard

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        import sys

        from aiohttp.http_exceptions import HttpProcessingError

        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            self.guard.malformed += 1
            why = " ".join(str(exc.message).split())[:200] or type(exc).__name__
            peer = args[0] if args else "?"
            net_log.warning(
                "malformed request from %s: %s (%d so far)", peer, why, self.guard.malformed
            )
            return
        self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)


GUARD = web.AppKey("connection_guard", ConnectionGuard)


@web.middleware
async def note_request(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tell the guard (if serve runs behind one) that this connection sent a request."""
    guard = request.app.get(GUARD)
    if guard is not None:
        guard.request_started(request.transport)
    return await handler(request)


async def listen(
    runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard
) -> asyncio.Server:
    """Listen on ``host:port`` with aiohttp's protocol behind ``guard``. ``runner`` must be
    set up; close the returned server before ``runner.cleanup()``."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard.factory(server), host or None, port, backlog=BACKLOG)


async def start_listening(
    app: web.Application, host: str, port: int, limits: Limits, max_connections: int
) -> tuple[web.AppRunner, asyncio.Server]:
    """Set ``app`` up behind a :class:`ConnectionGuard` (``max_connections``, ``limits``) and
    listen on ``host:port`` (``botrun serve`` and its ``--queue`` front door). A port that
    cannot be bound: a one-line :class:`~botrun.core.errors.UsageError`, nothing left open.
    Close the returned server, then ``runner.cleanup()``."""
    from botrun.core.errors import UsageError

    guard = ConnectionGuard(limits, max_connections)
    app[GUARD] = guard
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=limits.idle_timeout_s,
        logger=ServerLog(guard),
    )
    await runner.setup()
    try:
        listener = await listen(runner, host, port, guard)
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return runner, listener


def bound_addresses(listener: asyncio.Server) -> list[tuple[str, int]]:
    """The (host, port) pairs ``listener`` is bound to (port 0 resolved)."""
    return [sock.getsockname()[:2] for sock in listener.sockets]
