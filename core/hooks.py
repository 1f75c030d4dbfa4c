"""Per-call hooks: the bot's own Python, called as the call goes on.

``[bot] hooks = "package.module"`` names a module whose functions are the hooks;
``"package.module:Class"`` a class instantiated once per call (no arguments) whose methods
are. Any of these, sync or async, each getting the call's
:class:`~botrun.core.call.CallContext` first::

    on_call_start(call)
    on_participant_joined(call, participant)
    on_participant_left(call, participant)
    on_user_transcript(call, text, participant)      # participant may be None
    on_agent_transcript(call, text, interrupted)
    on_dtmf(call, digit, participant)                # a keypad press; participant may be None;
                                                     # return True to keep it from the agent
    on_status(call, state, detail)                   # a transport status: a phone call's
                                                     # "ringing", "completed", or "answered-by"
                                                     # with Twilio's AnsweredBy ("machine_start")
    on_idle(call, seconds)                           # return True to take over
    on_call_end(call, summary)

A sync hook runs in a thread of its own; it calls the call's actions without ``await``
(``call.say("...")``): each is handed to the call's event loop and has run when it returns
(core/action.py). An async hook awaits them.

Hooks of one call run one at a time, in the order their events happened. One that raises
or runs longer than ``[bot] hook_timeout_s`` is logged with its name and the call goes on
(a sync hook runs in a daemon thread, so one that never returns cannot hold the process;
an async one is cancelled). :func:`load_hooks` checks the path when the bot starts: a
missing module, class or a misspelt ``on_*`` name is a :class:`ConfigError` (exit 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .config import suggest
from .errors import BotrunError, ConfigError
from .userimport import import_user_module

if TYPE_CHECKING:
    from .config import BotConfig

log = logging.getLogger("botrun.hooks")

HOOK_NAMES = (
    "on_call_start",
    "on_participant_joined",
    "on_participant_left",
    "on_user_transcript",
    "on_agent_transcript",
    "on_dtmf",
    "on_status",
    "on_idle",
    "on_call_end",
)


@dataclass
class HookStats:
    calls: int = 0
    failures: int = 0
    timeouts: int = 0


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _in_thread(func: Callable[..., Any], args: tuple[Any, ...], name: str) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any) -> None:
        if not fut.done():
            fut.set_result(value)

    def work() -> None:
        try:
            value: Any = func(*args)
        except BaseException as exc:  # SystemExit too: it belongs to the hook
            value = _Raised(exc)
        with contextlib.suppress(RuntimeError):  # the loop is gone
            loop.call_soon_threadsafe(settle, value)

    threading.Thread(target=work, name=f"hook-{name}", daemon=True).start()
    return fut


async def _guarded(coro: Any) -> Any:
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return _Raised(exc)


class HookSet:
    """The loaded hooks of a bot (``[bot] hooks``); :meth:`for_call` makes one call's."""

    def __init__(self, path: str, target: Any, per_call: bool, timeout_s: float) -> None:
        self.path = path
        self._target = target
        self._per_call = per_call
        self.timeout_s = timeout_s
        self.stats = HookStats()

    def for_call(self) -> CallHooks:
        owner = self._target
        if self._per_call:
            try:
                owner = self._target()
            except Exception as exc:
                log.error("hooks %s: creating the per-call instance failed: %r", self.path, exc)
                return CallHooks(self, {})
        funcs = {n: f for n in HOOK_NAMES if callable(f := getattr(owner, n, None))}
        return CallHooks(self, funcs)


class CallHooks:
    """One call's hooks: :meth:`fire` queues one (they run in order), :meth:`call` runs
    one now and returns its result; both log and survive failures and timeouts."""

    def __init__(self, owner: HookSet, funcs: dict[str, Callable[..., Any]]) -> None:
        self._owner = owner
        self._funcs = funcs
        self._queue: asyncio.Queue[tuple[str, tuple[Any, ...], asyncio.Future[Any]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        #: This call's hook runs, failures and timeouts.
        self.stats = HookStats()
        self._traced: set[str] = set()  # hooks whose traceback was logged (DEBUG)

    @property
    def path(self) -> str:
        return self._owner.path

    def has(self, name: str) -> bool:
        return name in self._funcs

    def fire(self, name: str, *args: Any) -> None:
        self.submit(name, *args)

    def submit(self, name: str, *args: Any) -> asyncio.Future[Any]:
        """Queue hook ``name`` (run after those queued before it); the future gets its return
        value, None when it failed, timed out or does not exist. Cancelled if the call ends
        before it ran."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if name not in self._funcs:
            fut.set_result(None)
            return fut
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait((name, args, fut))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())
        return fut

    async def _work(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            name, args, fut = self._queue.get_nowait()
            try:
                value = await self.call(name, *args)
            except asyncio.CancelledError:
                fut.cancel()
                while not self._queue.empty():  # the call ends: none of these will run
                    self._queue.get_nowait()[2].cancel()
                raise
            if not fut.done():
                fut.set_result(value)
            self._queue.task_done()

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every queued hook has run (each is bounded by the hook timeout), or
        ``timeout`` seconds in all; what is left is cancelled."""
        worker = self._worker
        if worker is None:
            return
        done, _ = await asyncio.wait({worker}, timeout=timeout)
        if not done:
            log.warning("hooks %s: still running as the call ends; cancelled", self._owner.path)
            worker.cancel()

    async def call(self, name: str, *args: Any) -> Any:
        """Run hook ``name``; its return value, or None when it failed or timed out."""
        func = self._funcs.get(name)
        if func is None:
            return None
        stats, timeout = self.stats, self._owner.timeout_s
        stats.calls += 1
        self._owner.stats.calls += 1
        label = f"hook {name} ({self._owner.path})"
        if inspect.iscoroutinefunction(func):
            try:
                coro = func(*args)
            except BaseException as exc:
                value: Any = _Raised(exc)
            else:
                task = asyncio.ensure_future(_guarded(coro))
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if not done:
                    task.cancel()
                    stats.timeouts += 1
                    self._owner.stats.timeouts += 1
                    log.warning("%s did not finish within %g s: cancelled", label, timeout)
                    return None
                value = _Raised(asyncio.CancelledError()) if task.cancelled() else task.result()
        else:
            fut = _in_thread(func, args, name)
            finished, _ = await asyncio.wait({fut}, timeout=timeout)
            if not finished:
                fut.cancel()
                stats.timeouts += 1
                self._owner.stats.timeouts += 1
                log.warning(
                    "%s did not return within %g s: left running in its thread, result ignored",
                    label,
                    timeout,
                )
                return None
            value = fut.result()
            if inspect.isawaitable(value):
                value = await _guarded(asyncio.wait_for(value, timeout))
        if isinstance(value, _Raised):
            stats.failures += 1
            self._owner.stats.failures += 1
            raised = value.exc
            if isinstance(raised, BotrunError):  # expected, handled (a refused action...)
                log.warning("%s: %s", label, raised)
                return None
            log.warning("%s failed: %s: %s", label, type(raised).__name__, raised)
            if name not in self._traced:  # the traceback once per hook per call, at DEBUG
                self._traced.add(name)
                log.debug(
                    "%s traceback", label, exc_info=(type(raised), raised, raised.__traceback__)
                )
            return None
        return value


def load_hooks(path: str | None, timeout_s: float = 5.0) -> HookSet | None:
    """Import ``"package.module"`` or ``"package.module:Class"`` (``None``: no hooks).
    Every problem is a :class:`ConfigError` naming the path."""
    if not path:
        return None
    mod_name, sep, attr = path.partition(":")
    where = f"[bot] hooks = '{path}'"
    if mod_name.partition(".")[0] in sys.stdlib_module_names:
        raise ConfigError(f"{where}: '{mod_name}' is a standard-library module, not your hooks")
    try:
        module = import_user_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import module '{mod_name}': {exc}") from None
    except Exception as exc:
        raise ConfigError(
            f"{where}: importing '{mod_name}' failed: {type(exc).__name__}: {exc}"
        ) from None
    target: Any = module
    if sep:
        target = getattr(module, attr, None)
        if target is None:
            raise ConfigError(f"{where}: module '{mod_name}' has no '{attr}'")
        if not inspect.isclass(target):
            raise ConfigError(f"{where}: '{attr}' is not a class (got {type(target).__name__})")
    names = [n for n in dir(target) if n.startswith("on_") and callable(getattr(target, n, None))]
    # a class's on_* methods must all be hooks; a module's only those close to a hook name
    # (it may have other on_* helpers, but 'on_dtfm' is a typo that would never be called)
    unknown = [n for n in names if n not in HOOK_NAMES and (sep or suggest(n, list(HOOK_NAMES)))]
    if unknown:
        n = unknown[0]
        raise ConfigError(
            f"{where}: '{n}' is not a hook{suggest(n, list(HOOK_NAMES))} "
            f"(hooks: {', '.join(HOOK_NAMES)})"
        )
    if not any(n in HOOK_NAMES for n in names):
        raise ConfigError(f"{where}: defines none of the hooks ({', '.join(HOOK_NAMES)})")
    return HookSet(path, target, per_call=bool(sep), timeout_s=timeout_s)


def config_hooks(cfg: BotConfig) -> HookSet | None:
    """The hooks of ``cfg``'s ``[bot] hooks`` (None: none); a :class:`ConfigError` names the
    config file too (``bot.toml: [bot] hooks = '...': ...``)."""
    try:
        return load_hooks(cfg.bot.hooks, cfg.bot.hook_timeout_s)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None
