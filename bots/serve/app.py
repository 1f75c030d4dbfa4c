"""The ``botrun serve`` HTTP application (aiohttp.web): routes and their error handling.

* ``POST /dialin``   Daily's pinless dial-in webhook → SIP room + owner token + one bot.
* ``POST /start``    a bot in a given room URL, or in a new room → ``{session_id, room_url}``.
* ``GET /health`` (liveness; open, says nothing more than "ok" without the API token),
  ``GET /sessions``, ``DELETE /sessions/{id}`` (ask a bot to leave), ``GET /metrics``
  (Prometheus, :mod:`.metrics_route`).

Every answer is JSON. Everything but a signed webhook and ``/health`` needs the API token
(:mod:`.auth`); an API open without a token refuses web pages (foreign ``Origin``, non-JSON
POST, a ``Host`` not naming this machine: 403). Refusals happen before any Daily resource
exists (401 unsigned or no token, 403 API disabled or a browser's request, 400 malformed,
413 oversized, 503 no free slot); a Daily REST failure part-way is logged with Daily's
message, the room created so far is deleted and the slot freed (502).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from botrun.core.errors import UsageError
from botrun.transports.daily.rest import DailyApiError, DailyRest, Room, room_name_from_url

from . import webhook
from .auth import Access, ApiAuth
from .listener import note_request
from .metrics_route import ServeMetrics
from .supervisor import BotSession, CapacityError, Reservation, Supervisor

log = logging.getLogger("botrun.serve")
#: What a client can cause in bulk (refusals): rate-limited by ``serve`` (listener.py).
net_log = logging.getLogger("botrun.serve.net")

#: Largest request body accepted (Daily's webhook is well under 2 KiB).
MAX_BODY_BYTES = 64 * 1024


@dataclass
class ServeSettings:
    """What the app needs besides the REST client and the supervisor."""

    #: Raw HMAC key (base64-decoded ``DAILY_DIALIN_SECRET``); None: webhooks unsigned.
    dialin_key: bytes | None = None
    #: Who may call the API (and ``/dialin`` when webhooks are unsigned).
    auth: ApiAuth = field(default_factory=lambda: ApiAuth(Access.OPEN))
    #: Bot config file passed to every bot (``--config``).
    config: str | None = None
    #: Rooms serve creates expire (and eject everyone) after this many seconds.
    room_exp_s: float = 3600.0
    #: The name the bot's owner token carries into the meeting.
    bot_name: str = "botrun"
    max_body_bytes: int = MAX_BODY_BYTES
    #: A request body must arrive within this many seconds (else 408, connection closed).
    read_timeout_s: float = 10.0


SETTINGS = web.AppKey("settings", ServeSettings)
API = web.AppKey("api", DailyRest)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
RECENT_CALLS = web.AppKey("recent_calls", webhook.RecentCalls)
#: Rooms serve created and has not deleted yet.
OWNED_ROOMS = web.AppKey("owned_rooms", set[str])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _daily_failed(what: str, exc: DailyApiError) -> web.Response:
    """Log and answer a failed Daily REST call (502): "could not reach Daily" when it never
    answered, "Daily refused <what>" when it did."""
    if exc.unreachable:
        log.error("could not reach Daily (for %s): %s", what, exc)
        return _error(502, f"could not reach Daily: {exc}")
    log.error("Daily refused %s: %s", what, exc)
    return _error(502, f"Daily API error: {exc}")


async def _delete_room(app: web.Application, name: str, context: str) -> None:
    """Delete a room serve created; failures are logged (the room expires on its own)."""
    try:
        await app[API].delete_room(name)
    except DailyApiError as exc:
        log.error("could not delete room %s %s: %s", name, context, exc)
    else:
        app[OWNED_ROOMS].discard(name)


async def delete_rooms_now(app: web.Application, timeout_s: float) -> list[str]:
    """One best-effort pass, at most ``timeout_s`` long, over every room serve created and
    has not deleted yet (serve's second signal). Returns the rooms left undeleted."""
    owned: set[str] = app[OWNED_ROOMS]
    rooms = sorted(owned)
    if rooms:
        log.info("deleting %d room(s) now", len(rooms))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(_delete_room(app, r, "at shutdown") for r in rooms)), timeout_s
            )
    return sorted(owned)


def log_slow_body(request: web.Request, timeout_s: float) -> None:
    """A request whose body did not arrive in time (answered 408), logged rate-limited."""
    net_log.warning(
        "%s %s from %s: body not received within %.0f s",
        request.method,
        request.path,
        request.remote,
        timeout_s,
    )


async def _read_body(request: web.Request) -> bytes | web.Response:
    settings = request.app[SETTINGS]
    if (request.content_length or 0) > settings.max_body_bytes:
        return _error(413, f"body larger than {settings.max_body_bytes} bytes")
    try:
        return await asyncio.wait_for(request.read(), settings.read_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body larger than {settings.max_body_bytes} bytes")
    except TimeoutError:
        log_slow_body(request, settings.read_timeout_s)
        response = _error(408, f"request body not received within {settings.read_timeout_s} s")
        response.force_close()
        return response


async def read_json_object(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object (an empty body: ``{}``), or the answer to give instead
    (413/408 for the body, 400 for what is not a JSON object)."""
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return _error(400, "body is not JSON")
    if not isinstance(data, dict):
        return _error(400, "body is not a JSON object")
    return data


def unknown_key(data: dict[str, Any], known: tuple[str, ...]) -> web.Response | None:
    """400 naming the first key of ``data`` not in ``known`` (a typo such as ``roomurl``
    must not start a bot in a new room), with the closest known key; None when all are
    known."""
    from botrun.core.config import suggest

    for key in data:
        if key not in known:
            allowed = ", ".join(repr(k) for k in known)
            return _error(
                400, f"unknown key {key!r}{suggest(key, list(known))} (known keys: {allowed})"
            )
    return None


async def _start_bot(
    request: web.Request,
    reservation: Reservation,
    *,
    kind: str,
    room: Room | None,
    room_url: str,
    call: webhook.DialinCall | None = None,
) -> web.Response:
    """Token + spawn for a reserved slot; on failure free everything made so far.
    ``room`` is a room serve created (deleted when the bot ends), else None."""
    app = request.app
    api, supervisor, settings = app[API], app[SUPERVISOR], app[SETTINGS]
    try:
        token = await api.create_meeting_token(
            room.name if room else room_name_from_url(room_url),
            owner=True,
            exp_s=settings.room_exp_s,
            user_name=settings.bot_name,
        )
        session = await supervisor.spawn(
            reservation,
            room_url=room_url,
            token=token,
            kind=kind,
            config=settings.config,
            owned_room=room.name if room else None,
            call_id=call.call_id if call else None,
            call_domain=call.call_domain if call else None,
            caller=call.from_ if call else None,
        )
    except DailyApiError as exc:
        if room is not None:
            await _delete_room(app, room.name, "while cleaning up")
        purpose = f"dial-in call {call.call_id}" if call is not None else "POST /start"
        return _daily_failed(f"a meeting token for the bot of {purpose}", exc)
    except CapacityError as exc:  # serve began shutting down meanwhile
        if room is not None:
            await _delete_room(app, room.name, "while cleaning up")
        return _error(503, f"no free bot slot: {exc}")
    except OSError as exc:
        log.error("%s: cannot start the bot command %s: %s", kind, supervisor.bot_command, exc)
        if room is not None:
            await _delete_room(app, room.name, "while cleaning up")
        return _error(500, "cannot start a bot process (see the server log)")
    finally:
        reservation.release()
    info = {"session_id": session.id, "room_url": session.room_url}
    if call is not None:  # remembered for the replay window, beyond the bot's life
        app[RECENT_CALLS].remember(call.call_id, info)
    return web.json_response(info)


async def receive_dialin(
    request: web.Request, on_refused: Callable[[], None] | None = None
) -> webhook.DialinCall | web.Response:
    """Read, verify and parse Daily's dial-in webhook (serve's ``/dialin`` and the fleet's
    front door): the call, or the answer to give instead: 413/408 for the body, 200 for
    Daily's test payload, 401/400 for a refused webhook (logged rate-limited; ``on_refused``
    is called then)."""
    settings = request.app[SETTINGS]
    body = await _read_body(request)
    if isinstance(body, web.Response):
        return body
    if webhook.is_test_payload(body):
        # Daily's configuration check; it starts nothing, so it is answered even unsigned.
        log.info("dial-in webhook test payload received")
        return web.json_response({"ok": True, "test": True})
    try:
        if settings.dialin_key is not None:
            webhook.verify(settings.dialin_key, request.headers, body)
        return webhook.parse_call(body)
    except webhook.WebhookRejected as exc:
        if on_refused is not None:
            on_refused()
        net_log.warning(
            "dial-in webhook from %s refused (%d): %s", request.remote, exc.status, exc.reason
        )
        return _error(exc.status, exc.reason)


async def dialin(request: web.Request) -> web.Response:
    """Daily's pinless dial-in webhook."""
    settings = request.app[SETTINGS]
    call = await receive_dialin(request)
    if isinstance(call, web.Response):
        return call
    supervisor = request.app[SUPERVISOR]
    existing = supervisor.find_call(call.call_id)
    if existing is not None:  # Daily retried a webhook we are already handling
        log.info("dial-in call %s is already being handled", call.call_id)
        info: dict[str, Any] = {"duplicate": True}
        if isinstance(existing, BotSession):
            info.update(session_id=existing.id, room_url=existing.room_url)
        return web.json_response(info)
    handled = request.app[RECENT_CALLS].get(call.call_id)
    if handled is not None:  # a retry or a replay after its bot ended: never a second bot
        log.warning("dial-in call %s was already handled; not starting it again", call.call_id)
        return web.json_response({"duplicate": True, "ended": True, **handled})
    try:
        reservation = supervisor.reserve(call.call_id)
    except CapacityError as exc:
        log.warning("dial-in call %s from %s refused: %s", call.call_id, call.from_ or "?", exc)
        return _error(503, f"no free bot slot: {exc}")
    log.info("dial-in call %s from %s to %s", call.call_id, call.from_ or "?", call.to or "?")
    api = request.app[API]
    try:
        room = await api.create_room(
            exp_s=settings.room_exp_s, sip_display_name=call.from_ or "caller"
        )
    except DailyApiError as exc:
        reservation.release()
        return _daily_failed(f"the room of dial-in call {call.call_id}", exc)
    request.app[OWNED_ROOMS].add(room.name)
    return await _start_bot(
        request, reservation, kind="dialin", room=room, room_url=room.url, call=call
    )


async def start(request: web.Request) -> web.Response:
    """Start a bot: ``{"room_url": ...}`` joins that room; an empty body creates one."""
    settings = request.app[SETTINGS]
    data = await read_json_object(request)
    if isinstance(data, web.Response):
        return data
    refusal = unknown_key(data, ("room_url",))
    if refusal is not None:
        return refusal
    room_url = data.get("room_url")
    if room_url is not None:
        if not isinstance(room_url, str):
            return _error(400, "'room_url' must be a string")
        try:
            room_name_from_url(room_url)
        except UsageError as exc:
            return _error(400, str(exc))
    supervisor = request.app[SUPERVISOR]
    try:
        reservation = supervisor.reserve()
    except CapacityError as exc:
        return _error(503, f"no free bot slot: {exc}")
    room: Room | None = None
    if room_url is None:
        try:
            room = await request.app[API].create_room(exp_s=settings.room_exp_s)
        except DailyApiError as exc:
            reservation.release()
            return _daily_failed("the room for POST /start", exc)
        request.app[OWNED_ROOMS].add(room.name)
        room_url = room.url
    return await _start_bot(request, reservation, kind="start", room=room, room_url=room_url)


async def health(request: web.Request) -> web.Response:
    """Liveness. Open to anyone, so it reveals nothing unless the caller may use the API."""
    auth = request.app[SETTINGS].auth
    if (
        auth.check(request.headers.get("Authorization")) is not None
        or auth.refuse_browser(request.method, request.headers) is not None
    ):
        return web.json_response({"status": "ok"})
    supervisor = request.app[SUPERVISOR]
    return web.json_response(
        {"status": "ok", "bots": len(supervisor.sessions()), "max_bots": supervisor.max_bots}
    )


#: Paths that do their own authentication (``/dialin`` only when webhooks are signed; the
#: Twilio routes check X-Twilio-Signature: twilio_routes.py).
_SELF_AUTHENTICATED = ("/health", "/twilio/voice", "/twilio/stream", "/twilio/status")


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every refusal is JSON ``{"error": ...}``, aiohttp's own too (an unknown path's 404, a
    wrong method's 405, with its ``Allow`` header), not its plain text."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        path = request.path if len(request.path) <= 200 else request.path[:200] + "..."
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"{request.method} is not allowed on {path} (allowed: {allowed})"
        elif exc.status == 404:
            message = f"no such endpoint: {path}"
        else:
            message = exc.reason
        response = _error(exc.status, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


@web.middleware
async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
    """The API token on every endpoint that is not a signed webhook or the liveness probe;
    without a token (an open API), no web page may drive it."""
    settings = request.app[SETTINGS]
    if request.path in _SELF_AUTHENTICATED or (
        request.path == "/dialin" and settings.dialin_key is not None
    ):
        return await handler(request)
    refusal = settings.auth.check(request.headers.get("Authorization"))
    if refusal is None:
        browser = settings.auth.refuse_browser(request.method, request.headers)
        refusal = None if browser is None else (403, browser)
    if refusal is not None:
        status, message = refusal
        net_log.warning(
            "%s %s from %s refused (%d): %s",
            request.method,
            request.path,
            request.remote,
            status,
            message,
        )
        response = _error(status, message)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="botrun serve"'
        return response
    return await handler(request)


async def sessions(request: web.Request) -> web.Response:
    return web.json_response({"sessions": [s.info() for s in request.app[SUPERVISOR].sessions()]})


async def stop_session(request: web.Request) -> web.Response:
    session = request.app[SUPERVISOR].stop(request.match_info["id"])
    if session is None:
        return _error(404, "no such session")
    return web.json_response(session.info(), status=202)


async def _shutdown(app: web.Application) -> None:
    await app[SUPERVISOR].shutdown()


async def _close_api(app: web.Application) -> None:
    await app[API].close()


def create_app(
    settings: ServeSettings, api: DailyRest, supervisor: Supervisor, *, daily: bool = True
) -> web.Application:
    """The application. ``supervisor.on_exit`` is set to delete each bot's own room."""

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[json_errors, note_request, authenticate],
    )

    metrics = ServeMetrics(supervisor)

    async def on_exit(session: BotSession) -> None:
        metrics.bot_exited(session)
        if session.owned_room is not None:
            await _delete_room(app, session.owned_room, f"after bot {session.id}")

    supervisor.on_exit = on_exit
    app[SETTINGS], app[API], app[SUPERVISOR] = settings, api, supervisor
    app[RECENT_CALLS] = webhook.RecentCalls()
    app[OWNED_ROOMS] = set()
    if daily:  # (False: no DAILY_API_KEY, serve answers Twilio calls only)
        app.router.add_post("/dialin", dialin)
        app.router.add_post("/start", start)
    app.router.add_get("/health", health)
    app.router.add_get("/sessions", sessions)
    app.router.add_delete("/sessions/{id}", stop_session)
    app.router.add_get("/metrics", metrics.handle)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_close_api)
    return app
