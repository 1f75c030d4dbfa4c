"""``botrun serve``: the click command that checks everything, then runs the HTTP server until
SIGINT/SIGTERM, and on the way out asks every bot to leave and waits for them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import options as opt

if TYPE_CHECKING:
    from aiohttp import web

    from botrun.core.config import BotConfig

    from .listener import Limits

log = logging.getLogger("botrun.serve")

DEFAULT_BOT_COMMAND = (sys.executable, "-m", "botrun.bots.cli", "daily")
#: Rooms outlive a bot's maximum duration by this much, so the bot is stopped (and leaves
#: cleanly) before Daily's expiry ejects it.
ROOM_EXP_MARGIN_S = 300.0
#: After a second SIGINT/SIGTERM, the longest serve spends deleting rooms (and again waiting
#: for its own shutdown) before it exits.
URGENT_CLEANUP_S = 10.0


@click.command("serve")
@opt.host_option("Address to listen on.")
@opt.port_option(7860, "Port to listen on (0: any free port, logged at start).")
@opt.config_option()
@opt.number_option(
    "--max-bots",
    default=4,
    low=1,
    high=1000,
    help="Most bots running at once; more calls are answered 503.",
)
@opt.bot_max_duration_option("A bot still running after this long is asked to leave.")
@click.option(
    "--bot-command",
    metavar="CMD",
    help="Command that runs one bot (room and dial-in flags are appended) "
    "[default: python -m botrun.bots.cli daily].",
)
@opt.number_option(
    "--idle-timeout-s",
    default=15.0,
    low=0.1,
    high=3600,
    help="Close a connection idle this long, or that has not sent a whole request by then.",
)
@opt.number_option(
    "--read-timeout-s",
    default=10.0,
    low=0.1,
    high=3600,
    help="A request body must arrive within this time (else 408).",
)
@opt.number_option(
    "--max-connections",
    default=0,
    low=0,
    high=100_000,
    help="Most client connections open at once; more are closed at once "
    "(0: from the open-file limit, at most 1000).",
)
@opt.number_option(
    "--max-calls",
    default=20,
    low=1,
    high=10_000,
    help="Most Twilio calls running at once in this process; more are told the lines are busy.",
)
@opt.insecure_option(
    "Allow a non-loopback --host with neither BOTRUN_API_TOKEN nor DAILY_DIALIN_SECRET "
    "(anyone who reaches the port can start bots)."
)
@click.option(
    "--queue",
    "queue_url",
    metavar="URL",
    help="Run as the front door of a fleet: queue each call in this Redis "
    "(redis://host:port/db) for `botrun worker` processes, instead of running bots here.",
)
@opt.number_option(
    "--queue-wait-s",
    default=30.0,
    low=1,
    high=3600,
    help="With --queue: a call no worker takes within this time is never started.",
)
@opt.number_option(
    "--twilio-queue-wait-s",
    default=10.0,
    low=1,
    high=3600,
    help="With --queue: the same for a Twilio call, whose voice webhook waits for a worker "
    "(Twilio gives up after 15 s): no worker by then, the caller hears the lines are busy.",
)
@opt.number_option(
    "--max-queued",
    default=100,
    low=1,
    high=1_000_000,
    help="With --queue: answer 503 busy (with the queue depth) when this many calls wait.",
)
@click.option(
    "--call-transport",
    "call_transports",
    multiple=True,
    metavar="NAME",
    help="With --queue: POST /start may also queue calls of this transport, with "
    '{"transport": NAME, "options": {...}} (repeatable).',
)
@opt.log_level_option()
def command(
    host: str,
    port: int,
    config: Path | None,
    max_bots: int,
    bot_max_duration_s: float,
    bot_command: str | None,
    idle_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    max_calls: int,
    insecure: bool,
    queue_url: str | None,
    queue_wait_s: float,
    twilio_queue_wait_s: float,
    max_queued: int,
    call_transports: tuple[str, ...],
    log_level: str,
) -> None:
    """Answer Daily's pinless dial-in webhook and run one bot per call.

    \b
    POST /dialin          Daily's dial-in webhook (verified with DAILY_DIALIN_SECRET)
    POST /start           {"room_url": URL} or {} to create a room; returns the session id
    GET  /health          liveness (open; bot count only with the token)
    GET  /sessions        running bots
    DELETE /sessions/ID   ask one bot to leave
    GET  /metrics         Prometheus metrics (bots running, how they ended)
    POST /twilio/voice    Twilio's voice webhook (signed; with TWILIO_AUTH_TOKEN)
    GET  /twilio/stream   Twilio Media Streams (signed); calls run in this process
    POST /twilio/status   Twilio's call status callbacks (signed)

    Every endpoint but a signed /dialin and /health needs the header
    "Authorization: Bearer $BOTRUN_API_TOKEN". Without a token the API is open on a
    loopback --host (or with --insecure) and disabled otherwise; an open API refuses web
    pages (a foreign Origin, a POST that is not Content-Type: application/json, a Host
    that is not this machine).
    Needs DAILY_API_KEY (and ASSEMBLYAI_API_KEY for the bots), from the environment or .env;
    with TWILIO_AUTH_TOKEN set it also answers Twilio calls (TWILIO_ACCOUNT_SID, PUBLIC_URL;
    docs/twilio.md), and DAILY_API_KEY becomes optional.

    With --queue URL, serve is the stateless front door of a fleet: it checks requests
    the same way and queues each call in Redis; `botrun worker` processes run them (no
    DAILY_API_KEY needed here). GET /metrics and GET /sessions/ID are added; /sessions
    lists calls fleet-wide. With TWILIO_AUTH_TOKEN, a Twilio call becomes a job too and its
    media stream goes to the worker that took it (`botrun worker --transport twilio
    --public-url URL`). See docs/deploy.md.
    """
    from botrun.core.logs import setup_logging

    from .listener import Limits, auto_max_connections, install_rate_limits

    setup_logging(log_level)
    install_rate_limits()
    if queue_url:  # a password in the URL given as a flag is masked like .env values
        from botrun.core.secrets import register_url_credentials

        register_url_credentials(queue_url)
    if queue_url:
        from botrun.bots.fleet import serve_queue

        serve_settings, queue, twilio_door = serve_queue.check(
            host,
            queue_url,
            insecure=insecure,
            read_timeout_s=read_timeout_s,
            queue_wait_s=queue_wait_s,
            twilio_queue_wait_s=twilio_queue_wait_s,
            max_queued=max_queued,
            call_transports=call_transports,
        )
        front = Limits(idle_timeout_s, read_timeout_s, max_connections)
        asyncio.run(serve_queue.run(serve_settings, queue, host, port, front, twilio_door))
        return
    limits = Limits(
        idle_timeout_s=idle_timeout_s,
        read_timeout_s=read_timeout_s,
        max_connections=max_connections or auto_max_connections(max_bots),
    )
    app = build(
        host,
        port,
        config,
        max_bots,
        bot_max_duration_s,
        bot_command,
        insecure=insecure,
        read_timeout_s=read_timeout_s,
        max_calls=max_calls,
    )
    asyncio.run(run_server(app, host, port, limits))


def build(
    host: str,
    port: int,
    config: Path | None,
    max_bots: int,
    bot_max_duration_s: float,
    bot_command: str | None,
    *,
    insecure: bool = False,
    read_timeout_s: float = 10.0,
    max_calls: int = 20,
) -> web.Application:
    """Validate secrets, config and options (all failures are one-line errors) and build
    the application."""
    from botrun.bots.runner import agent_api_key
    from botrun.core.config import check_transport_tables, load_config, resolve_config_path
    from botrun.core.errors import UsageError
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets
    from botrun.transports.daily.rest import DailyRest

    from .app import ServeSettings, create_app
    from .auth import TOKEN_VARIABLE, Access, decide
    from .supervisor import Supervisor, child_environment
    from .twilio_setup import twilio_calls
    from .webhook import dialin_key as webhook_key

    secrets = Secrets()
    twilio_on = bool(secrets.get("TWILIO_AUTH_TOKEN"))
    api_key = (
        secrets.get("DAILY_API_KEY")
        if twilio_on
        else secrets.require("DAILY_API_KEY", "to create rooms and meeting tokens with Daily")
    )
    dialin_key = webhook_key(secrets.get("DAILY_DIALIN_SECRET"))
    auth = decide(
        host=host,
        token=secrets.get(TOKEN_VARIABLE),  # registered for redaction by Secrets.get
        # Twilio's webhooks are signed too: a public serve for Twilio alone needs no token
        has_dialin_secret=dialin_key is not None or twilio_on,
        insecure=insecure,
    )
    cfg = load_config(config, list(transports()))
    check_transport_tables(cfg, transports().values())
    agent_key = agent_api_key(cfg.agent.url, secrets, cfg.agent.backend)
    argv = shlex.split(bot_command) if bot_command else list(DEFAULT_BOT_COMMAND)
    if not argv:
        raise UsageError("--bot-command is empty")
    if not bot_command and api_key:
        check_default_bot(cfg)
    calls = twilio_calls(secrets, cfg, agent_key, max_calls) if twilio_on else None
    env = child_environment(
        os.environ,
        {
            "DAILY_API_KEY": api_key or "",
            "DAILY_API_URL": secrets.env("DAILY_API_URL"),
            "ASSEMBLYAI_API_KEY": agent_key,
        },
    )
    # Warnings only once everything is checked: a serve that cannot start says one line.
    if auth.access is Access.OPEN:
        log.warning(
            "%s is not set: the API%s is open to anyone who can reach %s",
            TOKEN_VARIABLE,
            "" if dialin_key else " (and unsigned dial-in webhooks)",
            host,
        )
    elif auth.access is Access.CLOSED:
        log.warning("%s is not set: the API is disabled, only signed webhooks", TOKEN_VARIABLE)
    if api_key and dialin_key is None and auth.access is Access.TOKEN:  # dial-in is on
        log.warning(
            "DAILY_DIALIN_SECRET is not set: /dialin needs the API token, which Daily cannot send"
        )
    settings = ServeSettings(
        dialin_key=dialin_key,
        auth=auth,
        config=str(resolve_config_path(config).resolve()) if config else None,
        room_exp_s=bot_max_duration_s + ROOM_EXP_MARGIN_S,
        bot_name=cfg.bot.name,
        read_timeout_s=read_timeout_s,
    )
    supervisor = Supervisor(
        bot_command=argv,
        env=env,
        max_bots=max_bots,
        bot_max_duration_s=bot_max_duration_s,
    )
    # Without DAILY_API_KEY (Twilio only) the Daily routes are not there: the client is unused.
    api = DailyRest(api_key or "no-daily", base_url=secrets.env("DAILY_API_URL"))
    app = create_app(settings, api, supervisor, daily=bool(api_key))
    if calls is not None:
        from botrun.core import heap

        from .twilio_routes import install

        install(app, calls)
        heap.settle_before_calls()  # calls run in this process: settle before the first
    return app


def check_daily_sdk() -> None:
    """Every Daily bot needs daily-python: a :class:`UsageError` (exit 2, one line) naming
    the extra when it does not import (``botrun serve`` and ``botrun worker`` check it at
    start rather than failing every call)."""
    from botrun.core.errors import UsageError
    from botrun.transports.daily import sdk

    try:
        sdk.load()
    except UsageError as exc:
        raise UsageError(f"every bot would fail: {exc}") from None


def check_default_bot(cfg: BotConfig) -> None:
    """What every default bot (``python -m botrun.bots.cli daily`` in this directory) would
    fail on at once, checked before serve answers a call: the Daily SDK must import, and
    the config's tools and hooks must load as the bot loads them
    (:func:`botrun.bots.runner.bot_tools`, ``bot_hooks``, with this directory importable,
    as ``python -m`` makes it). A :class:`UsageError`
    (exit 2, one line) otherwise."""
    from botrun.bots.runner import bot_hooks, bot_tools

    check_daily_sdk()
    bot_tools(cfg)  # a ConfigError names the file and key; the working directory is
    bot_hooks(cfg)  # importable, as for every command (core/userimport.py)


async def run_server(
    app: web.Application, host: str, port: int, limits: Limits | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, stop every bot, wait, close.

    A second signal means "now": every bot's process group is killed and one pass, at most
    :data:`URGENT_CLEANUP_S` long, deletes the rooms serve created. A third ends serve at once.
    """
    from botrun.core.errors import BotrunError

    from .app import SUPERVISOR, delete_rooms_now
    from .listener import Limits, auto_max_connections, bound_addresses, start_listening

    limits = limits or Limits()
    max_connections = limits.max_connections or auto_max_connections(app[SUPERVISOR].max_bots)
    runner, listener = await start_listening(app, host, port, limits, max_connections)
    for address in bound_addresses(listener):
        log.info("botrun serve listening on http://%s:%d", address[0], address[1])
    log.info(
        "at most %d connections; idle %.0f s, body %.0f s",
        max_connections,
        limits.idle_timeout_s,
        limits.read_timeout_s,
    )
    stop, urgent = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            urgent.set()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    cleanup: asyncio.Task[None] | None = None
    try:
        await stop.wait()
        log.info("shutting down: asking every bot to leave (a second signal: stop them now)")
        listener.close()  # no new connections; aiohttp closes the open ones
        cleanup = loop.create_task(runner.cleanup())
        urgent_wait = loop.create_task(urgent.wait())
        await asyncio.wait({cleanup, urgent_wait}, return_when=asyncio.FIRST_COMPLETED)
        urgent_wait.cancel()
        if not urgent.is_set():
            await cleanup
            log.info("stopped")
            return
        for sig in (signal.SIGINT, signal.SIGTERM):  # a third signal ends serve at once
            loop.remove_signal_handler(sig)
        log.warning(
            "second signal: killing every bot and deleting rooms (at most %.0f s)",
            URGENT_CLEANUP_S,
        )
        app[SUPERVISOR].kill_all()
        left = await delete_rooms_now(app, URGENT_CLEANUP_S)
        with contextlib.suppress(TimeoutError):  # the bots' own exit handling, bounded too
            await asyncio.wait_for(asyncio.shield(cleanup), URGENT_CLEANUP_S)
        if left:
            raise BotrunError(
                f"stopped; {len(left)} room(s) could not be deleted (they expire on their "
                f"own): {', '.join(left)}"
            )
        log.info("stopped")
    finally:
        listener.close()
        if cleanup is None:
            await runner.cleanup()
        elif not cleanup.done():
            cleanup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await cleanup
