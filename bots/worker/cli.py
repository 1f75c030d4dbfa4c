"""``botrun worker``: takes call jobs from the fleet's Redis queue and runs them."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from botrun.bots.serve import options as opt

if TYPE_CHECKING:
    from aiohttp import web

    from botrun.bots.serve.auth import ApiAuth

    from .engine import Fleet, Prepare, WorkerSettings
    from .twilio_kind import TwilioKind

log = logging.getLogger("botrun.worker")


@click.command("worker")
@click.option(
    "--queue",
    "queue_url",
    required=True,
    metavar="URL",
    envvar="BOTRUN_QUEUE",
    help="The fleet's Redis (redis://host:port/db) [env: BOTRUN_QUEUE].",
)
@opt.number_option(
    "--capacity",
    default=4,
    low=1,
    high=1000,
    help="Most calls this worker runs at once (counted; more wait in the queue).",
)
@opt.number_option(
    "--warm",
    default=1,
    low=0,
    high=100,
    help="Idle bot processes kept with the heavy imports done (0: every start is cold).",
)
@opt.number_option(
    "--drain-timeout",
    "drain_timeout_s",
    default=600.0,
    low=1,
    high=24 * 3600,
    help="On SIGTERM, calls in progress may run this long (seconds) before being stopped.",
)
@click.option(
    "--transport",
    "transports",
    multiple=True,
    metavar="NAME",
    help="A transport this worker runs calls of (repeatable) [default: daily].",
)
@opt.config_option()
@opt.bot_max_duration_option("A call still running after this long is asked to leave.")
@opt.number_option(
    "--poll-interval",
    "poll_s",
    default=0.1,
    low=0.01,
    high=10,
    help="How often arq looks at the queue (seconds): a new call waits up to this long, and "
    "each look costs Redis a few round trips per queued or running job.",
)
@click.option(
    "--public-url",
    metavar="URL",
    envvar="PUBLIC_URL",
    help="The https address at which Twilio reaches this worker's port (its Media Streams "
    "for `--transport twilio` calls; docs/twilio.md) [env: PUBLIC_URL].",
)
@click.option(
    "--files",
    type=click.Path(path_type=Path, file_okay=False),
    help="The folder `wav` calls' files are in: their input/output/transcript/record paths "
    "are relative to it and cannot leave it (needed with --transport wav).",
)
@opt.host_option("Address of /metrics.")
@opt.port_option(0, "Port of /metrics, /health and /sessions (0: any free port, logged at start).")
@opt.insecure_option("Allow a non-loopback --host without BOTRUN_API_TOKEN.")
@opt.log_level_option()
def command(
    queue_url: str,
    capacity: int,
    warm: int,
    drain_timeout_s: float,
    transports: tuple[str, ...],
    config: Path | None,
    bot_max_duration_s: float,
    poll_s: float,
    public_url: str | None,
    files: Path | None,
    host: str,
    port: int,
    insecure: bool,
    log_level: str,
) -> None:
    """Run calls from the fleet's queue (botrun serve --queue puts them there).

    \b
    Each call runs in its own bot process, taken from --warm idle processes whose heavy
    imports are done; the process exits after its call. SIGTERM drains: no new calls,
    those in progress run up to --drain-timeout. A worker that dies is noticed by the
    others within seconds and its calls are reported failed.

    \b
    GET /metrics    Prometheus metrics (needs BOTRUN_API_TOKEN as a bearer token)
    GET /sessions   calls running here (same token)
    GET /health     liveness (open)
    GET /twilio/stream   Twilio Media Streams of `twilio` calls (signed; --public-url)
    """
    from botrun.core.logs import setup_logging

    from .engine import WorkerSettings

    setup_logging(log_level)
    if queue_url:  # a password in the URL given as a flag is masked like .env values
        from botrun.core.secrets import register_url_credentials

        register_url_credentials(queue_url)
    settings = WorkerSettings(
        queue_url=queue_url,
        capacity=capacity,
        warm=warm,
        drain_timeout_s=drain_timeout_s,
        transports=tuple(dict.fromkeys(transports or ("daily",))),
        bot_max_duration_s=bot_max_duration_s,
        poll_delay_s=poll_s,
        public_url=public_url or None,
    )
    auth, prepare = check(settings, config, host, insecure)
    if "wav" in settings.transports:
        prepare["wav"] = check_wav(files)
        settings.files = files
    twilio = check_twilio(settings, config) if "twilio" in settings.transports else None
    asyncio.run(run(settings, host, port, auth, prepare, twilio))


def check(
    settings: WorkerSettings, config: Path | None, host: str, insecure: bool
) -> tuple[ApiAuth, dict[str, Prepare]]:
    """Everything a call would fail on, found before taking any: one-line errors."""
    from botrun.bots.fleet.redis import settings_for
    from botrun.bots.serve.auth import TOKEN_VARIABLE, Access, decide
    from botrun.core.config import check_transport_tables, load_config, resolve_config_path
    from botrun.core.errors import UsageError
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets

    settings_for(settings.queue_url)  # a malformed URL: usage error
    installed = transports()
    unknown = [t for t in settings.transports if t not in installed]
    if unknown:
        raise UsageError(
            f"--transport {unknown[0]}: no such transport (installed: {', '.join(installed)})"
        )
    cfg = load_config(config, list(installed))
    check_transport_tables(cfg, installed.values())
    if config:
        settings.config = str(resolve_config_path(config).resolve())
    secrets = Secrets()
    try:
        auth = decide(
            host=host,
            token=secrets.get(TOKEN_VARIABLE),
            has_dialin_secret=False,
            insecure=insecure,
        )
    except UsageError as exc:
        if TOKEN_VARIABLE in str(exc) and "too short" in str(exc):
            raise
        raise UsageError(
            f"refusing to serve /metrics and /sessions on {host or 'every interface'} without "
            f"{TOKEN_VARIABLE}: set it, use --host 127.0.0.1, or pass --insecure"
        ) from None
    prepare: dict[str, Prepare] = {}
    if "daily" in settings.transports:
        from botrun.bots.serve.cli import check_daily_sdk

        from .daily_kind import make_prepare

        check_daily_sdk()  # as serve does: refuse now rather than fail every call
        key = secrets.require("DAILY_API_KEY", "to create rooms and meeting tokens for calls")
        prepare["daily"] = make_prepare(key, secrets.env("DAILY_API_URL"), cfg.bot.name)
    if auth.access is Access.OPEN:
        log.warning("%s is not set: /metrics and /sessions are open on %s", TOKEN_VARIABLE, host)
    return auth, prepare


def check_wav(files: Path | None) -> Prepare:
    """``wav`` jobs come from API clients: their paths are confined to ``--files``."""
    from botrun.core.errors import UsageError

    from .wav_kind import make_prepare

    if files is None:
        raise UsageError(
            "--transport wav needs --files DIR: the folder wav calls read and write "
            "(a job's paths are relative to it and cannot leave it)"
        )
    if not files.is_dir():
        raise UsageError(f"--files {files}: no such directory")
    return make_prepare(files)


def check_twilio(settings: WorkerSettings, config: Path | None) -> TwilioKind:
    """``twilio`` calls run in this process: Twilio's credentials, this worker's public URL
    and the bot's config, checked now (one-line errors)."""
    from botrun.bots.runner import agent_api_key
    from botrun.bots.serve.twilio_setup import twilio_calls
    from botrun.core.config import load_config
    from botrun.core.errors import ConfigError
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets
    from botrun.transports.twilio.settings import public_url

    from .twilio_kind import TwilioKind

    if not settings.public_url:
        raise ConfigError(
            "--transport twilio needs this worker's public address: --public-url or PUBLIC_URL "
            "(where Twilio opens the calls' media streams)"
        )
    settings.public_url = public_url(settings.public_url)
    # PUBLIC_URL means this worker's address in this process (--public-url may have set it)
    os.environ["PUBLIC_URL"] = settings.public_url
    secrets = Secrets()
    cfg = load_config(config, list(transports()))
    agent_key = agent_api_key(cfg.agent.url, secrets, cfg.agent.backend)
    calls = twilio_calls(secrets, cfg, agent_key, settings.capacity)
    return TwilioKind(calls, settings.public_url)


def http_app(fleet: Fleet, auth: ApiAuth, twilio: TwilioKind | None = None) -> web.Application:
    """/health (open), /metrics and /sessions (token); with ``twilio`` calls, the Media
    Streams WebSocket (signed by Twilio) and the status relay (token)."""
    from aiohttp import web

    from botrun.bots.fleet.metrics import exposition

    @web.middleware
    async def authenticate(request: web.Request, handler: object) -> web.StreamResponse:
        if request.path not in ("/health", "/twilio/stream"):
            refusal = auth.check(request.headers.get("Authorization"))
            if refusal is None:
                browser = auth.refuse_browser(request.method, request.headers)
                refusal = None if browser is None else (403, browser)
            if refusal is not None:
                return web.json_response({"error": refusal[1]}, status=refusal[0])
        return await handler(request)  # type: ignore[operator]

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "draining" if fleet.draining else "ok"})

    async def metrics(request: web.Request) -> web.Response:
        fleet.metrics.warm_idle.set(fleet.pool.idle)
        body, content_type = exposition(fleet.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def sessions(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "worker": fleet.settings.worker_id,
                "sessions": [
                    {
                        "id": sid,
                        "transport": c.job.transport,
                        "pid": c.bot.pid,
                        "warm": c.warm,
                        "started_at": c.started_at,
                    }
                    for sid, c in fleet.calls.items()
                ]
                + [
                    {"id": sid, "transport": job.transport, "pid": os.getpid(), "warm": True}
                    for sid, job in fleet.inproc_calls.items()
                ],
            }
        )

    from botrun.bots.serve.app import json_errors

    app = web.Application(middlewares=[json_errors, authenticate])
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sessions", sessions)
    if twilio is not None:
        from .twilio_kind import install

        install(app, twilio)
    return app


async def run(
    settings: WorkerSettings,
    host: str,
    port: int,
    auth: ApiAuth,
    prepare: dict[str, Prepare] | None = None,
    twilio: TwilioKind | None = None,
) -> None:
    from aiohttp import web

    from botrun.bots.fleet import store
    from botrun.bots.fleet.redis import connect, describe, redis_errors
    from botrun.bots.serve.supervisor import child_environment
    from botrun.core.errors import UsageError

    from .engine import Fleet, RunInProcess, install_signals, make_worker, serve_jobs
    from .pool import WarmPool

    redis = await connect(settings.queue_url)
    in_process: dict[str, RunInProcess] = {}
    if twilio is not None:
        twilio.redis = redis
        in_process["twilio"] = twilio.run
    # calls served by this process need no bot process: no warm pool when all are such
    warm = settings.warm if set(settings.transports) - set(in_process) else 0
    pool = WarmPool(warm, child_environment(os.environ, {}), preload=list(settings.transports))
    fleet = Fleet(settings, redis, pool, prepare=prepare, in_process=in_process)
    if twilio is not None:
        twilio.on_started = fleet.note_started
        twilio.stop_reason = fleet.stop_reason
        from botrun.core import heap

        heap.settle_before_calls()  # calls run in this process: settle before the first
    runner = web.AppRunner(http_app(fleet, auth, twilio), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname() if sockets else (host, port)
        settings.url = f"http://{bound[0]}:{bound[1]}"
        worker = make_worker(fleet)
        stop = asyncio.Event()
        install_signals(fleet, worker, stop)
        warm = await pool.wait_warm(120.0)
        await fleet.beat()
        log.info(
            "worker %s ready: capacity %d, %d warm, queue %s, listening on %s",
            settings.worker_id,
            settings.capacity,
            warm,
            describe(settings.queue_url),
            settings.url,
        )
        await serve_jobs(fleet, worker, stop)
        # arq drained: what is left are calls it stopped at the end of the drain timeout,
        # still leaving. With Redis down at the time, arq's loop was not running: the calls
        # get the drain timeout here, then are stopped
        running = [t for t in worker.tasks.values() if not t.done()]
        if running and fleet.redis_ok:
            log.info("the drain timeout has passed: stopping %d call(s)", len(running))
        elif running:
            log.info("waiting for %d call(s) to end (Redis unreachable)", len(running))
        if running:
            _, left = await asyncio.wait(running, timeout=settings.drain_timeout_s + 30.0)
            for task in left:
                task.cancel()
            # arq could not record these jobs either (its Redis errors end up here)
            await asyncio.gather(*running, return_exceptions=True)
            fleet.pool.kill_all()
        log.info("worker %s stopped", settings.worker_id)
    finally:
        await pool.close()
        try:
            await store.forget_worker(redis, settings.worker_id)
        except redis_errors():
            pass
        await runner.cleanup()
        await redis.aclose()
