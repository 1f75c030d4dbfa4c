"""Keypad presses told to the agent (``[bot] dtmf = "forward"``, the default).

A phone caller's key presses arrive one tone at a time. :class:`KeySequence` gathers the keys
of one press-sequence -- until ``[bot] dtmf_gap_s`` passes without another press, or ``#``
(the usual "end of entry" key) is pressed, or :data:`MAX_KEYS` are waiting -- so "1 2 3 #"
reaches the agent as one message, :func:`keypad_message`. The agent is told through
``reply.create`` instructions, the one message of the Voice Agent API that adds words to a
session mid-call (it documents none for user text); the backends' wires translate it as
every ``reply.create``: OpenAI Realtime a ``response.create`` with these instructions,
Gemini Live a user text turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: The key that ends a sequence at once.
END_KEY = "#"
#: A sequence this long is sent without waiting for the gap.
MAX_KEYS = 32


def keypad_message(keys: str) -> str:
    """What the agent is told for ``keys``: ``The caller pressed these keys on the phone
    keypad: 1 2 3 #``."""
    return "The caller pressed these keys on the phone keypad: " + " ".join(keys)


class KeySequence:
    """Gathers keys (:meth:`add`) and hands each finished sequence to ``send`` (on the event
    loop, from a timer or from :meth:`add`)."""

    def __init__(self, gap_s: float, send: Callable[[str], None]) -> None:
        self.gap_s = gap_s
        self._send = send
        self._keys: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> str:
        """The keys of the sequence not sent yet."""
        return "".join(self._keys)

    def add(self, key: str) -> None:
        self._keys.append(key)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if key == END_KEY or len(self._keys) >= MAX_KEYS:
            self.flush()
        else:
            self._timer = asyncio.get_running_loop().call_later(self.gap_s, self.flush)

    def flush(self) -> None:
        """Send the keys gathered so far (if any) as one sequence now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        keys, self._keys = "".join(self._keys), []
        if keys:
            self._send(keys)

    def cancel(self) -> None:
        """Drop what is gathered (the call ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._keys = []
