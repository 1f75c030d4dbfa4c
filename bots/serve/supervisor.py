"""Bot processes for ``botrun serve``: spawn, track, limit, time out, reap, shut down.

One bot per OS process, because daily-python's ``Daily.init`` may run only once per process.
A slot is *reserved* before any Daily resource is created (so a flood beyond ``max_bots`` is
refused without creating rooms), then turned into a running :class:`BotSession` by
:meth:`Supervisor.spawn`. When a child exits, for whatever reason, its slot is freed and the
``on_exit`` callback runs (``serve`` deletes the room it created there). ``shutdown`` sends
SIGTERM to every child (the bot leaves its meeting cleanly), waits, and kills stragglers.

Each bot runs in its own process group (``start_new_session``): SIGTERM and SIGKILL go to the
whole group (``killpg``), so whatever a bot started goes with it. A bot's slot is freed when
the bot process itself exits, even if a descendant still holds its output pipe open (the
group is then told to leave as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botrun.core.secrets import redact

log = logging.getLogger("botrun.serve")
bot_log = logging.getLogger("botrun.serve.bot")

#: Lines of a child's output kept to explain a crash.
TAIL_LINES = 20
#: Longest output line read from a bot (asyncio's default stream limit).
_STREAM_LIMIT = 2**16


class CapacityError(Exception):
    """All ``max_bots`` slots are taken."""


@dataclass
class BotSession:
    """One running bot process and what it was started for."""

    id: str
    room_url: str
    kind: str  # "dialin" or "start"
    process: asyncio.subprocess.Process
    #: Set when the bot process itself has exited (its pipes may still be held open).
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    transport: asyncio.SubprocessTransport | None = None
    #: The room serve created for this bot and deletes after it (None: the user's room).
    owned_room: str | None = None
    call_id: str | None = None
    caller: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    stopping: bool = False
    exit_code: int | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_at

    def info(self) -> dict[str, Any]:
        """What ``GET /sessions`` shows (no secrets: the token only lives in the child's env)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "room_url": self.room_url,
            "call_id": self.call_id,
            "caller": self.caller,
            "pid": self.process.pid,
            "uptime_s": round(self.uptime_s, 1),
            "started_at": self.started_wall,
            "state": "stopping" if self.stopping else "running",
        }


class Reservation:
    """A held slot. Pass it to :meth:`Supervisor.spawn`, or :meth:`release` it on failure
    (releasing twice, or after spawn, does nothing)."""

    def __init__(self, supervisor: Supervisor, key: str | None) -> None:
        self._supervisor = supervisor
        self.key = key
        self.active = True

    def release(self) -> None:
        if self.active:
            self.active = False
            self._supervisor._reserved.discard(self)


ExitCallback = Callable[[BotSession], Awaitable[None]]


class _BotProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's subprocess protocol, plus an event for "the process exited": ``wait()``
    only returns once every pipe is closed too, which a descendant can delay forever."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class Supervisor:
    """Runs bot processes with a concurrency limit and a per-bot maximum duration.

    ``bot_command`` is the argv prefix of a bot (``python -m botrun.bots.cli daily``); the
    room, config and dial-in arguments are appended. ``env`` is the base environment of every
    child; the meeting token is added per child as ``DAILY_MEETING_TOKEN`` (never argv)."""

    def __init__(
        self,
        *,
        bot_command: Sequence[str],
        env: Mapping[str, str],
        max_bots: int = 4,
        bot_max_duration_s: float | None = None,
        stop_timeout_s: float = 10.0,
        on_exit: ExitCallback | None = None,
    ) -> None:
        if max_bots < 1:
            raise ValueError("max_bots must be at least 1")
        self.bot_command = list(bot_command)
        self.env = dict(env)
        self.max_bots = max_bots
        self.bot_max_duration_s = bot_max_duration_s
        self.stop_timeout_s = stop_timeout_s
        self.on_exit = on_exit
        self._sessions: dict[str, BotSession] = {}
        self._reserved: set[Reservation] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Process groups of exited bots that still have members (being stopped).
        self._lingering: set[int] = set()
        self._closing = False

    # -- slots -----------------------------------------------------------------------------
    @property
    def busy(self) -> int:
        """Slots in use: running bots plus reservations being set up."""
        return len(self._sessions) + len(self._reserved)

    def reserve(self, key: str | None = None) -> Reservation:
        """Hold a slot, or raise :class:`CapacityError`. ``key`` (a call id) marks the
        reservation so a repeated webhook for the same call can be recognised."""
        if self._closing:
            raise CapacityError("shutting down")
        if self.busy >= self.max_bots:
            raise CapacityError(f"all {self.max_bots} bot slots are busy")
        reservation = Reservation(self, key)
        self._reserved.add(reservation)
        return reservation

    def find_call(self, call_id: str) -> BotSession | Reservation | None:
        """The bot (or pending reservation) already handling dial-in call ``call_id``."""
        for s in self._sessions.values():
            if s.call_id == call_id:
                return s
        for r in self._reserved:
            if r.key == call_id:
                return r
        return None

    # -- processes -------------------------------------------------------------------------
    def sessions(self) -> list[BotSession]:
        return list(self._sessions.values())

    def get(self, session_id: str) -> BotSession | None:
        return self._sessions.get(session_id)

    def build_argv(
        self,
        room_url: str,
        *,
        config: str | None = None,
        call_id: str | None = None,
        call_domain: str | None = None,
    ) -> list[str]:
        argv = [*self.bot_command, "--room", room_url]
        if config:
            argv += ["--config", config]
        if call_id and call_domain:
            argv += ["--dialin-call-id", call_id, "--dialin-call-domain", call_domain]
        return argv

    async def spawn(
        self,
        reservation: Reservation,
        *,
        room_url: str,
        token: str | None,
        kind: str,
        config: str | None = None,
        owned_room: str | None = None,
        call_id: str | None = None,
        call_domain: str | None = None,
        caller: str | None = None,
    ) -> BotSession:
        """Start a bot in the reserved slot. On failure the slot is released and the error
        propagates (``OSError``: the command cannot run; :class:`CapacityError`: shutting
        down)."""
        if not reservation.active:
            raise RuntimeError("reservation already used or released")
        if self._closing:
            reservation.release()
            raise CapacityError("shutting down")
        env = dict(self.env)
        env.pop("DAILY_MEETING_TOKEN", None)
        if token:
            env["DAILY_MEETING_TOKEN"] = token
        argv = self.build_argv(room_url, config=config, call_id=call_id, call_domain=call_domain)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _BotProtocol(limit=_STREAM_LIMIT, loop=loop),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                # Its own process group: a Ctrl-C at serve's terminal reaches serve only, and
                # serve can signal the bot together with everything it started.
                start_new_session=True,
            )
        finally:
            reservation.release()
        process = asyncio.subprocess.Process(transport, protocol, loop)
        session = BotSession(
            id=uuid.uuid4().hex[:12],
            room_url=room_url,
            kind=kind,
            process=process,
            exited=protocol.exited,
            transport=transport,
            owned_room=owned_room,
            call_id=call_id,
            caller=caller,
        )
        self._sessions[session.id] = session
        log.info("bot %s started (pid %d, %s) in %s", session.id, process.pid, kind, room_url)
        task = asyncio.get_running_loop().create_task(self._watch(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return session

    async def _pump_output(self, session: BotSession) -> None:
        """Forward the child's log lines, tagged with its session id; keep a tail."""
        stream = session.process.stdout
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream limit: skip the chunk
                continue
            if not raw:
                return
            line = redact(raw.decode("utf-8", "replace").rstrip())
            if line:
                session.tail.append(line)
                bot_log.info("[%s] %s", session.id, line)

    async def _watch(self, session: BotSession) -> None:
        pump = asyncio.get_running_loop().create_task(self._pump_output(session))
        try:
            limit = self.bot_max_duration_s
            try:
                await asyncio.wait_for(session.exited.wait(), limit)
            except TimeoutError:
                log.warning(
                    "bot %s reached the maximum duration (%.0f s); stopping it", session.id, limit
                )
                await self._terminate(session)
            await session.exited.wait()
            # The last lines the bot wrote; a descendant may keep the pipe open for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), 2.0)
        finally:
            pump.cancel()
            self._sessions.pop(session.id, None)
        code = session.process.returncode
        assert code is not None  # set before ``exited``
        self._release_group(session)
        session.exit_code = code
        if code == 0 or (session.stopping and code in (-signal.SIGTERM, 128 + signal.SIGTERM)):
            log.info("bot %s exited (code %d) after %.1f s", session.id, code, session.uptime_s)
        else:
            tail = " | ".join(list(session.tail)[-5:]) or "no output"
            log.error(
                "bot %s crashed (exit code %d) after %.1f s; last output: %s",
                session.id,
                code,
                session.uptime_s,
                tail,
            )
        if self.on_exit is not None:
            try:
                await self.on_exit(session)
            except Exception:  # cleanup problems are logged, never fatal to the server
                log.exception("cleanup after bot %s failed", session.id)

    def _release_group(self, session: BotSession) -> None:
        """The bot has exited: close its pipes (a descendant may hold them) and make whatever
        is left of its process group go: SIGTERM, SIGKILL after ``stop_timeout_s``."""
        if session.transport is not None:
            session.transport.close()  # the pipes: asyncio stops waiting on them
        pgid = session.process.pid
        if not _group_alive(pgid):
            return
        log.info("bot %s left processes behind; stopping them", session.id)
        self._lingering.add(pgid)
        self._signal(session, signal.SIGTERM, stopping=False)
        task = asyncio.get_running_loop().create_task(self._kill_group_later(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _kill_group_later(self, session: BotSession) -> None:
        deadline = time.monotonic() + self.stop_timeout_s
        pgid = session.process.pid
        try:
            while _group_alive(pgid) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if _group_alive(pgid):
                self._signal(session, signal.SIGKILL, stopping=False)
        finally:
            self._lingering.discard(pgid)

    async def _terminate(self, session: BotSession) -> None:
        """SIGTERM (leave cleanly), then SIGKILL after ``stop_timeout_s``, to the bot's
        whole process group."""
        self._signal(session, signal.SIGTERM)
        try:
            await asyncio.wait_for(session.exited.wait(), self.stop_timeout_s)
        except TimeoutError:
            log.warning(
                "bot %s ignored SIGTERM for %.0f s; killing it", session.id, self.stop_timeout_s
            )
            self._signal(session, signal.SIGKILL)

    @staticmethod
    def _signal(session: BotSession, sig: int, *, stopping: bool = True) -> None:
        """Send ``sig`` to the bot's process group (its pid: ``start_new_session``). A group
        with nobody left in it is fine: the kernel never reuses a pid still naming a group."""
        if sig == signal.SIGTERM and stopping:
            session.stopping = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(session.process.pid, sig)

    def kill_all(self) -> None:
        """SIGKILL every bot's process group at once, and what exited bots left behind
        (serve's second signal)."""
        for session in self.sessions():
            self._signal(session, signal.SIGKILL)
        for pgid in list(self._lingering):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    def stop(self, session_id: str) -> BotSession | None:
        """Ask one bot to leave (SIGTERM; killed if it has not exited in time)."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if not session.stopping:
            log.info("stopping bot %s on request", session.id)
            task = asyncio.get_running_loop().create_task(self._terminate(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return session

    async def shutdown(self) -> None:
        """Refuse new bots, SIGTERM every bot, wait for all of them and their cleanup."""
        self._closing = True
        sessions = self.sessions()
        if sessions:
            log.info("asking %d bot(s) to leave", len(sessions))
        await asyncio.gather(*(self._terminate(s) for s in sessions), return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _group_alive(pgid: int) -> bool:
    """True while process group ``pgid`` has members (zombies count until reaped)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Secrets serve needs and its bots never get.
_SERVE_ONLY_SECRETS = frozenset({"DAILY_DIALIN_SECRET", "BOTRUN_API_TOKEN"})


def child_environment(base: Mapping[str, str], extra: Mapping[str, str | None]) -> dict[str, str]:
    """The environment of a bot: ``base`` (usually ``os.environ``) plus ``extra`` values that
    are set, minus serve's own secrets (the webhook secret and the API token: a bot never
    needs them)."""
    env = {k: v for k, v in base.items() if k not in _SERVE_ONLY_SECRETS}
    env.update({k: v for k, v in extra.items() if v})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
