"""The agent's WebSocket connection: websockets' own, with whole text messages handed to the
client in the pass of the loop that read them.

websockets' ``recv()`` puts every message through a buffer, a future and a task step of the
reader. A voice agent sends ``reply.audio`` 10 to 50 times a second per call, and at 50
calls those steps were a noticeable part of the event loop. :class:`AgentConnection` is
passed to ``websockets.asyncio.client.connect`` as its ``create_connection`` (the library's
documented way to customise the connection). While its ``on_text`` is set and nothing is
waiting in ``recv()``'s buffer, a text frame holding a whole message is decoded and handed to
``on_text`` as it is parsed; ``on_text`` returns False to have that message go to ``recv()``
after all. Everything else -- fragmented messages, binary messages, control frames, the
handshake, and text that is not valid UTF-8 -- goes websockets' own way, so the order of
messages, flow control, pings and the closing handshake stay the library's business.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class AgentConnection(ClientConnection):
    """A client connection with a direct route for whole text messages (see above)."""

    # the client's handler: True when it took the message, False to leave it to recv()
    on_text: Callable[[str], bool] | None = None
    # whole data messages handed to recv()'s buffer and not yet taken by recv_message():
    # while there are any, new text waits behind them (messages stay in order)
    waiting = 0

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.fin and event.opcode in _DATA:
            on_text = self.on_text
            if on_text is not None and not self.waiting and event.opcode is Opcode.TEXT:
                try:
                    text = str(event.data, "utf-8")
                except UnicodeDecodeError:
                    pass  # websockets reports it, as it would have
                else:
                    if on_text(text):
                        return
            self.waiting += 1
        super().process_event(event)

    async def recv_message(self) -> str | bytes:
        """``recv()``, counting what it takes (use this, not ``recv()``, with ``on_text``)."""
        message = await self.recv()
        self.waiting -= 1
        return message
