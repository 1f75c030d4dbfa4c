"""A small scripted voice-agent server on loopback, for the agent-client tests.

Not the simulator (core/sim): each test writes what the server does on each connection as a
coroutine ``script(conn)``. The server records every client message, counts inbound audio
per connection and in total, and answers ``session.end`` with ``session.ended`` + close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from botrun.core.protocol import (
    ClientEvent,
    InputAudio,
    ProtocolError,
    ServerEvent,
    SessionEnd,
    SessionEnded,
    SessionReady,
    UnknownEvent,
    decode_client,
    encode_server,
)

Script = Callable[["Conn"], Awaitable[None]]
WAIT = 5.0  # seconds a test helper waits for something that should happen promptly


class Conn:
    """One client connection as a script sees it."""

    def __init__(self, server: AgentServer, ws: ServerConnection, index: int) -> None:
        self.server = server
        self.ws = ws
        self.index = index
        self.headers = ws.request.headers if ws.request else None
        self.path = ws.request.path if ws.request else ""
        self.log: list[ClientEvent | UnknownEvent | ProtocolError] = []
        self.audio = bytearray()
        self._messages: asyncio.Queue[Any] = asyncio.Queue()
        self._audio_changed = asyncio.Event()
        self.closed = asyncio.Event()

    async def reader(self) -> None:
        try:
            async for raw in self.ws:
                ev = decode_client(raw)
                self.log.append(ev)
                if isinstance(ev, InputAudio):
                    self.audio += ev.audio
                    self.server.audio += ev.audio
                    self._audio_changed.set()
                    continue
                if isinstance(ev, SessionEnd) and self.server.auto_end:
                    await self.send(SessionEnded(1.0, 0.5))
                    await self.ws.close()
                await self._messages.put(ev)
        except Exception:
            pass
        finally:
            self.closed.set()
            self._audio_changed.set()

    async def next(self, timeout: float = WAIT) -> ClientEvent | UnknownEvent | ProtocolError:
        """The next non-audio client message."""
        return await asyncio.wait_for(self._messages.get(), timeout)

    def pending(self) -> list[Any]:
        """Non-audio messages received but not yet taken with :meth:`next`."""
        out = []
        while not self._messages.empty():
            out.append(self._messages.get_nowait())
        return out

    async def wait_audio(self, nbytes: int, timeout: float = WAIT) -> None:
        """Until this connection has received at least ``nbytes`` of audio."""

        async def loop() -> None:
            while len(self.audio) < nbytes:
                self._audio_changed.clear()
                if self.closed.is_set():
                    raise ConnectionError(f"closed with {len(self.audio)}/{nbytes} bytes")
                await self._audio_changed.wait()

        await asyncio.wait_for(loop(), timeout)

    async def send(self, event: ServerEvent | dict[str, Any] | str | bytes) -> None:
        if isinstance(event, str | bytes):
            await self.ws.send(event)
        elif isinstance(event, dict):
            import json

            await self.ws.send(json.dumps(event))
        else:
            await self.ws.send(encode_server(event))

    async def ready(self, session_id: str = "sess-1") -> ClientEvent | UnknownEvent | ProtocolError:
        """Take the first message and answer ``session.ready``; returns the first message."""
        first = await self.next()
        await self.send(SessionReady(session_id))
        return first

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.ws.transport.abort()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    async def hold(self) -> None:
        """Keep the connection open until the client goes away."""
        await self.closed.wait()


class AgentServer:
    """``async with AgentServer([script1, script2]) as srv: ... srv.url``. Connection *n*
    runs ``scripts[n]`` (the last one repeats). ``http_status`` refuses every handshake."""

    def __init__(
        self,
        scripts: Sequence[Script] = (),
        *,
        http_status: int | None = None,
        auto_end: bool = True,
    ) -> None:
        self.scripts = list(scripts) or [_default_script]
        self.http_status = http_status
        self.auto_end = auto_end
        self.conns: list[Conn] = []
        self.audio = bytearray()
        self.new_conn = asyncio.Condition()
        self._server: Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.errors: list[BaseException] = []
        self.url = ""

    async def __aenter__(self) -> AgentServer:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            compression=None,
            max_size=None,
            close_timeout=0.5,
            process_request=self._process_request if self.http_status else None,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/v1/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self.errors and exc[0] is None:
            raise self.errors[0]

    async def stop(self) -> None:
        """Stop listening and drop every connection (later connects are refused)."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    def _process_request(self, connection: ServerConnection, request: Any) -> Any:
        return connection.respond(HTTPStatus(self.http_status), "refused\n")

    async def _handler(self, ws: ServerConnection) -> None:
        conn = Conn(self, ws, len(self.conns))
        async with self.new_conn:
            self.conns.append(conn)
            self.new_conn.notify_all()
        reader = asyncio.create_task(conn.reader())
        script = self.scripts[min(conn.index, len(self.scripts) - 1)]
        try:
            await script(conn)
            await conn.hold()
        except (asyncio.CancelledError, ConnectionError):
            pass
        except Exception as exc:  # surfaced by __aexit__ so a script bug fails the test
            if not conn.closed.is_set():
                self.errors.append(exc)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def conn(self, index: int, timeout: float = WAIT) -> Conn:
        """Wait for connection number ``index`` (0-based)."""
        async with self.new_conn:
            await asyncio.wait_for(self.new_conn.wait_for(lambda: len(self.conns) > index), timeout)
        return self.conns[index]


async def _default_script(conn: Conn) -> None:
    await conn.ready()
