"""A worker: arq takes call jobs from Redis, at most ``capacity`` at once, and each runs in
a warm bot process (:mod:`.pool`).

arq does the distributed part: its ``max_jobs`` is a counter of the jobs this process is
running (a job is taken only while one is free, never sampled), its job ids dedupe calls
fleet-wide, ``Job.abort`` reaches the worker running a job (``DELETE /sessions/ID``),
``job_completion_wait`` is the drain on SIGTERM, and its health check is the heartbeat by
which the other workers notice a dead one (:func:`botrun.bots.fleet.store.reap_lost_calls`).

Redis lost mid-run: calls in progress go on (their bots do not need Redis); the worker takes
nothing new, reconnects with backoff, writes what it could not (a call that ended meanwhile
keeps its slot until its outcome is recorded) and takes jobs again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from arq.worker import Worker, func

from botrun.bots.fleet import jobs, store
from botrun.bots.fleet.metrics import WorkerMetrics
from botrun.bots.fleet.redis import describe, reason, redis_errors

from .pool import BotProcess, WarmPool

if TYPE_CHECKING:
    from arq.connections import ArqRedis

log = logging.getLogger("botrun.worker")
T = TypeVar("T")

#: Heartbeat period and how long a silent worker is still considered alive, seconds.
HEARTBEAT_S = 1.0
HEARTBEAT_TTL_S = 5.0
#: A stopping worker waits this long for Redis to record a call's end, then gives up.
GIVE_UP_DRAINING_S = 10.0


@dataclass
class WorkerSettings:
    queue_url: str
    capacity: int = 4
    warm: int = 1
    drain_timeout_s: float = 600.0
    #: Transports this worker runs (a job for another is refused, reported failed).
    transports: tuple[str, ...] = ("daily",)
    #: Bot config file passed to every bot (``--config``).
    config: str | None = None
    bot_max_duration_s: float = 3600.0
    stop_timeout_s: float = 10.0
    poll_delay_s: float = 0.1
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")
    #: Where this worker's HTTP endpoints are (shown in GET /sessions), set when listening.
    url: str | None = None
    #: The https address at which Twilio (and the front door's status relay) reach this
    #: worker's HTTP port (``--public-url``/``PUBLIC_URL``; needed for ``twilio`` calls).
    public_url: str | None = None
    #: ``--files``: the folder ``wav`` calls' paths are relative to. Errors reported to API
    #: callers name paths relative to it, never this machine's absolute paths.
    files: Path | None = None

    def public_error(self, error: str) -> str:
        """``error`` with the ``--files`` folder's absolute path taken out (``/srv/f/a.wav``
        -> ``a.wav``): an API caller named its files relative to it."""
        if self.files is None or not error:
            return error
        for root in dict.fromkeys((str(self.files.resolve()), str(self.files.absolute()))):
            error = error.replace(root + os.sep, "").replace(root, ".")
        return error


@dataclass
class RunningCall:
    job: jobs.CallJob
    bot: BotProcess
    warm: bool
    started_at: float = field(default_factory=time.time)


#: Prepares a call of one transport: returns (argv after ``botrun``, extra child env, and a
#: cleanup coroutine run after the bot exits).
Prepare = Callable[
    [jobs.CallJob, WorkerSettings],
    Awaitable[tuple[list[str], dict[str, str | None], Callable[[], Awaitable[None]] | None]],
]

#: Runs a call of one transport inside the worker's own process (no bot process: a Twilio
#: media stream is served by the worker itself) and returns when the call is over, with its
#: outcome (``ended``, ``failed``, ``stopped``, ``refused``) and an error ("" when none).
#: Cancelled: the call must be stopped before it returns.
RunInProcess = Callable[[jobs.CallJob], Awaitable[tuple[str, str]]]


async def prepare_generic(
    job: jobs.CallJob, settings: WorkerSettings
) -> tuple[list[str], dict[str, str | None], Callable[[], Awaitable[None]] | None]:
    """``botrun <transport> <options> [--config FILE]``: the job's options as flags."""
    argv = [job.transport, *jobs.option_argv(job.options)]
    if settings.config and "config" not in job.options:
        argv += ["--config", settings.config]
    return argv, {}, None


class FleetWorker(Worker):
    """arq's worker, whose health check also beats for the fleet and reports the calls of
    workers that stopped beating."""

    fleet: Fleet

    async def record_health(self) -> None:
        await super().record_health()
        await self.fleet.on_health()


class Fleet:
    """The worker's state around arq: running calls, the warm pool, metrics, Redis."""

    def __init__(
        self,
        settings: WorkerSettings,
        redis: ArqRedis,
        pool: WarmPool,
        *,
        prepare: Mapping[str, Prepare] | None = None,
        in_process: Mapping[str, RunInProcess] | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.prepare: dict[str, Prepare] = dict(prepare or {})
        self.in_process: dict[str, RunInProcess] = dict(in_process or {})
        self.metrics = WorkerMetrics(settings.capacity)
        self.calls: dict[str, RunningCall] = {}
        #: Calls running in this process (``in_process`` kinds), by session id.
        self.inproc_calls: dict[str, jobs.CallJob] = {}
        self.draining = False
        self.redis_ok = True
        self._last_beat = 0.0
        self._resync = False
        #: arq's worker running the jobs (set by :func:`make_worker`).
        self.worker: FleetWorker | None = None

    def drain_ended(self, job_id: str) -> bool:
        """Whether a cancelled job was cancelled by the end of the drain (or a second
        signal), not by ``DELETE /sessions/ID`` (arq's abort, which arq logs itself)."""
        aborting = self.worker.aborting_tasks if self.worker is not None else set()
        return self.draining and job_id not in aborting

    def stop_reason(self, job_id: str) -> str:
        """Why a cancelled call was stopped, as its record and its bot's summary say."""
        if self.drain_ended(job_id):
            return "stopped by the worker's drain (the worker is stopping)"
        return "stopped by request (DELETE /sessions)"

    # -- heartbeat ---------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "id": self.settings.worker_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "url": self.settings.url,
            "public_url": self.settings.public_url,
            "capacity": self.settings.capacity,
            "calls": sorted([*self.calls, *self.inproc_calls]),
            "warm_idle": self.pool.idle,
            "draining": self.draining,
            "transports": list(self.settings.transports),
        }

    async def beat(self) -> None:
        await store.beat(self.redis, self.settings.worker_id, self.describe(), HEARTBEAT_TTL_S)

    async def on_health(self) -> None:
        now = time.monotonic()
        if now - self._last_beat < HEARTBEAT_S:
            return
        self._last_beat = now
        self.metrics.warm_idle.set(self.pool.idle)
        await self.beat()
        if self._resync:  # Redis came back (perhaps empty): rewrite our calls' records
            self._resync = False
            for sid, call in list(self.calls.items()):
                await store.update_call(
                    self.redis,
                    sid,
                    state="running",
                    worker=self.settings.worker_id,
                    transport=call.job.transport,
                    pid=call.bot.pid,
                )
        for record in await store.reap_lost_calls(self.redis):
            log.error("call %s reported failed: %s", record.get("id"), record.get("error", "lost"))
            self.metrics.outcomes.labels("lost").inc()

    # -- one call ----------------------------------------------------------------------------
    async def until_redis(self, what: str, action: Callable[[], Awaitable[T]]) -> T | None:
        """``action`` now, or once Redis is back (a call's outcome must not be lost); None
        when a stopping worker gave up on Redis."""
        delay = 0.2
        warned = False
        started = time.monotonic()
        while True:
            try:
                return await action()
            except redis_errors() as exc:
                if self.draining and time.monotonic() - started > GIVE_UP_DRAINING_S:
                    log.error(
                        "could not record %s: Redis is still unreachable and the worker is "
                        "stopping (the fleet will report the call failed)",
                        what,
                    )
                    return None
                if not warned:
                    log.warning(
                        "cannot record %s: Redis is unreachable (%s); retrying until it is back",
                        what,
                        reason(exc),
                    )
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def run(self, job: jobs.CallJob) -> dict[str, Any]:
        sid = job.session_id
        wid = self.settings.worker_id
        taken = time.time()
        if job.received_at:
            self.metrics.queue_wait.observe(max(0.0, taken - job.received_at))
        if job.transport not in self.settings.transports:
            error = (
                f"this worker does not run {job.transport!r} calls "
                f"(it runs: {', '.join(self.settings.transports)})"
            )
            log.error("call %s refused: %s", sid, error)
            self.metrics.outcomes.labels("refused").inc()
            await self.until_redis(
                f"call {sid}",
                lambda: store.update_call(
                    self.redis, sid, state="failed", worker=wid, error=error, ended_at=time.time()
                ),
            )
            return {"outcome": "refused", "error": error}
        run_here = self.in_process.get(job.transport)
        if run_here is not None:
            return await self._run_in_process(job, run_here, taken)
        prepare = self.prepare.get(job.transport, prepare_generic)
        await store.update_call(
            self.redis,
            sid,
            state="starting",
            worker=wid,
            transport=job.transport,
            started_at=taken,
        )
        cleanup: Callable[[], Awaitable[None]] | None = None
        outcome, error, code = "failed", "", None
        bot: BotProcess | None = None
        try:
            try:
                argv, env, cleanup = await prepare(job, self.settings)
                bot, warm = await self.pool.take()
            except Exception as exc:  # a provider refusal, an unrunnable command
                error = f"cannot start the bot: {exc}"
                await self._finish(sid, "failed", error, None, cleanup)
                return {"outcome": "failed", "error": error}
            bot.give(argv, env, sid)
            self.calls[sid] = RunningCall(job, bot, warm)
            self.metrics.calls_active.set(len(self.calls))
            log.info(
                "call %s (%s) started in %s bot process %d",
                sid,
                job.transport,
                "a warm" if warm else "a new (cold)",
                bot.pid,
            )
            await store.update_call(self.redis, sid, state="running", pid=bot.pid)
            ready = asyncio.ensure_future(bot.ready.wait())
            exited = asyncio.ensure_future(bot.exited.wait())
            try:
                await asyncio.wait(
                    {ready, exited},
                    timeout=self.settings.bot_max_duration_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                ready.cancel()
                exited.cancel()
            if bot.ready.is_set() and bot.ready_wall is not None:
                if job.received_at:
                    self.metrics.start_latency.labels("warm" if warm else "cold").observe(
                        max(0.0, bot.ready_wall - job.received_at)
                    )
                with contextlib.suppress(*redis_errors()):
                    await store.update_call(self.redis, sid, ready_at=bot.ready_wall)
            remaining = self.settings.bot_max_duration_s - (time.time() - taken)
            try:
                await asyncio.wait_for(bot.exited.wait(), max(0.0, remaining))
            except TimeoutError:
                log.warning("call %s reached the maximum duration; stopping its bot", sid)
                await bot.terminate(
                    self.settings.stop_timeout_s,
                    f"stopped at the worker's maximum call duration "
                    f"({self.settings.bot_max_duration_s:.0f} s)",
                )
            code = bot.returncode
            if code == 0:
                outcome = "ended"
            elif bot.stopping:
                outcome = "stopped"
            else:
                tail = " | ".join(list(bot.tail)[-5:]) or "no output"
                error = f"the bot exited with code {code}; last output: {tail}"
                log.error("call %s failed: %s", sid, error)
        except asyncio.CancelledError:
            # DELETE /sessions/ID (arq's abort) or the end of the drain timeout: leave cleanly
            outcome, error = "stopped", self.stop_reason(sid)
            if bot is not None and not bot.exited.is_set():
                log.info("call %s: asking its bot to leave (%s)", sid, error)
                await asyncio.shield(bot.terminate(self.settings.stop_timeout_s, error))
                code = bot.returncode
            await asyncio.shield(self._finish(sid, outcome, error, code, cleanup))
            raise
        await self._finish(sid, outcome, error, code, cleanup)
        return {"outcome": outcome, "exit_code": code, **({"error": error} if error else {})}

    async def _run_in_process(
        self, job: jobs.CallJob, run_here: RunInProcess, taken: float
    ) -> dict[str, Any]:
        """A call served by this process itself; it holds one of arq's ``max_jobs`` slots
        (the exact capacity) for as long as it runs."""
        sid = job.session_id
        await store.update_call(
            self.redis,
            sid,
            state="running",
            worker=self.settings.worker_id,
            transport=job.transport,
            started_at=taken,
        )
        self.inproc_calls[sid] = job
        self.metrics.calls_active.set(len(self.calls) + len(self.inproc_calls))
        outcome, error = "failed", ""
        try:
            outcome, error = await run_here(job)
        except asyncio.CancelledError:
            outcome, error = "stopped", self.stop_reason(sid)
            await asyncio.shield(self._finish(sid, outcome, error, None, None))
            raise
        except Exception as exc:
            log.exception("call %s failed", sid)
            outcome, error = "failed", f"the call failed: {exc}"
        await self._finish(sid, outcome, error, None, None)
        return {"outcome": outcome, **({"error": error} if error else {})}

    async def note_started(self, job: jobs.CallJob, wall: float) -> None:
        """A call served in this process has started (for a Twilio call: its media stream):
        its start latency (always warm: the imports are this process's) and ``ready_at``."""
        if job.received_at:
            self.metrics.start_latency.labels("warm").observe(max(0.0, wall - job.received_at))
        with contextlib.suppress(*redis_errors()):
            await store.update_call(self.redis, job.session_id, ready_at=wall)

    async def _finish(
        self,
        sid: str,
        outcome: str,
        error: str,
        code: int | None,
        cleanup: Callable[[], Awaitable[None]] | None,
    ) -> None:
        self.calls.pop(sid, None)
        self.inproc_calls.pop(sid, None)
        self.metrics.calls_active.set(len(self.calls) + len(self.inproc_calls))
        self.metrics.outcomes.labels(outcome).inc()
        if code is not None:
            log.info("call %s %s (exit code %s)", sid, outcome, code)
        else:  # no bot process ran (refused before one started, or served in this process)
            level = logging.ERROR if outcome == "failed" else logging.INFO
            log.log(level, "call %s %s%s", sid, outcome, f": {error}" if error else "")
        if cleanup is not None:
            try:
                await cleanup()
            except Exception:
                log.exception("cleanup after call %s failed", sid)
        fields: dict[str, Any] = {"state": outcome, "ended_at": time.time()}
        if error:
            fields["error"] = self.settings.public_error(error)
        if code is not None:
            fields["exit_code"] = code
        await self.until_redis(
            f"the end of call {sid}", lambda: store.update_call(self.redis, sid, **fields)
        )


async def run_call(ctx: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The arq job function."""
    fleet: Fleet = ctx["fleet"]
    try:
        call = jobs.CallJob.from_dict(job)
    except ValueError as exc:
        log.error("job %s is not a call: %s", ctx.get("job_id"), exc)
        return {"outcome": "refused", "error": str(exc)}
    return await fleet.run(call)


class DrainStops(logging.Filter):
    """arq logs a job cancelled by the end of the drain as ERROR ``run_call failed,
    CancelledError`` with a traceback. For a worker that was told to stop that is the
    normal end of a call (stopped, and recorded so): one INFO line instead."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.levelno >= logging.ERROR
            and isinstance(args, tuple)
            and len(args) >= 3
            and args[2] == "CancelledError"
            and " failed, " in str(record.msg)
            and self.fleet.drain_ended(str(args[1]).split(":", 1)[0])
        ):
            record.msg = "%6.2fs ⊘ %s stopped: the worker is stopping"
            record.args = args[:2]
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def make_worker(fleet: Fleet) -> FleetWorker:
    s = fleet.settings
    worker = FleetWorker(
        functions=[
            func(
                run_call,
                name=jobs.RUN_CALL,
                max_tries=1,  # a call is never re-run by arq: a lost one is reported failed
                timeout=s.bot_max_duration_s + 2 * s.stop_timeout_s + 60,
                keep_result=jobs.KEEP_RESULT_S,
            )
        ],
        queue_name=jobs.QUEUE_NAME,
        redis_pool=fleet.redis,
        max_jobs=s.capacity,
        poll_delay=s.poll_delay_s,
        health_check_interval=HEARTBEAT_S,
        health_check_key=f"botrun:arq-health:{s.worker_id}",
        handle_signals=False,
        job_completion_wait=max(1, round(s.drain_timeout_s)),
        allow_abort_jobs=True,
        retry_jobs=False,
        keep_result=jobs.KEEP_RESULT_S,
        job_serializer=jobs.dumps,
        job_deserializer=jobs.loads,
        ctx={"fleet": fleet},
        log_results=False,
    )
    worker.fleet = fleet
    fleet.worker = worker
    arq_log = logging.getLogger("arq.worker")
    for old in [f for f in arq_log.filters if isinstance(f, DrainStops)]:
        arq_log.removeFilter(old)
    arq_log.addFilter(DrainStops(fleet))
    return worker


async def wait_for_redis(fleet: Fleet, stop: asyncio.Event) -> bool:
    """Back off until Redis answers (True) or the worker is told to stop (False)."""
    delay = 0.2
    while not stop.is_set():
        try:
            await fleet.redis.ping()
            return True
        except redis_errors():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 5.0)
    return False


# After a drain, arq cancels its own loop; if that loop is still running this long after
# the stop signal with no job left, the cancellation was lost and is made again.
ARQ_STOP_GRACE_S = 3.0


async def run_until_drained(worker: Worker, stop: asyncio.Event) -> None:
    """``worker.async_run()``, making sure a finished drain also ends arq's loop.

    When the drain is over arq cancels its main task. On Python 3.11 a cancellation that
    lands as an inner ``asyncio.wait_for`` completes is lost (CPython gh-86296; redis-py
    and arq wait that way), and the loop then polls on with no job to pick: the worker
    never exits (seen: SIGTERM during a call, the call ended, the process still up a
    minute later). So once the stop signal came and no job is left, arq gets
    ``ARQ_STOP_GRACE_S`` to stop by itself; then its main task is cancelled again, every
    second until it ends. Raises what ``async_run`` raises (``CancelledError`` when arq's
    loop was cancelled, Redis errors)."""
    run = asyncio.ensure_future(worker.async_run())
    idle_since: float | None = None
    warned = False
    try:
        while True:
            done, _ = await asyncio.wait({run}, timeout=1.0)
            if done:
                return run.result()
            if not stop.is_set() or any(not t.done() for t in worker.tasks.values()):
                idle_since = None
                continue
            now = time.monotonic()
            if idle_since is None:
                idle_since = now
            elif now - idle_since >= ARQ_STOP_GRACE_S:
                main = worker.main_task
                if main is not None and not main.done():
                    if not warned:
                        log.warning(
                            "the job queue's loop did not stop after the drain: stopping it"
                        )
                        warned = True
                    main.cancel()
    except asyncio.CancelledError:
        while not run.done():  # (its cancellation can be lost the same way)
            run.cancel()
            main = worker.main_task
            if main is not None and not main.done():
                main.cancel()
            await asyncio.wait({run}, timeout=1.0)
        raise


async def serve_jobs(fleet: Fleet, worker: FleetWorker, stop: asyncio.Event) -> None:
    """arq's loop, restarted when Redis comes back; returns when the worker has drained."""
    url = describe(fleet.settings.queue_url)
    while True:
        try:
            await run_until_drained(worker, stop)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return  # arq's drain ended its loop (the stop signal)
        except redis_errors() as exc:
            fleet.redis_ok = False
            log.error(
                "lost Redis at %s (%s): the %d call(s) in progress go on; taking no new "
                "calls until it is back",
                url,
                reason(exc),
                len(fleet.calls),
            )
            if not await wait_for_redis(fleet, stop):
                return
            fleet.redis_ok = True
            fleet._resync = True
            log.info("Redis at %s is back: taking calls again", url)


_background: set[asyncio.Task[None]] = set()


def install_signals(fleet: Fleet, worker: FleetWorker, stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT: drain (take nothing new, let calls finish up to the drain
    timeout, then stop what is left). A second one: stop every call now."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            stop.set()
            fleet.draining = True
            fleet.metrics.draining.set(1)
            log.info(
                "%s: draining: taking no new calls; %d call(s) may run up to %.0f s more "
                "(a second signal stops them now)",
                sig.name,
                len(fleet.calls),
                fleet.settings.drain_timeout_s,
            )
            worker.handle_sig_wait_for_completion(sig)
            beat = loop.create_task(_beat_quietly(fleet))
            _background.add(beat)
            beat.add_done_callback(_background.discard)
        else:
            log.warning("second %s: stopping every call now", sig.name)
            worker.handle_sig(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)


async def _beat_quietly(fleet: Fleet) -> None:
    with contextlib.suppress(*redis_errors()):
        await fleet.beat()
