"""How a :class:`~botrun.core.call.CallContext` action runs wherever the bot calls it from.

Every action (``say``, ``transfer``, ``hang_up``, ...) returns an :class:`Action`:

* in async code on the call's event loop (async tools and hooks) it is awaited, as any
  coroutine: ``await call.transfer("sales")``;
* in a sync hook or sync tool (each runs in a thread of its own) the action is handed to the
  call's event loop and has already run when the call returns: ``call.transfer("sales")``
  raises there what it would raise in async code, and ``.result()`` is its value
  (``call.dial_out(number).result()`` is the new leg's id);
* in async code on another event loop (a hook's own ``asyncio.run``) it is awaited too, and
  runs on the call's loop.

An action the bot forgot to await in async code did nothing: a warning says so and names the
fix. After the call's loop has closed an action does nothing (a log line), like any action
after the call ended.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

log = logging.getLogger("botrun.call")

T = TypeVar("T")
P = ParamSpec("P")

_PENDING: Any = object()


async def _value(value: T) -> T:
    return value


class Action(Generic[T]):
    """A call action: ``await`` it in async code; in a sync hook or tool it has already run
    (its failure raised) and :meth:`result` is its value."""

    __slots__ = ("_awaitable", "_name", "_value")

    def __init__(self, name: str, awaitable: Awaitable[T] | None, value: Any = _PENDING) -> None:
        self._name = name
        self._awaitable = awaitable
        self._value = value

    @classmethod
    def done(cls, name: str, value: T) -> Action[T]:
        """An action that has already run, with its value."""
        return cls(name, None, value)

    def __await__(self) -> Generator[Any, None, T]:
        awaitable, self._awaitable = self._awaitable, None
        if awaitable is None:
            if self._value is _PENDING:
                raise RuntimeError(f"call.{self._name}() was awaited twice")
            return _value(self._value).__await__()
        return awaitable.__await__()

    def result(self) -> T:
        """The action's value, once it has run (a sync hook or tool: at once)."""
        if self._value is _PENDING:
            raise RuntimeError(
                f"call.{self._name}() runs when awaited in async code: use "
                f"'await call.{self._name}(...)' there (.result() is for sync hooks and tools)"
            )
        value: T = self._value
        return value

    def __del__(self) -> None:
        awaitable = getattr(self, "_awaitable", None)
        if awaitable is None:
            return
        if isinstance(awaitable, Coroutine):
            awaitable.close()  # (no second "never awaited" warning from Python)
        with contextlib.suppress(Exception):  # (interpreter shutdown)
            log.warning(
                "call.%s() was not awaited, so it did nothing: write 'await call.%s(...)' "
                "in an async hook or tool",
                self._name,
                self._name,
            )


class _HasLoop(Protocol):
    call_id: str

    def _action_loop(self) -> asyncio.AbstractEventLoop | None: ...


S = TypeVar("S", bound=_HasLoop)


def run_action(owner: _HasLoop, name: str, coro: Coroutine[Any, Any, T], default: T) -> Action[T]:
    """``coro`` (the action's work, for the call's loop) as an :class:`Action` for wherever
    this is called from (see the module docstring)."""
    loop = owner._action_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None and (loop is None or running is loop):
        return Action(name, coro)  # the call's loop: awaited by the caller
    if loop is None or loop.is_closed():
        coro.close()
        log.info("call %s: %s ignored, the call has ended", owner.call_id, name)
        return Action.done(name, default)
    try:
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError:  # the loop closed just now
        coro.close()
        log.info("call %s: %s ignored, the call has ended", owner.call_id, name)
        return Action.done(name, default)
    if running is not None:  # async code on a loop of its own: await it there
        return Action(name, asyncio.wrap_future(fut, loop=running))
    try:  # a thread (a sync hook or tool): wait for it here, its failure raised here
        return Action.done(name, fut.result())
    except concurrent.futures.CancelledError:
        log.info("call %s: %s cut off, the call has ended", owner.call_id, name)
        return Action.done(name, default)


def call_action(
    default: Any = None,
) -> Callable[
    [Callable[Concatenate[S, P], Coroutine[Any, Any, T]]], Callable[Concatenate[S, P], Action[T]]
]:
    """Make an ``async def`` action method return an :class:`Action` that runs on the call's
    loop from any thread; ``default`` is its value when the call has already ended."""

    def wrap(
        method: Callable[Concatenate[S, P], Coroutine[Any, Any, T]],
    ) -> Callable[Concatenate[S, P], Action[T]]:
        @functools.wraps(method)
        def action(self: S, /, *args: P.args, **kwargs: P.kwargs) -> Action[T]:
            return run_action(self, method.__name__, method(self, *args, **kwargs), default)

        return action

    return wrap
