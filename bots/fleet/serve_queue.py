"""``botrun serve --queue``: check everything, connect to Redis, run the front door until
SIGINT/SIGTERM. Nothing to drain: calls run on the workers and go on without it."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from botrun.bots.serve.listener import Limits

    from .frontdoor import QueueSettings

log = logging.getLogger("botrun.serve")


def check(
    host: str,
    queue_url: str,
    *,
    insecure: bool,
    read_timeout_s: float,
    queue_wait_s: float,
    max_queued: int,
    call_transports: tuple[str, ...],
) -> tuple[object, QueueSettings]:
    """Validate secrets and options (one-line errors); returns serve's settings and the
    queue's. The front door needs no Daily key: the workers make rooms and tokens."""
    from botrun.bots.serve.app import ServeSettings
    from botrun.bots.serve.auth import TOKEN_VARIABLE, Access, decide
    from botrun.bots.serve.webhook import decode_secret
    from botrun.core.errors import ConfigError, UsageError
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets

    from .frontdoor import QueueSettings
    from .redis import settings_for

    settings_for(queue_url)
    secrets = Secrets()
    raw_secret = secrets.get("DAILY_DIALIN_SECRET")
    dialin_key = None
    if raw_secret:
        try:
            dialin_key = decode_secret(raw_secret)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    auth = decide(
        host=host,
        token=secrets.get(TOKEN_VARIABLE),
        has_dialin_secret=dialin_key is not None,
        insecure=insecure,
    )
    installed = transports()
    options: dict[str, frozenset[str]] = {}
    for name in call_transports:
        if name not in installed:
            raise UsageError(
                f"--call-transport {name}: no such transport (installed: {', '.join(installed)})"
            )
        options[name] = frozenset(o.name for o in installed[name].options)
    if auth.access is Access.OPEN:
        log.warning(
            "%s is not set: the API is open to anyone who can reach %s", TOKEN_VARIABLE, host
        )
    elif auth.access is Access.CLOSED:
        log.warning("%s is not set: the API is disabled, only signed webhooks", TOKEN_VARIABLE)
    serve_settings = ServeSettings(dialin_key=dialin_key, auth=auth, read_timeout_s=read_timeout_s)
    queue = QueueSettings(
        queue_url=queue_url,
        queue_wait_s=queue_wait_s,
        max_queued=max_queued,
        call_transports=call_transports,
        transport_options=options,
    )
    return serve_settings, queue


async def run(
    serve_settings: object, queue: QueueSettings, host: str, port: int, limits: Limits
) -> None:
    from aiohttp import web

    from botrun.bots.serve.app import ServeSettings
    from botrun.bots.serve.listener import GUARD, ConnectionGuard, auto_max_connections, listen
    from botrun.core.errors import UsageError

    from .frontdoor import create_app
    from .redis import connect, describe

    assert isinstance(serve_settings, ServeSettings)
    redis = await connect(queue.queue_url)  # Redis down at start: one clear line, exit 1
    app: web.Application = create_app(serve_settings, queue, redis)
    guard = ConnectionGuard(limits, limits.max_connections or auto_max_connections(1))
    app[GUARD] = guard
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=limits.idle_timeout_s
    )
    await runner.setup()
    try:
        listener = await listen(runner, host, port, guard)
    except OSError as exc:
        await runner.cleanup()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    for sock in listener.sockets:
        address = sock.getsockname()
        log.info(
            "botrun serve (front door, queue %s) listening on http://%s:%d",
            describe(queue.queue_url),
            address[0],
            address[1],
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down (calls go on on the workers)")
    finally:
        listener.close()
        await runner.cleanup()
        log.info("stopped")
