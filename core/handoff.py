"""Hand-off of items from foreign threads (meeting SDK callbacks) to the event loop, batched
across every call the loop runs.

A meeting SDK delivers each participant's audio on its own thread, 50 to 100 times a second.
``loop.call_soon_threadsafe`` per frame wakes the event loop for every frame: a self-pipe
write on the SDK thread, then an epoll return, a pipe read and a pass of the loop, about
50 us per wake-up here. With 50 calls at random phases that is 2,500 wake-ups a second,
which measured as much CPU as sending the audio to the agent (benchmarks/handoff.py).

So the threads never wake the loop while audio is flowing. :class:`Handoff.put` appends the
item to one pending list shared by every :class:`Handoff` on the same loop (under a lock,
the SDK thread's only work besides copying the bytes); the loop takes that whole list on a
clock, every ``period_s`` (default 10 ms), and gives each consumer its own items, in order.
Only the first item after the clock stopped (nothing arrived for ``idle_ticks`` periods)
wakes the loop, which handles it at once and restarts the clock. So a call costs one loop
pass per ``period_s`` for all calls together instead of one per frame per call; the price
is at most ``period_s`` of added inbound latency (5 ms on average).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

PERIOD_S = 0.01
IDLE_TICKS = 10  # the clock stops after this many empty periods (an idle loop sleeps)


class _Inbox:
    """The pending items of every :class:`Handoff` on one loop, and the loop's clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop, period_s: float) -> None:
        # weak: _inboxes maps the loop to this inbox, which must not keep the loop alive
        self._loop = weakref.ref(loop)
        self.period_s = period_s
        self.lock = threading.Lock()
        self.items: list[tuple[Handoff[Any], Any]] = []
        self.ticking = False  # a tick is scheduled: puts need not wake the loop
        self.idle = 0
        self.wakeups = 0  # cross-thread wake-ups (the clock restarting)
        self.ticks = 0
        # run on the loop after every tick that delivered items (core/inbound_batch.py)
        self.after_tick: list[Callable[[], None]] = []

    def put(self, handoff: Handoff[Any], item: Any) -> None:
        with self.lock:
            self.items.append((handoff, item))
            if self.ticking:
                return
            self.ticking = True
            self.wakeups += 1
        loop = self._loop()
        if loop is None:
            return  # the loop is gone: the call is over
        with contextlib.suppress(RuntimeError):  # loop closed: the call is over
            loop.call_soon_threadsafe(self._tick)

    def _tick(self) -> None:
        with self.lock:
            items, self.items = self.items, []
            self.ticks += 1
            if items:
                self.idle = 0
            else:
                self.idle += 1
                if self.idle >= IDLE_TICKS:
                    self.ticking = False
                    self.idle = 0
                    return
        try:
            asyncio.get_running_loop().call_later(self.period_s, self._tick)
        except RuntimeError:  # the loop is closing
            with self.lock:
                self.ticking = False
        if not items:
            return
        batches: dict[Handoff[Any], list[Any]] = {}
        for handoff, item in items:
            batch = batches.get(handoff)
            if batch is None:
                batches[handoff] = [item]
            else:
                batch.append(item)
        for handoff, batch in batches.items():
            try:
                handoff.consume(batch)
            except Exception:
                log.exception("hand-off consumer %r failed", handoff.consume)
        for fn in self.after_tick:
            try:
                fn()
            except Exception:
                log.exception("hand-off tick listener %r failed", fn)

    def pending(self, handoff: Handoff[Any]) -> int:
        with self.lock:
            return sum(1 for h, _ in self.items if h is handoff)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
_inboxes_lock = threading.Lock()


def _inbox(loop: asyncio.AbstractEventLoop, period_s: float) -> _Inbox:
    with _inboxes_lock:
        inbox = _inboxes.get(loop)
        if inbox is None:
            inbox = _inboxes[loop] = _Inbox(loop, period_s)
        return inbox


def after_each_tick(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """Call ``fn`` on ``loop`` at the end of every tick that delivered items, after every
    consumer got its own: work the consumers queued runs once for all of them, in the same
    loop pass."""
    _inbox(loop, PERIOD_S).after_tick.append(fn)


class Handoff(Generic[T]):
    """Thread-safe ``put``; ``consume`` gets this hand-off's pending items, in order, on
    ``loop``, within about ``period_s``. ``period_s`` is the loop's: the first hand-off
    made on a loop sets it for all."""

    __slots__ = ("_inbox", "consume")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        consume: Callable[[list[T]], None],
        period_s: float = PERIOD_S,
    ) -> None:
        self.consume = consume
        self._inbox = _inbox(loop, period_s)

    def put(self, item: T) -> None:
        """Queue ``item`` for the loop; callable from any thread, never blocks for long."""
        self._inbox.put(self, item)

    @property
    def pending(self) -> int:
        """Items waiting for the loop."""
        return self._inbox.pending(self)

    @property
    def wakeups(self) -> int:
        """Times a put had to wake the loop (shared by every hand-off on the loop)."""
        return self._inbox.wakeups
