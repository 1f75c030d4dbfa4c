"""``botrun serve --queue URL``: the stateless front door of a fleet.

It checks webhooks and API calls exactly as the one-machine serve does (same token rules,
same signature check, :mod:`botrun.bots.serve.auth` and :mod:`~botrun.bots.serve.webhook`)
and puts a call job on the queue; ``botrun worker`` processes take the jobs. It keeps no
state of its own: any number of front doors can answer behind a load balancer.

* ``POST /dialin``   Daily's dial-in webhook -> a ``daily`` job (the worker makes the room,
  the token and the bot). The same call id twice, on any front door: one job.
* ``POST /start``    ``{"room_url": ...}`` or ``{}`` -> a ``daily`` job; ``{"transport":
  NAME, "options": {...}}`` -> a job of another transport allowed by ``--call-transport``.
* ``POST /twilio/voice``, ``POST /twilio/status``  with ``TWILIO_AUTH_TOKEN``: a phone call
  becomes a ``twilio`` job; the TwiML names the worker that took it (:mod:`.twilio_door`).
* ``GET /sessions``, ``GET /sessions/ID``, ``DELETE /sessions/ID`` (arq's abort reaches the
  worker running it), ``GET /metrics``, ``GET /health``.

Refusals: 503 ``busy`` with the queue depth when ``--max-queued`` calls already wait; 503
when Redis cannot be reached (the call is refused, nothing is queued). A call that waits
longer than ``--queue-wait-s`` (a Twilio call: ``--twilio-queue-wait-s``) is never started
(arq's job expiry) and reported failed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from arq.connections import ArqRedis

from botrun.bots.serve.app import (
    SETTINGS,
    ServeSettings,
    authenticate,
    json_errors,
    read_json_object,
    receive_dialin,
    unknown_key,
)
from botrun.bots.serve.listener import note_request

from . import jobs, store
from .metrics import FrontDoorMetrics, exposition
from .redis import describe, reason, redis_errors

log = logging.getLogger("botrun.serve")

#: Shared options a job may set besides the transport's own. Not ``agent_url`` (the bot
#: would send the worker's ASSEMBLYAI_API_KEY wherever a caller points it), not ``config``
#: (the worker's own); ``transcript`` and ``record`` only for a transport whose workers
#: confine files (:data:`jobs.FILE_OPTIONS`).
SHARED_OPTIONS = ("name",)


#: How long Twilio waits for a webhook's answer by default (its connection overrides'
#: ``rt``/``tt``), seconds.
TWILIO_WEBHOOK_TIMEOUT_S = 15.0


@dataclass
class QueueSettings:
    queue_url: str
    #: A call not taken by a worker within this many seconds is never started.
    queue_wait_s: float = 30.0
    #: The same for Twilio calls: their voice webhook waits for a worker, and Twilio gives
    #: up on the webhook after :data:`TWILIO_WEBHOOK_TIMEOUT_S`.
    twilio_queue_wait_s: float = 10.0
    #: Refuse (503 busy) when this many calls already wait.
    max_queued: int = 100
    #: Transports POST /start may queue besides ``daily`` (with their options).
    call_transports: tuple[str, ...] = ()
    #: Option names of each allowed transport, for validating a job's options.
    transport_options: dict[str, frozenset[str]] = field(default_factory=dict)

    def wait_for(self, transport: str) -> float:
        """How long a call of ``transport`` may wait for a worker."""
        return self.twilio_queue_wait_s if transport == "twilio" else self.queue_wait_s


QUEUE = web.AppKey("queue", QueueSettings)
REDIS: web.AppKey[ArqRedis] = web.AppKey("redis")
METRICS = web.AppKey("metrics", FrontDoorMetrics)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _unavailable(
    app: web.Application, exc: BaseException, what: str = "call refused: the call queue"
) -> web.Response:
    """503: Redis cannot be reached. ``what`` is what failed: a call refused, or a listing,
    a record or a stop that could not be done."""
    app[METRICS].requests.labels("queue_unavailable").inc()
    app[METRICS].redis_up.set(0)
    url = describe(app[QUEUE].queue_url)
    log.error("%s is unavailable: cannot reach Redis at %s (%s)", what, url, reason(exc))
    return _error(503, f"{what} is unavailable (cannot reach Redis at {url})")


async def enqueue(request: web.Request, job: jobs.CallJob) -> web.Response:
    """Queue ``job`` once (its id dedupes), or refuse it: busy, or Redis unavailable."""
    app = request.app
    q, redis, metrics = app[QUEUE], app[REDIS], app[METRICS]
    wait_s = q.wait_for(job.transport)
    try:
        depth = await store.queue_depth(redis)
        if depth >= q.max_queued:
            metrics.requests.labels("busy").inc()
            log.warning("call %s refused: %d calls already wait", job.session_id, depth)
            return _error(503, f"busy: {depth} calls already wait for a worker", queue_depth=depth)
        queued = await redis.enqueue_job(
            jobs.RUN_CALL,
            job.to_dict(),
            _job_id=job.session_id,
            _queue_name=jobs.QUEUE_NAME,
            _expires=wait_s,
        )
        if queued is None:  # the same call again (a webhook retry): nothing new starts
            metrics.requests.labels("duplicate").inc()
            record = await store.get_call(redis, job.session_id) or {}
            log.info("call %s is already queued or handled", job.session_id)
            return web.json_response(
                {"duplicate": True, "session_id": job.session_id, "state": record.get("state")}
            )
        await store.queue_call(redis, job, expires_at=job.received_at + wait_s)
    except redis_errors() as exc:
        return _unavailable(app, exc)
    metrics.redis_up.set(1)
    metrics.requests.labels("queued").inc()
    log.info("call %s (%s) queued; %d waiting before it", job.session_id, job.transport, depth)
    return web.json_response(
        {"session_id": job.session_id, "queued": True, "queue_depth": depth + 1}, status=202
    )


async def dialin(request: web.Request) -> web.Response:
    received = time.time()
    metrics = request.app[METRICS]
    call = await receive_dialin(request, lambda: metrics.requests.labels("refused").inc())
    if isinstance(call, web.Response):
        return call
    job = jobs.CallJob(
        session_id=jobs.session_id_for_call(call.call_id),
        transport="daily",
        options={"dialin_call_id": call.call_id, "dialin_call_domain": call.call_domain},
        source="dialin",
        call_id=call.call_id,
        caller=call.from_ or None,
        received_at=received,
    )
    response = await enqueue(request, job)
    if response.status == 202:
        response.set_status(200)  # Daily's webhook: a plain success
    return response


def _check_options(q: QueueSettings, transport: str, options: Any) -> str | None:
    """Why ``options`` cannot be a job's options for ``transport`` (None: they can): unknown
    names, and values ``botrun <transport>`` would refuse (:mod:`.job_options`)."""
    from botrun.core.plugins import transports

    from . import job_options

    spec = transports().get(transport)
    if spec is None:  # checked at start (--call-transport): cannot happen
        return f"transport {transport!r} is not installed"
    shared = (*SHARED_OPTIONS, *jobs.FILE_OPTIONS.get(transport, ()))
    return job_options.problem(spec, options, shared)


def _ordered(transport: str, options: dict[str, Any]) -> dict[str, Any]:
    from botrun.core.plugins import transports

    from .job_options import ordered

    return ordered(transports()[transport], options)


async def start(request: web.Request) -> web.Response:
    received = time.time()
    data = await read_json_object(request)
    if isinstance(data, web.Response):
        return data
    refusal = unknown_key(data, ("room_url", "transport", "options"))
    if refusal is not None:
        return refusal
    q = request.app[QUEUE]
    transport = data.get("transport", "daily")
    if not isinstance(transport, str):
        return _error(400, "'transport' must be a string")
    if transport == "daily" and "options" in data:
        return _error(400, "a daily call takes 'room_url', not 'options'")
    if transport != "daily" and "room_url" in data:
        return _error(400, f"a {transport} call takes 'options', not 'room_url'")
    options: Any
    if transport == "daily":
        room_url = data.get("room_url")
        if room_url is not None and not isinstance(room_url, str):
            return _error(400, "'room_url' must be a string")
        options = {"room": room_url} if room_url else {}
    elif transport in q.call_transports:
        options = data.get("options", {})
        problem = _check_options(q, transport, options)
        if problem is not None:
            return _error(400, problem)
        options = _ordered(transport, options)
    else:
        allowed = ", ".join(("daily", *q.call_transports))
        return _error(400, f"transport {transport!r} is not accepted here (accepted: {allowed})")
    job = jobs.CallJob(
        session_id=jobs.new_session_id(),
        transport=transport,
        options=options,
        source="start",
        received_at=received,
    )
    return await enqueue(request, job)


async def health(request: web.Request) -> web.Response:
    """Liveness (open): says whether Redis answers, nothing more."""
    try:
        await request.app[REDIS].ping()
    except redis_errors():
        return web.json_response({"status": "degraded", "queue": "unreachable"}, status=503)
    return web.json_response({"status": "ok"})


async def sessions(request: web.Request) -> web.Response:
    redis = request.app[REDIS]
    try:
        calls = await store.active_calls(redis)
        workers = await store.live_workers(redis)
    except redis_errors() as exc:
        return _unavailable(request.app, exc, "the list of calls")
    for record in calls:
        worker = workers.get(record.get("worker", ""))
        if worker is not None:
            record["worker_url"] = worker.get("url")
    summary = [
        {k: w.get(k) for k in ("id", "host", "url", "capacity", "calls", "draining")}
        for w in workers.values()
    ]
    return web.json_response({"sessions": calls, "workers": summary})


async def session(request: web.Request) -> web.Response:
    try:
        record = await store.get_call(request.app[REDIS], request.match_info["id"])
    except redis_errors() as exc:
        return _unavailable(request.app, exc, "the call's record")
    if record is None:
        return _error(404, "no such session")
    return web.json_response(record)


async def stop_session(request: web.Request) -> web.Response:
    """Ask a call to end wherever it runs: arq's abort reaches its worker, which asks the
    bot to leave (a queued call is never started)."""
    from arq.jobs import Job

    redis = request.app[REDIS]
    sid = request.match_info["id"]
    try:
        record = await store.get_call(redis, sid)
        if record is None:
            return _error(404, "no such session")
        if record.get("state") not in store.ACTIVE_STATES:
            return _error(409, f"the call is over ({record.get('state')})", **record)
        job = Job(sid, redis, _queue_name=jobs.QUEUE_NAME, _deserializer=jobs.loads)
        with contextlib.suppress(TimeoutError):  # the worker stops it on its next poll
            await job.abort(timeout=0, poll_delay=0.05)
        if record.get("state") == "queued":
            await store.update_call(redis, sid, state="stopped", ended_at=time.time())
            record["state"] = "stopped"
        else:
            await store.update_call(redis, sid, state="stopping")
            record["state"] = "stopping"
    except redis_errors() as exc:
        return _unavailable(request.app, exc, "stopping the call")
    log.info("call %s: stop requested", sid)
    return web.json_response(record, status=202)


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    redis = request.app[REDIS]
    try:
        m.queue_depth.set(await store.queue_depth(redis))
        m.calls_active.set(len(await store.active_calls(redis)))
        m.workers.set(len(await store.live_workers(redis)))
        m.redis_up.set(1)
    except redis_errors():
        m.redis_up.set(0)
    body, content_type = exposition(m.registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _close_redis(app: web.Application) -> None:
    await app[REDIS].aclose()


def create_app(
    settings: ServeSettings, queue: QueueSettings, redis: ArqRedis, twilio: Any = None
) -> web.Application:
    """The front door. ``/health``, a signed ``/dialin`` and the Twilio webhooks (signed;
    with ``twilio``, a :class:`~.twilio_door.TwilioDoor`) are open, everything else needs
    the API token (serve's own middleware)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[json_errors, note_request, authenticate],
    )
    app[SETTINGS], app[QUEUE], app[REDIS] = settings, queue, redis
    app[METRICS] = FrontDoorMetrics()
    app.router.add_post("/dialin", dialin)
    app.router.add_post("/start", start)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/sessions", sessions)
    app.router.add_get("/sessions/{id}", session)
    app.router.add_delete("/sessions/{id}", stop_session)
    if twilio is not None:
        from . import twilio_door

        twilio_door.install(app, twilio)
    app.on_cleanup.append(_close_redis)
    return app
