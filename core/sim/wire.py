"""Protocol adapters: the simulator speaking OpenAI Realtime or Gemini Live.

The simulator's behaviours -- speech detection, echo and scripted replies, tool calls,
barge-in with stale audio, injected faults, resume -- live once, in the Voice Agent API
path (``connection.py``, ``agent.py``). An adapter sits between that path and the socket:
it looks like a ``websockets`` server connection to :class:`~.connection.Connection`,
translates each client message of its protocol into Voice Agent API messages (or answers
it itself where the protocol has no equivalent: OpenAI's truncation, for one), and each
server event the simulator sends into its protocol's messages. Frames that are not
Voice Agent API events (the injected junk) pass through untouched.

What each adapter records for tests lives in ``SimSession.wire`` (truncations, seeded
conversation items, tool cancellations, ...).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..backends.mismatch import client_protocol, close_reason

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .connection import Connection
    from .server import Simulator
    from .session import SimSession

log = logging.getLogger("botrun.sim")
#: The close code for a client of another protocol (policy: a refusal, not a fault).
CLOSE_MISMATCH = 1008

PROTOCOLS = ("assemblyai", "openai", "gemini")
_SAY = re.compile(r'^Say exactly[^"]*"(?P<text>.*)"\s*$', re.DOTALL)


def spoken(instructions: str) -> str:
    """What the simulated model says for ``instructions``: the quoted text of a
    ``Say exactly ...: "..."`` instruction (how botrun asks for a greeting on services
    without one), else the instructions themselves (the simulator's ``reply_create``)."""
    m = _SAY.match(instructions.strip())
    return m.group("text") if m else instructions


def dump(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


class WireSocket:
    """Base adapter: wraps the real socket; subclasses translate both directions."""

    protocol = "assemblyai"

    def __init__(self, ws: ServerConnection, sim: Simulator) -> None:
        self.ws = ws
        self.sim = sim
        self.conn: Connection | None = None

    # -- what Connection uses ----------------------------------------------------------
    @property
    def request(self) -> Any:
        return self.ws.request

    @property
    def transport(self) -> Any:
        return getattr(self.ws, "transport", None)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(*self.close_frame(code, reason))

    def close_frame(self, code: int, reason: str) -> tuple[int, str]:
        return code, reason

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._inbound()

    async def _inbound(self) -> AsyncIterator[str | bytes]:
        await self.opened()
        first = True
        async for raw in self.ws:
            if isinstance(raw, bytes):
                yield raw  # the simulator answers binary frames itself
                continue
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError):
                yield raw
                continue
            if not isinstance(data, dict):
                yield raw
                continue
            if first:
                first = False
                theirs = client_protocol(data)
                if theirs is not None and theirs != self.protocol:
                    await self.refuse_foreign(theirs)
                    return
            if not self.knows(data):
                yield raw
                continue
            for out in await self.from_client(data):
                yield out

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.ws.send(message)
            return
        try:
            event = json.loads(message)
        except (ValueError, RecursionError):
            await self.ws.send(message)
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            await self.ws.send(message)
            return
        frames = await self.to_client(event)
        for frame in frames:
            await self.ws.send(frame)

    # -- subclasses -------------------------------------------------------------------
    @property
    def session(self) -> SimSession | None:
        return self.conn.session if self.conn is not None else None

    def record(self, key: str, value: Any) -> None:
        s = self.session
        if s is not None:
            s.wire.setdefault(key, []).append(value)

    async def refuse_foreign(self, theirs: str) -> None:
        """The client's first message is of protocol ``theirs``: say so (log, this
        protocol's error where it has one) and close with a reason naming ours."""
        reason = close_reason(self.protocol, theirs)
        log.warning(
            "%s client connected to the %s simulator: closing (%s)", theirs, self.protocol, reason
        )
        await self.ws.close(CLOSE_MISMATCH, reason)

    async def opened(self) -> None:
        """The socket is being served (first thing, before any client message)."""

    def knows(self, data: dict[str, Any]) -> bool:
        """Is this a message of the adapter's protocol (else it goes to the simulator as
        it is, and gets the simulator's ``invalid_format`` answer, translated)?"""
        return True

    async def from_client(self, data: dict[str, Any]) -> list[str]:
        """Voice Agent API messages for one client message (answering it directly where
        the protocol needs it)."""
        raise NotImplementedError

    async def to_client(self, event: dict[str, Any]) -> list[str]:
        """This protocol's frames for one Voice Agent API server event."""
        raise NotImplementedError


def adapter_for(protocol: str) -> type[WireSocket] | None:
    if protocol == "openai":
        from .openai_wire import OpenAISocket

        return OpenAISocket
    if protocol == "gemini":
        from .gemini_wire import GeminiSocket

        return GeminiSocket
    return None
