"""A fake Twilio on loopback: the REST API for calls, signed webhooks, and Media Streams.

* REST (``/2010-04-01/Accounts/{sid}/Calls.json`` and ``Calls/{sid}.json``, HTTP Basic auth
  with the test credentials; Twilio-shaped JSON errors): records every create and update.
  A created call is "dialled": signed status callbacks (initiated, ringing, then answered /
  busy / no-answer / failed, by the number called), the signed voice webhook at its ``url``
  (``Direction=outbound-api``, ``AnsweredBy`` with machine detection), its TwiML followed to
  the Media Streams WebSocket, and ``completed`` when the call ends. ``update(status=
  "completed")`` hangs up (the stream gets ``stop``); ``update(twiml=...)`` redirects (the
  stream stops; the new TwiML is recorded).
* Inbound calls: :meth:`FakeTwilio.incoming_call` posts the signed voice webhook and opens
  the stream the TwiML names.
* :class:`MediaStream`: Twilio's side of a stream. It sends ``connected``/``start``, plays
  μ-law in real time (20 ms ``media`` messages), and plays what it receives on a real-time
  clock: a ``mark`` is sent back when the audio queued before it has played, and ``clear``
  drops what is queued and sends the pending marks back at once, as Twilio does.

Signatures are computed with the official package's ``RequestValidator``, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-twilio-auth-token-0123456789"
FROM_NUMBER = "+15550001111"
BUSY = "+15550000486"
NO_ANSWER = "+15550000408"
FAILED = "+15550000500"


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, params))


@dataclass
class Played:
    at: float
    data: bytes


class MediaStream:
    """Twilio's end of one Media Streams WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, call_sid: str) -> None:
        self.ws = ws
        self.call_sid = call_sid
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.received = bytearray()  # every media payload from the bot
        self.played: list[Played] = []  # what the caller heard, when
        self.cleared_bytes = 0
        self.clears: list[float] = []
        self.marks_back: list[tuple[str, float, bool]] = []  # name, when, cleared
        self.unexpected: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._queue: deque[tuple[str, Any, float]] = deque()  # kind, data, due
        self._play_end = 0.0
        self._seq = 0
        self._reader = asyncio.ensure_future(self._read())
        self._player = asyncio.ensure_future(self._play())

    async def _send(self, event: dict[str, Any]) -> None:
        self._seq += 1
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(
                json.dumps(
                    {"sequenceNumber": str(self._seq), "streamSid": self.stream_sid, **event}
                )
            )

    async def send_raw(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    async def begin(
        self, parameters: dict[str, str], media_format: dict[str, Any] | None = None
    ) -> None:
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "start": {
                    "accountSid": ACCOUNT_SID,
                    "callSid": self.call_sid,
                    "streamSid": self.stream_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": media_format
                    or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": parameters,
                },
            }
        )

    async def speak(self, ulaw: bytes) -> None:
        """Send ``ulaw`` as the caller's voice, 20 ms per message, in real time."""
        t0 = time.monotonic()
        for i, start in enumerate(range(0, len(ulaw), 160)):
            chunk = ulaw[start : start + 160]
            payload = base64.b64encode(chunk).decode()
            await self._send(
                {
                    "event": "media",
                    "media": {
                        "track": "inbound",
                        "chunk": str(i + 1),
                        "timestamp": str(i * 20),
                        "payload": payload,
                    },
                }
            )
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))

    async def dtmf(self, digit: str) -> None:
        await self._send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

    async def stop(self) -> None:
        await self._send(
            {"event": "stop", "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}}
        )
        await self.ws.close()

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                ev = json.loads(msg.data)
                now = time.monotonic()
                kind = ev.get("event")
                if kind == "media":
                    data = base64.b64decode(ev["media"]["payload"])
                    self.received += data
                    start = max(now, self._play_end)
                    self._play_end = start + len(data) / 8000
                    self._queue.append(("media", data, self._play_end))
                elif kind == "mark":
                    self._queue.append(("mark", ev["mark"]["name"], max(now, self._play_end)))
                elif kind == "clear":
                    self.clears.append(now)
                    for k, data, _due in self._queue:
                        if k == "media":
                            self.cleared_bytes += len(data)
                        else:
                            await self._mark(data, cleared=True)
                    self._queue.clear()
                    self._play_end = now
                else:
                    self.unexpected.append(ev)
        finally:
            self.closed.set()
            self._player.cancel()

    async def _mark(self, name: str, cleared: bool) -> None:
        self.marks_back.append((name, time.monotonic(), cleared))
        await self._send({"event": "mark", "mark": {"name": name}})

    async def _play(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            while self._queue and self._queue[0][2] <= now:
                kind, data, due = self._queue.popleft()
                if kind == "media":
                    self.played.append(Played(due, data))
                else:
                    await self._mark(data, cleared=False)

    def heard(self) -> bytes:
        return b"".join(p.data for p in self.played)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.closed.wait()


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    direction: str
    status: str = "queued"
    params: dict[str, str] = field(default_factory=dict)  # the create request
    twiml: str = ""  # the TwiML the voice webhook answered
    updates: list[dict[str, str]] = field(default_factory=list)
    stream: MediaStream | None = None
    streamed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    callbacks: list[tuple[str, int]] = field(default_factory=list)  # status posted, answer


#: What the test does once an outbound call's stream is open (the callee speaks, ...).
OnAnswer = Callable[[FakeCall], Awaitable[None]]


class FakeTwilio:
    def __init__(self, public_url: str, *, answered_by: str = "human") -> None:
        self.public_url = public_url.rstrip("/")
        self.answered_by = answered_by
        self.calls: dict[str, FakeCall] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.on_answer: OnAnswer | None = None
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.api_url = ""

    async def __aenter__(self) -> FakeTwilio:
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}/Calls"
        app.router.add_post(base + ".json", self._create)
        app.router.add_post(base + "/{sid}.json", self._update)
        app.router.add_get(base + "/{sid}.json", self._fetch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in list(self._tasks):
            t.cancel()
        for call in self.calls.values():
            if call.stream is not None:
                await call.stream.close()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- webhooks to serve ------------------------------------------------------------------
    async def post(
        self, url: str, params: dict[str, str], signature: str | None = ""
    ) -> tuple[int, str]:
        """POST a form to ``url``, signed (``signature=""``: the right one)."""
        assert self._http is not None
        headers = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature or sign(url, params)
        async with self._http.post(url, data=params, headers=headers) as r:
            return r.status, await r.text()

    async def open_stream(
        self,
        call: FakeCall,
        twiml: str,
        signature: str | None = "",
        media_format: dict[str, Any] | None = None,
    ) -> MediaStream:
        """Follow ``<Connect><Stream>`` in ``twiml``: open the WebSocket, send start."""
        assert self._http is not None
        stream_el = ET.fromstring(twiml).find("./Connect/Stream")
        assert stream_el is not None, twiml
        url = stream_el.attrib["url"]
        params = {p.attrib["name"]: p.attrib["value"] for p in stream_el.findall("Parameter")}
        headers = {}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature or sign(url, {})
        ws = await self._http.ws_connect(url, headers=headers)
        stream = MediaStream(ws, call.sid)
        call.stream = stream
        await stream.begin(params, media_format)
        call.streamed.set()
        return stream

    async def incoming_call(
        self, from_: str = "+15557654321", to: str = FROM_NUMBER, sid: str | None = None
    ) -> tuple[FakeCall, int, str]:
        """A caller dials our number: the signed voice webhook; returns the call, the answer's
        HTTP status and its TwiML."""
        call = FakeCall(sid or "CA" + uuid.uuid4().hex, to, from_, "inbound", "ringing")
        self.calls[call.sid] = call
        status, body = await self.post(self.public_url + "/twilio/voice", self._voice_params(call))
        call.twiml = body
        return call, status, body

    def _voice_params(self, call: FakeCall) -> dict[str, str]:
        params = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.sid,
            "From": call.from_,
            "To": call.to,
            "CallStatus": call.status,
            "Direction": call.direction,
            "ApiVersion": "2010-04-01",
        }
        if call.params.get("MachineDetection"):
            params["AnsweredBy"] = self.answered_by
        return params

    async def post_status(self, call: FakeCall, status: str) -> None:
        """Post a status callback now (e.g. ``completed`` while the stream is still open)."""
        await self._status(call, status)

    async def _status(self, call: FakeCall, status: str) -> None:
        call.status = status
        url = call.params.get("StatusCallback")
        if not url:
            return
        params = {**self._voice_params(call), "CallStatus": status}
        code, _ = await self.post(url, params)
        call.callbacks.append((status, code))

    # -- REST ---------------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> web.Response | None:
        auth = aiohttp.BasicAuth.decode(request.headers.get("Authorization", "Basic Og=="))
        if (auth.login, auth.password) != (ACCOUNT_SID, AUTH_TOKEN) or (
            request.match_info["account"] != ACCOUNT_SID
        ):
            return self._error(401, 20003, "Authenticate")
        return None

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return web.json_response(body, status=status)

    def _json(self, call: FakeCall, status: int = 200) -> web.Response:
        return web.json_response(
            {
                "sid": call.sid,
                "account_sid": ACCOUNT_SID,
                "to": call.to,
                "from": call.from_,
                "status": call.status,
                "direction": call.direction,
                "answered_by": self.answered_by if call.params.get("MachineDetection") else None,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.sid}.json",
            },
            status=status,
        )

    async def _create(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(("create", "", form))
        if not form.get("To", "").startswith("+"):
            return self._error(
                400, 21211, f"The 'To' number {form.get('To')} is not a valid phone number."
            )
        call = FakeCall("CA" + uuid.uuid4().hex, form["To"], form.get("From", ""), "outbound-api")
        call.params = form
        self.calls[call.sid] = call
        self._spawn(self._dial(call))
        return self._json(call, 201)

    async def _dial(self, call: FakeCall) -> None:
        await self._status(call, "initiated")
        await self._status(call, "ringing")
        outcome = {BUSY: "busy", NO_ANSWER: "no-answer", FAILED: "failed"}.get(call.to)
        if outcome is not None:
            await self._status(call, outcome)
            call.ended.set()
            return
        call.status = "in-progress"
        code, twiml = await self.post(call.params["Url"], self._voice_params(call))
        call.twiml = twiml
        await self._status(call, "in-progress")
        if code != 200 or "<Stream" not in twiml:
            await self._status(call, "completed")
            call.ended.set()
            return
        stream = await self.open_stream(call, twiml)
        if self.on_answer is not None:
            self._spawn(self.on_answer(call))
        await stream.closed.wait()
        if call.status != "completed":
            await self._status(call, "completed")
        call.ended.set()

    async def _update(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        sid = request.match_info["sid"]
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append(("update", sid, form))
        call = self.calls.get(sid)
        if call is None:
            return self._error(404, 20404, f"The requested resource {request.path} was not found")
        call.updates.append(form)
        if form.get("Status") == "completed" or form.get("Twiml"):
            if form.get("Status") == "completed":
                call.status = "completed"
            if call.stream is not None:
                self._spawn(self._end_stream(call))
        return self._json(call)

    async def _end_stream(self, call: FakeCall) -> None:
        assert call.stream is not None
        with contextlib.suppress(Exception):
            await call.stream.stop()
        if call.status == "completed":
            await self._status(call, "completed")
        call.ended.set()

    async def _fetch(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return self._error(404, 20404, f"The requested resource {request.path} was not found")
        return self._json(call)
