"""``botrun serve --queue``'s Twilio routes: a phone call becomes a ``twilio`` job.

* ``POST /twilio/voice``  the signed voice webhook -> a ``twilio`` job whose id is derived
  from the CallSid (Twilio's retries, on any front door, name the same job: nothing new
  starts). The answer waits until a worker has taken the job (:mod:`.twilio_claims`, up to
  ``--twilio-queue-wait-s``, under Twilio's 15 s webhook timeout) and is TwiML connecting
  the call's Media Stream to *that worker's* public URL; no worker in time, a full queue or
  no Redis -> a polite ``<Say>`` and ``<Hangup>``.
* ``POST /twilio/status`` signed call status callbacks -> relayed to the worker running the
  call (``POST <worker public URL>/twilio/relay``, with ``BOTRUN_API_TOKEN``); those of a
  call not running yet (an outbound call ringing) are kept in Redis a few minutes and reach
  the call with its job.

The media never passes through the front door: Twilio opens the stream on the worker,
which checks its signature against its own public URL.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import ClientError, ClientSession, ClientTimeout, web

from . import jobs, store, twilio_claims
from .redis import redis_errors

if TYPE_CHECKING:
    from botrun.transports.twilio.settings import TwilioSettings
    from botrun.transports.twilio.signature import Validator

log = logging.getLogger("botrun.serve.twilio")

PATHS = ("/twilio/voice", "/twilio/status")
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
RELAY_TIMEOUT_S = 5.0


@dataclass
class TwilioDoor:
    settings: TwilioSettings  # PUBLIC_URL: the front door's address, as Twilio signs it
    validator: Validator
    #: BOTRUN_API_TOKEN, sent to a worker's relay endpoint (None: the workers' API is open).
    api_token: str | None = None


DOOR = web.AppKey("twilio_door", TwilioDoor)


def session_id_for(call_sid: str) -> str:
    return jobs.session_id_for_call("twilio:" + call_sid)


def stream_url(public_url: str) -> str:
    """The Media Streams URL at a worker's public http(s) address."""
    scheme, rest = public_url.rstrip("/").split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/twilio/stream"


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


async def _signed_form(request: web.Request) -> dict[str, str] | web.Response:
    from botrun.bots.serve.twilio_routes import signed_form

    door = request.app[DOOR]
    return await signed_form(request, door.settings, door.validator)


async def voice(request: web.Request) -> web.Response:
    from botrun.transports.twilio import twiml

    from .frontdoor import QUEUE, REDIS, enqueue

    received = time.time()
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    redis, q = request.app[REDIS], request.app[QUEUE]
    call_sid = params["CallSid"]
    sid = session_id_for(call_sid)
    direction = params.get("Direction", "")
    outbound = direction.startswith("outbound")
    caller = params.get("To" if outbound else "From", "")
    try:
        held = await twilio_claims.current(redis, sid)
        early = await twilio_claims.early_statuses(redis, call_sid) if outbound else []
    except redis_errors():
        held, early = None, []
    if held == twilio_claims.BUSY:  # Twilio retried a webhook that was answered busy
        log.info("call %s: webhook retried; it was told busy, so it is again", call_sid)
        return _xml(twiml.busy())
    job = jobs.CallJob(
        session_id=sid,
        transport="twilio",
        options={
            "call_sid": call_sid,
            "caller": caller,
            "direction": direction,
            "answered_by": params.get("AnsweredBy", ""),
            "statuses": early,
        },
        source="twilio",
        call_id=call_sid,
        caller=caller or None,
        received_at=received,
    )
    queued = await enqueue(request, job)
    if queued.status == 503:  # busy (too many waiting) or no Redis: said in the log
        return _xml(twiml.busy())
    if queued.status == 200:  # a retried webhook: the same answer as the first one got
        log.info("call %s: webhook retried; nothing new started", call_sid)
    try:
        record = await store.get_call(redis, sid) or {}
        if queued.status == 200 and record.get("state") not in (*store.ACTIVE_STATES, None):
            log.warning("call %s: webhook for a call already over; hanging up", call_sid)
            return _xml(twiml.hang_up())
        expires_at = record.get("expires_at", received + q.wait_for("twilio"))
        wait_s = max(0.0, expires_at - time.time())
        taker = await twilio_claims.wait_claimed(redis, sid, wait_s)
        if taker is None:
            taker = await twilio_claims.claim(redis, sid, twilio_claims.BUSY)
            if taker == twilio_claims.BUSY:
                await store.update_call(
                    redis,
                    sid,
                    state="failed",
                    error="no worker took the call within the queue wait: told busy",
                    ended_at=time.time(),
                )
    except redis_errors() as exc:
        log.error("call %s: Redis lost while waiting for a worker (%s); told busy", call_sid, exc)
        return _xml(twiml.busy())
    if taker == twilio_claims.BUSY:
        log.warning("call %s from %s: no worker free in time; told busy", call_sid, caller or "?")
        return _xml(twiml.busy())
    log.info(
        "call %s %s %s: streaming to %s",
        call_sid,
        "to" if outbound else "from",
        caller or "?",
        taker,
    )
    return _xml(
        twiml.connect_stream(
            stream_url(taker),
            {"from": caller, "direction": direction, "answered_by": params.get("AnsweredBy", "")},
        )
    )


async def status(request: web.Request) -> web.Response:
    from .frontdoor import REDIS

    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    redis = request.app[REDIS]
    call_sid, state = params["CallSid"], params.get("CallStatus", "")
    answered_by = params.get("AnsweredBy", "")
    log.info(
        "call %s: %s%s",
        call_sid,
        state or "?",
        f" (answered by {answered_by})" if answered_by else "",
    )
    sid = session_id_for(call_sid)
    try:
        record = await store.get_call(redis, sid)
        worker = None
        if record is not None and record.get("worker"):
            worker = (await store.live_workers(redis)).get(str(record["worker"]))
        if record is None:  # not (yet) a job: an outbound call ringing, or over unanswered
            await twilio_claims.note_early_status(redis, call_sid, state)
            if state in FINAL:
                statuses = await twilio_claims.early_statuses(redis, call_sid)
                log.info(
                    "call %s to %s ended before it was answered: %s; statuses: %s",
                    call_sid,
                    params.get("To", "") or "?",
                    state,
                    ", ".join(statuses),
                )
            return web.Response(status=204)
    except redis_errors() as exc:
        log.error("call %s: status %s not relayed: Redis unreachable (%s)", call_sid, state, exc)
        return web.Response(status=204)
    target = (worker or {}).get("public_url")
    if not target:
        if record.get("state") in store.ACTIVE_STATES:
            log.warning("call %s: status %s not relayed: its worker is unknown", call_sid, state)
        return web.Response(status=204)
    door = request.app[DOOR]
    headers = {"Authorization": f"Bearer {door.api_token}"} if door.api_token else {}
    body = {"CallSid": call_sid, "CallStatus": state, "AnsweredBy": answered_by}
    try:
        async with (
            ClientSession(timeout=ClientTimeout(total=RELAY_TIMEOUT_S)) as http,
            http.post(
                f"{target.rstrip('/')}/twilio/relay",
                data=json.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
            ) as r,
        ):
            if r.status >= 300:
                log.warning("call %s: the worker refused status %s (%d)", call_sid, state, r.status)
    except (TimeoutError, OSError, ClientError) as exc:
        log.warning("call %s: status %s not relayed to its worker: %s", call_sid, state, exc)
    return web.Response(status=204)


def install(app: web.Application, door: TwilioDoor) -> None:
    app[DOOR] = door
    app.router.add_post("/twilio/voice", voice)
    app.router.add_post("/twilio/status", status)
    log.info(
        "Twilio calls through the fleet: voice webhook %s", door.settings.http_url("/twilio/voice")
    )
