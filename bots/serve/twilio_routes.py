"""``botrun serve``'s Twilio routes: phone calls over Media Streams, run in this process.

* ``POST /twilio/voice``  Twilio's voice webhook (a number's incoming calls, and the calls
  ``botrun call`` places): answers TwiML that connects the call to ``/twilio/stream`` with
  the caller's details as ``<Parameter>``s; beyond ``--max-calls`` a polite ``<Say>`` and
  ``<Hangup>``; Twilio's retries for a CallSid never start a second bot.
* ``GET /twilio/stream``  the Media Streams WebSocket: one bridge (agent session) per call,
  in this process (no native SDK: many calls share it).
* ``POST /twilio/status`` call status callbacks: logged, shown to the call (a
  ``TransportStatus`` event: console, hooks) and in its summary; a final status ends it.

Every request is checked with ``X-Twilio-Signature`` against ``PUBLIC_URL`` (the address
Twilio used) before anything starts: 403 otherwise. A stream for a call no webhook announced,
or one already running or finished, is closed with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web

from botrun.transports.twilio import messages as m
from botrun.transports.twilio import twiml
from botrun.transports.twilio.signature import Validator

if TYPE_CHECKING:
    from botrun.core.bridge import Bridge, CallSummary
    from botrun.core.config import BotConfig
    from botrun.transports.twilio.rest import TwilioRest
    from botrun.transports.twilio.settings import TwilioSettings
    from botrun.transports.twilio.transport import TwilioStats, TwilioTransport

log = logging.getLogger("botrun.serve.twilio")
net_log = logging.getLogger("botrun.serve.net")

PATHS = ("/twilio/voice", "/twilio/stream", "/twilio/status")
FINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
#: A call the webhook answered must open its stream within this time, else it is forgotten.
PENDING_S = 60.0
#: The stream's ``start`` must arrive within this time after the upgrade.
START_TIMEOUT_S = 10.0
#: The bridge must have joined the call (reported the caller) within this time.
JOIN_TIMEOUT_S = 10.0
#: Finished CallSids remembered (a retried webhook or a replayed stream starts nothing).
RECENT = 1000


@dataclass
class TwilioCall:
    sid: str
    caller: str = ""
    direction: str = ""
    answered_by: str = ""
    announced_at: float = field(default_factory=time.monotonic)
    statuses: list[str] = field(default_factory=list)
    transport: TwilioTransport | None = None
    bridge: Bridge | None = None
    task: asyncio.Task[None] | None = None
    # kept once the call is over (the transport and the bridge are let go then)
    summary: CallSummary | None = None
    stats: TwilioStats | None = None
    #: Set once the call is over (finished, refused or forgotten): a fleet worker's job waits
    #: on it (bots/worker/twilio_kind.py).
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when its media stream has started (the call is running).
    started: asyncio.Event = field(default_factory=asyncio.Event)


class TwilioCalls:
    """The calls of this process: announced (webhook answered), running, recently finished."""

    def __init__(
        self,
        settings: TwilioSettings,
        config: BotConfig,
        *,
        api_key: str | None,
        max_calls: int = 20,
        rest: TwilioRest | None = None,
        transcode: bool = False,
        hooks: Any = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.api_key = api_key
        self.max_calls = max_calls
        self.rest = rest
        self.transcode = transcode
        self.hooks = hooks  # the bot's per-call hooks (core/hooks.py), loaded once
        self.validator = Validator(settings.auth_token)
        self.pending: dict[str, TwilioCall] = {}
        self.active: dict[str, TwilioCall] = {}
        self.finished: OrderedDict[str, TwilioCall] = OrderedDict()
        # Outbound calls' statuses before their voice webhook (initiated, ringing, ...).
        self.early: OrderedDict[str, TwilioCall] = OrderedDict()
        self.refused_streams = 0
        self.closing = False

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, c in self.pending.items() if now - c.announced_at > PENDING_S]:
            log.warning("call %s: its stream never opened; forgotten", sid)
            self._finish(self.pending.pop(sid))

    def _finish(self, call: TwilioCall) -> None:
        if call.bridge is not None:  # keep the figures, not the call's machinery
            call.summary = call.bridge.summary
        if call.transport is not None:
            call.stats = call.transport.stats
        call.bridge = call.transport = call.task = None
        call.done.set()
        self.finished[call.sid] = call
        while len(self.finished) > RECENT:
            self.finished.popitem(last=False)

    @property
    def busy(self) -> int:
        self._expire()
        return len(self.pending) + len(self.active)

    def stream_twiml(self, call: TwilioCall) -> str:
        return twiml.connect_stream(
            self.settings.ws_url("/twilio/stream"),
            {"from": call.caller, "direction": call.direction, "answered_by": call.answered_by},
        )

    async def shutdown(self) -> None:
        self.closing = True
        for call in list(self.active.values()):
            if call.bridge is not None:
                call.bridge.stop("serve is shutting down")
        tasks = [c.task for c in self.active.values() if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.rest is not None:
            await self.rest.close()


CALLS = web.AppKey("twilio_calls", TwilioCalls)


def _xml(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/xml")


def _forbidden(request: web.Request, why: str) -> web.Response:
    net_log.warning(
        "%s %s from %s refused (403): %s", request.method, request.path, request.remote, why
    )
    return web.Response(text="forbidden", status=403)


async def signed_form(
    request: web.Request, settings: TwilioSettings, validator: Validator
) -> dict[str, str] | web.Response:
    """The POST parameters of a request Twilio signed (checked against ``settings``'
    public URL), or the refusal to answer: serve's Twilio routes and the fleet front door's."""
    from .app import SETTINGS, log_slow_body

    timeout = request.app[SETTINGS].read_timeout_s
    try:
        form = await asyncio.wait_for(request.post(), timeout)
    except ValueError:  # (aiohttp: a body it cannot parse)
        return web.Response(text="bad form body", status=400)
    except TimeoutError:
        log_slow_body(request, timeout)
        response = web.Response(text="request body too slow", status=408)
        response.force_close()
        return response
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    url = settings.http_url(request.path_qs)
    if not validator.valid(url, params, request.headers.get("X-Twilio-Signature")):
        return _forbidden(request, "missing or wrong X-Twilio-Signature")
    if not params.get("CallSid"):
        return web.Response(text="CallSid missing", status=400)
    return params


async def _signed_form(request: web.Request) -> dict[str, str] | web.Response:
    calls = request.app[CALLS]
    return await signed_form(request, calls.settings, calls.validator)


async def voice(request: web.Request) -> web.Response:
    """Twilio's voice webhook: connect the call to our stream (or refuse politely)."""
    calls = request.app[CALLS]
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    sid = params["CallSid"]
    known = calls.pending.get(sid) or calls.active.get(sid)
    if known is not None:  # Twilio retried: the same answer, never a second bot
        log.info("call %s: webhook retried; answered again, nothing new started", sid)
        return _xml(calls.stream_twiml(known))
    if sid in calls.finished:
        log.warning("call %s: webhook for a call already finished; hanging up", sid)
        return _xml(twiml.hang_up())
    direction = params.get("Direction", "")
    outbound = direction.startswith("outbound")
    caller = params.get("To" if outbound else "From", "")
    if calls.closing or calls.busy >= calls.max_calls:
        log.warning(
            "call %s from %s refused: %d of %d calls running",
            sid,
            caller or "?",
            calls.busy,
            calls.max_calls,
        )
        return _xml(twiml.busy())
    call = TwilioCall(sid, caller, direction, params.get("AnsweredBy", ""))
    early = calls.early.pop(sid, None)
    if early is not None:
        call.statuses = early.statuses
    calls.pending[sid] = call
    log.info(
        "call %s %s %s: connecting its stream", sid, "to" if outbound else "from", caller or "?"
    )
    return _xml(calls.stream_twiml(call))


async def status(request: web.Request) -> web.Response:
    """A call status callback: shown to the running call and in its summary."""
    calls = request.app[CALLS]
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    sid, state = params["CallSid"], params.get("CallStatus", "")
    answered_by = params.get("AnsweredBy", "")
    log.info(
        "call %s: %s%s", sid, state or "?", f" (answered by {answered_by})" if answered_by else ""
    )
    call = calls.active.get(sid) or calls.pending.get(sid) or calls.finished.get(sid)
    if call is None:  # an outbound call not answered (yet): remember what happened
        call = calls.early.get(sid)
        if call is None:
            call = calls.early[sid] = TwilioCall(
                sid, params.get("To", ""), params.get("Direction", "")
            )
            while len(calls.early) > RECENT:
                calls.early.popitem(last=False)
        call.statuses.append(state)
        if state in FINAL:  # never answered (busy, no-answer, failed, canceled): its summary
            calls._finish(calls.early.pop(sid))
            log.info(
                "call %s to %s ended before it was answered: %s; statuses: %s",
                sid,
                call.caller or "?",
                state,
                ", ".join(call.statuses),
            )
        return web.Response(status=204)
    call.statuses.append(state)
    if call.transport is not None:
        call.transport.call_status(state, answered_by)
    elif state in FINAL and sid in calls.pending:
        calls._finish(calls.pending.pop(sid))
    return web.Response(status=204)


async def stream(request: web.Request) -> web.StreamResponse:
    """The Media Streams WebSocket of one call."""
    calls = request.app[CALLS]
    url = calls.settings.ws_url(request.path_qs)
    if not calls.validator.valid(url, {}, request.headers.get("X-Twilio-Signature")):
        return _forbidden(request, "stream without a valid X-Twilio-Signature")
    # Frames up to the hard limit (far above the protocol's) are read and refused one by one
    # (logged, counted, the call goes on); only beyond it does the socket itself close (1009).
    ws = web.WebSocketResponse(max_msg_size=m.MAX_FRAME_BYTES, autoping=True)
    await ws.prepare(request)
    try:
        start = await asyncio.wait_for(_read_start(ws), START_TIMEOUT_S)
    except TimeoutError:
        start = None
    call = None if start is None else calls.pending.pop(start.call_sid, None)
    if start is None or call is None:
        calls.refused_streams += 1
        if start is None:
            why = "no start message"
        elif start.call_sid in calls.active:
            why = "its call already has a stream"
        elif start.call_sid in calls.finished:
            why = "its call has finished"
        else:
            why = "no webhook announced its call"
        sid = start.call_sid if start is not None else "?"
        log.warning("media stream for call %s closed: %s", sid, why)
        await ws.close(code=1008, message=b"unknown call")
        return ws
    if (start.encoding, start.sample_rate, start.channels) != ("audio/x-mulaw", 8000, 1):
        log.warning(
            "media stream for call %s closed: unsupported media format %s/%d Hz/%d channels",
            call.sid,
            start.encoding[:40],
            start.sample_rate,
            start.channels,
        )
        calls._finish(call)
        await ws.close(code=1003, message=b"unsupported media format")
        return ws
    calls.active[call.sid] = call
    call.started.set()
    try:
        await _run_call(calls, call, start, ws)
    finally:
        calls.active.pop(call.sid, None)
        calls._finish(call)
        if not ws.closed:
            await ws.close()
    return ws


async def _read_start(ws: web.WebSocketResponse) -> m.Start | None:
    bad = 0
    async for msg in ws:
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            break
        parsed = m.parse(msg.data)
        if isinstance(parsed, m.Start):
            return parsed
        if not isinstance(parsed, m.Connected):
            bad += 1
            if bad <= 5:
                log.warning("media stream: %s before start (ignored)", _what(parsed))
    return None


def _what(msg: m.Message) -> str:
    return msg.reason if isinstance(msg, m.BadMessage) else type(msg).__name__.lower()


async def _run_call(
    calls: TwilioCalls, call: TwilioCall, start: m.Start, ws: web.WebSocketResponse
) -> None:
    from botrun.bots.runner import action_lines, bot_tools
    from botrun.core.bridge import Bridge
    from botrun.core.errors import BotrunError
    from botrun.core.plugins import get_plugin_manager
    from botrun.transports.twilio.transport import TwilioTransport

    pm = get_plugin_manager()

    def plugin_observer(event: Any) -> None:
        pm.hook.botrun_observe(event=event)

    transport = TwilioTransport(start, rest=calls.rest, passthrough=not calls.transcode)
    transport.caller = transport.caller or call.caller
    call.transport = transport
    try:
        tools = bot_tools(calls.config)
    except BotrunError as exc:  # (checked at start; a tool module may have changed since)
        log.error("call %s not started: %s", call.sid, exc)
        return
    bridge = call.bridge = Bridge(
        transport,
        calls.config,
        api_key=calls.api_key,
        tools=tools,
        observers=[plugin_observer],
        hooks=calls.hooks,
    )
    call.task = asyncio.current_task()
    run = asyncio.create_task(bridge.run())
    writer = asyncio.create_task(_write(transport, ws))
    cancelled = False
    try:
        try:  # no audio before the bridge listens
            await asyncio.wait_for(transport.joined.wait(), JOIN_TIMEOUT_S)
        except TimeoutError:
            bridge.stop(f"the call did not start within {JOIN_TIMEOUT_S:.0f} s")
        else:
            why = "the stream closed"
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    transport.feed(msg.data)
                else:
                    if msg.type == WSMsgType.ERROR:
                        why = _stream_error(ws.exception())
                        log.warning("call %s: %s", call.sid, why)
                    break
            transport.stream_closed(why)
    except asyncio.CancelledError:
        cancelled = True
        bridge.stop("serve is shutting down")
    try:
        summary = await run
    except Exception:
        log.exception("call %s: the bridge failed", call.sid)
        return
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    st = transport.stats
    log.info(
        "call %s ended: %s; statuses: %s; bot audio sent %.1f s, heard %.1f s, cleared %.1f s "
        "(%d clears, stale audio after each at most %s ms, from the marks); %d bad messages; %s",
        call.sid,
        summary.reason or "done",
        ", ".join(call.statuses) or "none",
        st.sent_ms / 1000,
        st.heard_ms / 1000,
        st.cleared_ms / 1000,
        st.clears,
        f"{max(st.clear_ms):.0f}" if st.clear_ms else "n/a",
        st.bad_messages,
        "; ".join([summary.metrics.summary().replace("\n", "; "), *action_lines(summary.actions)]),
    )
    if cancelled:  # (after the call's line: a cancelled handler still reports its call)
        raise asyncio.CancelledError


def _stream_error(exc: BaseException | None) -> str:
    """Why the stream's socket failed, in words."""
    if getattr(exc, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
        return (
            f"the stream closed (1009): a frame over the hard limit of {m.MAX_FRAME_BYTES} "
            f"bytes ({exc})"
        )
    return f"the stream closed: connection error: {exc}"


async def _write(transport: TwilioTransport, ws: web.WebSocketResponse) -> None:
    try:
        async for frame in transport.outgoing():
            await ws.send_str(frame)
    except (ConnectionError, RuntimeError):
        pass  # the socket went away: the reader sees it and ends the call
    with contextlib.suppress(Exception):
        await ws.close()


def install(app: web.Application, calls: TwilioCalls) -> None:
    """Add the Twilio routes to serve's app (they check signatures themselves)."""
    from botrun.core.plugins import get_backend

    app[CALLS] = calls
    backend = get_backend(calls.config.agent.backend)
    passthrough = backend.phone_audio and not calls.transcode
    log.info(
        "Twilio calls on: voice webhook %s, at most %d at once, audio %s",
        calls.settings.http_url("/twilio/voice"),
        calls.max_calls,
        "μ-law passed through" if passthrough else f"transcoded for {backend.name}",
    )
    app.router.add_post("/twilio/voice", voice)
    app.router.add_post("/twilio/status", status)
    app.router.add_get("/twilio/stream", stream)

    async def shutdown(app: web.Application) -> None:
        await calls.shutdown()

    app.on_shutdown.append(shutdown)
