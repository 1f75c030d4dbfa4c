"""Warm bot processes: ``K`` idle children with the heavy imports done, each handed one call.

A call takes an idle warm process when there is one (and a replacement starts at once), or
starts a process of its own (a *cold* start: it pays the imports while the caller waits).
Every process runs one call and exits: nothing accumulates across calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botrun.core.secrets import redact

from .warm import MARK

log = logging.getLogger("botrun.worker")
bot_log = logging.getLogger("botrun.worker.bot")

WARM_COMMAND = (sys.executable, "-m", "botrun.bots.worker.warm")
_STREAM_LIMIT = 1 << 16
TAIL_LINES = 20


@dataclass(eq=False)
class BotProcess:
    """One child: idle (warm), or running one call."""

    process: asyncio.subprocess.Process
    spawned_at: float = field(default_factory=time.monotonic)
    warm: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_wall: float | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    tag: str = "idle"
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    stopping: bool = False
    secrets: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def give(self, argv: Sequence[str], env: Mapping[str, str | None], tag: str) -> None:
        """Hand this process its call. Stdin stays open: closing it means "worker gone"."""
        self.tag = tag
        # this call's own secrets (a meeting token): masked in the bot's output the worker
        # logs, and forgotten with the process (no registry growing call after call)
        self.secrets = [v for v in env.values() if v and len(v) >= 8]
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps({"argv": list(argv), "env": dict(env)}).encode() + b"\n")

    def tell_stop(self, reason: str) -> bool:
        """Write the stop line (:mod:`.warm`) on the bot's stdin; False if it cannot."""
        stdin = self.process.stdin
        if stdin is None or stdin.is_closing() or self.exited.is_set():
            return False
        try:
            stdin.write(json.dumps({"stop": reason}).encode() + b"\n")
        except (OSError, RuntimeError):
            return False
        self.stopping = True
        return True

    def signal(self, sig: int) -> None:
        """``sig`` to the bot's process group (what it started goes too)."""
        if sig == signal.SIGTERM:
            self.stopping = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    async def terminate(self, timeout_s: float, reason: str | None = None) -> None:
        """Ask the bot to leave cleanly: with ``reason``, a stop line on its stdin (it leaves
        as on SIGTERM, with ``reason`` as its call's summary reason); without one, or when
        its stdin is closed, SIGTERM. SIGKILL after ``timeout_s``."""
        if reason is None or not self.tell_stop(reason):
            self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited.wait(), timeout_s)
        except TimeoutError:
            log.warning("bot %s did not leave within %.0f s; killing it", self.tag, timeout_s)
            self.signal(signal.SIGKILL)
            await self.exited.wait()

    async def _pump(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: skip it
                continue
            if not raw:
                return
            line = redact(raw.decode("utf-8", "replace").rstrip())
            for secret in self.secrets:
                line = line.replace(secret, "***")
            if line.startswith(MARK):
                word, _, rest = line[len(MARK) :].partition(" ")
                if word == "warm":
                    self.warm.set()
                elif word == "ready" and not self.ready.is_set():
                    try:
                        self.ready_wall = float(rest)
                    except ValueError:
                        self.ready_wall = time.time()
                    self.ready.set()
                continue
            if line:
                self.tail.append(line)
                bot_log.info("[%s] %s", self.tag, line)

    async def _wait(self) -> None:
        await self.process.wait()
        self.exited.set()


class WarmPool:
    """Keeps ``size`` idle warm processes. ``env`` is every child's base environment."""

    def __init__(
        self,
        size: int,
        env: Mapping[str, str],
        *,
        command: Sequence[str] = WARM_COMMAND,
        preload: Sequence[str] = (),
    ) -> None:
        self.size = size
        self.command = list(command)
        self.env = dict(env)
        self.env["BOTRUN_WORKER_PRELOAD"] = ",".join(preload)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self._idle: list[BotProcess] = []
        self._spawning = 0
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.all: set[BotProcess] = set()

    @property
    def idle(self) -> int:
        return sum(1 for p in self._idle if p.warm.is_set() and not p.exited.is_set())

    async def spawn(self) -> BotProcess:
        process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self.env,
            limit=_STREAM_LIMIT,
            # its own process group: a Ctrl-C at the worker's terminal reaches the worker
            # only (which drains), and a stop reaches everything the bot started
            start_new_session=True,
        )
        bot = BotProcess(process)
        loop = asyncio.get_running_loop()
        bot._tasks = [loop.create_task(bot._pump()), loop.create_task(bot._wait())]
        self.all.add(bot)
        bot._tasks[1].add_done_callback(lambda _t: self.all.discard(bot))
        return bot

    def fill(self) -> None:
        """Start warm processes until ``size`` are idle or starting."""
        while not self._closing and len(self._idle) + self._spawning < self.size:
            self._spawning += 1
            task = asyncio.get_running_loop().create_task(self._add_idle())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _add_idle(self) -> None:
        try:
            bot = await self.spawn()
        except OSError as exc:
            log.error("cannot start a warm bot process: %s", exc)
            return
        finally:
            self._spawning -= 1
        if self._closing:
            await self._release(bot)
            return
        self._idle.append(bot)
        await bot.exited.wait()
        if bot in self._idle:  # died while idle: replace it
            self._idle.remove(bot)
            log.warning("a warm bot process exited while idle (code %s)", bot.returncode)
            tail = " | ".join(list(bot.tail)[-3:])
            if tail:
                log.warning("its last output: %s", tail)

    async def take(self) -> tuple[BotProcess, bool]:
        """A process for one call and whether it was warm (imports done)."""
        for bot in list(self._idle):
            if bot.warm.is_set() and not bot.exited.is_set():
                self._idle.remove(bot)
                self.fill()
                return bot, True
        bot = await self.spawn()
        self.fill()
        return bot, False

    async def wait_warm(self, timeout_s: float) -> int:
        """Wait until ``size`` processes are warm (or the timeout); returns how many are."""
        self.fill()
        deadline = time.monotonic() + timeout_s
        while self.idle < self.size and time.monotonic() < deadline:
            pending = [p.warm.wait() for p in self._idle if not p.warm.is_set()]
            if not pending:
                await asyncio.sleep(0.05)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*pending), max(0.01, deadline - time.monotonic())
                )
        return self.idle

    async def _release(self, bot: BotProcess) -> None:
        stdin = bot.process.stdin
        if stdin is not None:
            stdin.close()  # end of file before a call: the process exits
        try:
            await asyncio.wait_for(bot.exited.wait(), 5.0)
        except TimeoutError:
            bot.signal(signal.SIGKILL)
            await bot.exited.wait()

    async def close(self) -> None:
        """Let every idle process go (and whatever is still starting)."""
        self._closing = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._release(b) for b in idle), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def kill_all(self) -> None:
        for bot in list(self.all):
            bot.signal(signal.SIGKILL)
