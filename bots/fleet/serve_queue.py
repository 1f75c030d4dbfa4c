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
    from .twilio_door import TwilioDoor

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
    twilio_queue_wait_s: float = 10.0,
) -> tuple[object, QueueSettings, object]:
    """Validate secrets and options (one-line errors); returns serve's settings and the
    queue's. The front door needs no Daily key: the workers make rooms and tokens."""
    from botrun.bots.serve.app import ServeSettings
    from botrun.bots.serve.auth import TOKEN_VARIABLE, Access, decide
    from botrun.bots.serve.webhook import dialin_key as webhook_key
    from botrun.core.errors import UsageError
    from botrun.core.plugins import transports
    from botrun.core.secrets import Secrets

    from .frontdoor import TWILIO_WEBHOOK_TIMEOUT_S, QueueSettings
    from .redis import settings_for

    settings_for(queue_url)
    secrets = Secrets()
    twilio_on = bool(secrets.get("TWILIO_AUTH_TOKEN"))
    door = twilio_door(secrets) if twilio_on else None
    dialin_key = webhook_key(secrets.get("DAILY_DIALIN_SECRET"))
    auth = decide(
        host=host,
        token=secrets.get(TOKEN_VARIABLE),
        # Twilio's webhooks are signed too: a front door for Twilio alone needs no token
        has_dialin_secret=dialin_key is not None or twilio_on,
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
        twilio_queue_wait_s=twilio_queue_wait_s,
        max_queued=max_queued,
        call_transports=call_transports,
        transport_options=options,
    )
    if door is not None:
        door.api_token = auth.token
        if twilio_queue_wait_s >= TWILIO_WEBHOOK_TIMEOUT_S:
            log.warning(
                "--twilio-queue-wait-s %.0f: Twilio waits %.0f s for its voice webhook's "
                "answer (unless its URL overrides that); a Twilio call still queued then is lost",
                twilio_queue_wait_s,
                TWILIO_WEBHOOK_TIMEOUT_S,
            )
    return serve_settings, queue, door


def twilio_door(secrets: object) -> TwilioDoor:
    """The front door's Twilio settings: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and
    PUBLIC_URL (the front door's address, against which webhooks are verified)."""
    from botrun.core.secrets import Secrets

    assert isinstance(secrets, Secrets)
    from botrun.transports.twilio import settings as tw_settings

    tw_settings.require_package()
    from botrun.transports.twilio.signature import Validator

    from .twilio_door import TwilioDoor

    settings = tw_settings.load(secrets, "to answer Twilio calls")
    return TwilioDoor(settings, Validator(settings.auth_token))


async def run(
    serve_settings: object,
    queue: QueueSettings,
    host: str,
    port: int,
    limits: Limits,
    twilio: object = None,
) -> None:
    from botrun.bots.serve.app import ServeSettings
    from botrun.bots.serve.listener import auto_max_connections, bound_addresses, start_listening

    from .frontdoor import create_app
    from .redis import connect, describe

    assert isinstance(serve_settings, ServeSettings)
    redis = await connect(queue.queue_url)  # Redis down at start: one clear line, exit 1
    app: web.Application = create_app(serve_settings, queue, redis, twilio)
    max_connections = limits.max_connections or auto_max_connections(1)
    runner, listener = await start_listening(app, host, port, limits, max_connections)
    for address in bound_addresses(listener):
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
