"""A ``twilio`` call job on a worker: the call's Media Stream is served by this worker.

No native SDK is involved, so a Twilio call needs no process of its own: like one-machine
serve (bots/serve/twilio_routes.py, whose registry and stream handler this reuses), the
worker runs the call's bridge in its own event loop, on its ``/twilio/stream`` WebSocket
at ``--public-url``. The job holds one of the worker's ``--capacity`` slots (arq's
``max_jobs``, counted) from the moment it is taken until the call is over.

The job: claim the call (:mod:`botrun.bots.fleet.twilio_claims`; the front door is waiting
to answer Twilio with this worker's stream URL), announce it to the registry as expected,
wait for Twilio to open its stream (its upgrade request is signature-checked against this
worker's public URL) and for the call to end. ``POST /twilio/relay`` (API token) brings the
call status callbacks the front door received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from botrun.bots.fleet import twilio_claims

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from botrun.bots.fleet.jobs import CallJob
    from botrun.bots.serve.twilio_routes import TwilioCalls

log = logging.getLogger("botrun.worker.twilio")

#: A taken call whose stream has not opened within this time is given up (Twilio opens it
#: right after the front door's answer).
STREAM_WAIT_S = 60.0


class TwilioKind:
    def __init__(self, calls: TwilioCalls, public_url: str) -> None:
        self.calls = calls
        self.public_url = public_url
        self.redis: ArqRedis | None = None  # set once the worker is connected
        #: Told when a call's stream has started (the worker's start-latency figure).
        self.on_started: Callable[[CallJob, float], Awaitable[None]] | None = None
        #: Why a cancelled call was stopped (by its session id): the bridge's summary reason.
        self.stop_reason: Callable[[str], str] | None = None

    async def run(self, job: CallJob) -> tuple[str, str]:
        from botrun.bots.serve.twilio_routes import TwilioCall

        assert self.redis is not None
        opts = job.options
        call_sid = str(opts.get("call_sid") or "")
        if not call_sid:
            return "refused", "a twilio job needs a call_sid"
        calls = self.calls
        call = TwilioCall(
            call_sid,
            str(opts.get("caller") or ""),
            str(opts.get("direction") or ""),
            str(opts.get("answered_by") or ""),
        )
        statuses = opts.get("statuses")
        if isinstance(statuses, list):
            call.statuses = [str(s) for s in statuses]
        # expected before the front door hears of us: Twilio may post a status right away
        calls.pending[call_sid] = call
        try:
            holder = await twilio_claims.claim(self.redis, job.session_id, self.public_url)
        except BaseException:
            calls.pending.pop(call_sid, None)
            raise
        if holder != self.public_url:
            calls.pending.pop(call_sid, None)
            log.warning("call %s: the front door stopped waiting (caller told busy)", call_sid)
            return "refused", "taken after the front door had told the caller the lines are busy"
        log.info("call %s: taken; waiting for its media stream", call_sid)
        try:
            started = asyncio.ensure_future(call.started.wait())
            done = asyncio.ensure_future(call.done.wait())
            try:
                await asyncio.wait(
                    {started, done}, timeout=STREAM_WAIT_S, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                started.cancel()
                done.cancel()
            if not call.started.is_set() and calls.pending.pop(call_sid, None) is not None:
                calls._finish(call)
                return (
                    "failed",
                    f"Twilio did not open the media stream within {STREAM_WAIT_S:.0f} s",
                )
            if call.started.is_set() and self.on_started is not None:
                await self.on_started(job, time.time())
            await call.done.wait()
        except asyncio.CancelledError:  # DELETE /sessions/ID, or the end of the drain
            if calls.pending.pop(call_sid, None) is not None:
                calls._finish(call)
            elif call.bridge is not None:
                why = self.stop_reason(job.session_id) if self.stop_reason else "stopped"
                call.bridge.stop(why)
                await asyncio.shield(call.done.wait())
            raise
        if call.summary is None:  # refused stream (bad media format) or never started
            return "failed", "the call's media stream did not start"
        return "ended", ""


async def relay(request: web.Request) -> web.Response:
    """A status callback the front door verified and passed on (API token)."""
    from botrun.bots.serve.twilio_routes import CALLS, FINAL

    calls = request.app[CALLS]
    try:
        data = await request.json()
    except ValueError:
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(data, dict) or not isinstance(data.get("CallSid"), str):
        return web.json_response({"error": "CallSid missing"}, status=400)
    sid = data["CallSid"]
    state = str(data.get("CallStatus") or "")
    answered_by = str(data.get("AnsweredBy") or "")
    call = calls.active.get(sid) or calls.pending.get(sid)
    if call is None:
        return web.json_response({"error": "no such call here"}, status=404)
    call.statuses.append(state)
    log.info("call %s: %s", sid, state or "?")
    if call.transport is not None:
        call.transport.call_status(state, answered_by)
    elif state in FINAL and calls.pending.pop(sid, None) is not None:
        calls._finish(call)
    return web.Response(status=204)


def install(app: web.Application, kind: TwilioKind) -> None:
    from botrun.bots.serve.twilio_routes import CALLS, stream

    app[CALLS] = kind.calls
    app.router.add_get("/twilio/stream", stream)
    app.router.add_post("/twilio/relay", relay)

    async def shutdown(app: web.Application) -> None:
        await kind.calls.shutdown()

    app.on_shutdown.append(shutdown)
