"""One client socket: parses and validates client messages, applies the protocol rules, feeds
the speech detector, and hands turns to the simulated agent (``agent.py``).

Every bad input is answered with the documented ``session.error`` and the socket stays open
(except where the protocol closes it); nothing a client sends can raise out of :meth:`run`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from websockets.exceptions import ConnectionClosed

from ..backends.mismatch import client_protocol, close_reason
from . import codec
from .agent import Agent
from .config import UpdateError, apply_update, input_format
from .faults import CLOSE_NORMAL, CLOSE_POLICY, junk_frame
from .session import SimSession, new_id
from .vad import SpeechStarted, SpeechStopped, TurnEnded, VadEvent
from .wire import WireSocket

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from .server import Simulator

log = logging.getLogger("botrun.sim")

#: Largest client message handled; bigger ones get ``invalid_format`` (the socket's own limit,
#: above this, closes with 1009).
MAX_MESSAGE_BYTES = 1024 * 1024
CLIENT_TYPES = (
    "session.update",
    "input.audio",
    "tool.result",
    "session.resume",
    "reply.create",
    "session.end",
)
IDLE_CHECK_S = 0.1  # wall-clock audio gap checks while a turn is open (divided by speed)


def now_iso() -> str:
    """The protocol's ``timestamp``: ISO 8601 UTC with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Connection:
    """Protocol handling for one WebSocket. ``session`` is None until ``session.update`` or a
    successful ``session.resume``."""

    def __init__(self, sim: Simulator, ws: ServerConnection, max_duration_s: float = 0.0) -> None:
        self.sim = sim
        self.ws = ws
        self.scenario = sim.scenario
        self.session: SimSession | None = None
        self.agent = Agent(self)
        self.closed = False
        self._token_max_duration = max_duration_s
        self._first = True
        #: Speaking the Voice Agent API directly (no adapter): checks the first message's protocol.
        self._raw = not isinstance(ws, WireSocket)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_audio = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None
        self._item_id: str | None = None
        self._deltas_sent = 0

    # ---- sending -------------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event and record its type. A closed socket is not an error here."""
        if self.closed:
            return
        if self.session is not None:
            self.session.sent.append(event["type"])
        try:
            await self.ws.send(json.dumps(event))
        except ConnectionClosed:
            self.closed = True

    async def send_raw(self, frame: str | bytes) -> None:
        if self.closed:
            return
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            self.closed = True

    async def error(self, code: str, message: str, param: str | None = None) -> None:
        event: dict[str, Any] = {
            "type": "session.error",
            "code": code,
            "message": message,
            "timestamp": now_iso(),
        }
        if param is not None:
            event["param"] = param
        if self.session is not None:
            self.session.errors.append({"code": code, "message": message, "param": param})
        else:
            self.sim.connection_errors.append({"code": code, "message": message, "param": param})
        log.info("session.error %s: %s", code, message)
        await self.send(event)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.closed = True
        transport = getattr(self.ws, "transport", None)
        if transport is not None:
            transport.abort()

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- main loop -----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async for message in self.ws:
                await self._handle_frame(message)
                if self.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            await self._detach()

    async def _detach(self) -> None:
        self.closed = True
        await self.agent.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._idle_task is not None:
            self._idle_task.cancel()
        s = self.session
        if s is not None and s.connection is self:
            s.connection = None
            s.detached_at = time.monotonic()
            self.sim.session_detached(s)

    async def _handle_frame(self, message: str | bytes) -> None:
        s = self.session
        if isinstance(message, bytes):
            if s is not None:
                s.events.append("<binary>")
            await self.error("invalid_format", "binary frames are not supported: send JSON text")
            return
        if len(message) > MAX_MESSAGE_BYTES:
            if s is not None:
                s.events.append("<oversized>")
            await self.error(
                "invalid_format", f"message of {len(message)} bytes exceeds {MAX_MESSAGE_BYTES}"
            )
            return
        try:
            event = json.loads(message)
        except (ValueError, RecursionError):  # JSONDecodeError, or an absurdly long integer
            if s is not None:
                s.events.append("<malformed>")
            await self.error("invalid_format", "message is not valid JSON")
            return
        if self._first and self._raw and isinstance(event, dict):
            theirs = client_protocol(event)
            if theirs is not None and theirs != "assemblyai":
                await self._refuse_foreign(theirs)
                return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            if s is not None:
                s.events.append("<untyped>")
            await self.error(
                "invalid_format", "message must be a JSON object with a 'type'", "type"
            )
            return
        kind = event["type"]
        if s is not None:
            s.events.append(kind)
        first, self._first = self._first, False
        if kind not in CLIENT_TYPES:
            await self.error("invalid_format", f"unknown event type {kind!r}", "type")
            return
        if self.session is None:
            if kind == "session.resume" and first:
                await self._resume(event)
            elif kind == "session.update":
                await self._first_update(event)
            elif kind == "session.end":
                await self._end(None)
            elif kind == "session.resume":
                await self.error(
                    "invalid_format", "session.resume must be the first message on a socket", "type"
                )
            else:
                await self.error(
                    "invalid_format",
                    "session.update must be the first message of a session",
                    "type",
                )
            return
        handler = {
            "session.update": self._update,
            "input.audio": self._audio,
            "tool.result": self._tool_result,
            "reply.create": self._reply_create,
            "session.end": self._end,
            "session.resume": self._late_resume,
        }[kind]
        await handler(event)

    async def _refuse_foreign(self, theirs: str) -> None:
        """The first message is another protocol's (a client of another backend): one log
        line, an error naming the protocol spoken here, and a policy close saying so."""
        reason = close_reason("assemblyai", theirs)
        log.warning("%s client connected to the assemblyai simulator: closing (%s)", theirs, reason)
        await self.error("invalid_format", reason, "type")
        await self.close(CLOSE_POLICY, reason)

    # ---- session lifecycle -------------------------------------------------------------
    async def _first_update(self, event: dict[str, Any]) -> None:
        s = SimSession(session_id=new_id("sess"), scenario=self.scenario)
        s.events.append("session.update")
        try:
            result = apply_update(
                s.config, event.get("session", {}), ready=False, voices=self.scenario.session.voices
            )
        except UpdateError as exc:
            await self.error(exc.code, exc.message, exc.param)
            return
        s.config = result.config
        s.ignored_keys.extend(result.ignored)
        s.connections = 1
        s.max_duration_s = self._token_max_duration or self.scenario.session.max_duration_s
        s.connection = self
        self.session = s
        self.sim.register_session(s)
        s.make_vad()
        self._warn_rate(s)
        self.spawn(self._become_ready(s, fresh=True))

    def _warn_rate(self, s: SimSession) -> None:
        fmt = input_format(s.config)
        if fmt.encoding == codec.PCM and fmt.sample_rate != codec.DEFAULT_RATE:
            mode = self.scenario.faults.sample_rate
            log.warning(
                "session %s declares %d Hz input: %s",
                s.session_id,
                fmt.sample_rate,
                "honoured"
                if mode == "honour"
                else "the agent will be deaf (as the live service is)",
            )

    async def _become_ready(self, s: SimSession, *, fresh: bool) -> None:
        delay = self.scenario.faults.ready_delay_s
        if delay and fresh:
            await asyncio.sleep(delay)
        if self.closed:
            return
        s.ready = True
        if s.ready_at is None:
            s.ready_at = time.monotonic()
        ready: dict[str, Any] = {"type": "session.ready", "session_id": s.session_id}
        updated: dict[str, Any] = {"type": "session.updated", "config": s.config}
        order = (
            [ready, updated]
            if self.scenario.session.ready_order == "ready-first"
            else [updated, ready]
        )
        for ev in order if fresh else [ready]:
            await self.send(ev)
        faults = self.scenario.faults
        if faults.inject and faults.inject_at_reply_audio == 0 and s.fire_once("inject"):
            await self.inject_junk()
        if faults.drop_after_s and "drop_after" not in s.fired:
            self.spawn(self._drop_after(s, faults.drop_after_s))
        if s.max_duration_s:
            self.spawn(self._expire(s))
        if fresh:
            if s.config["greeting"]:
                self.agent.enqueue_greeting(s.config["greeting"])
        else:
            await self.agent.resend_pending()

    async def _drop_after(self, s: SimSession, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.closed and s.fire_once("drop_after"):
            log.info("fault: dropping session %s after %.2f s", s.session_id, delay)
            self.abort()

    async def _expire(self, s: SimSession) -> None:
        assert s.ready_at is not None
        await asyncio.sleep(max(0.0, s.ready_at + s.max_duration_s - time.monotonic()))
        if self.closed or s.ended:
            return
        await self.error(
            "session_expired", f"session reached its maximum duration of {s.max_duration_s:g} s"
        )
        s.ended = True
        self.sim.session_ended(s)
        await self.close(CLOSE_NORMAL, "session expired")

    async def inject_junk(self) -> None:
        faults = self.scenario.faults
        for kind in faults.inject:
            log.info("fault: sending %s", kind)
            await self.send_raw(junk_frame(kind, faults.oversized_bytes))

    async def _resume(self, event: dict[str, Any]) -> None:
        sid = event.get("session_id")
        faults = self.scenario.faults
        s = self.sim.sessions.get(sid) if isinstance(sid, str) else None
        code = None
        if faults.refuse_resume or s is None:
            code = "session_not_found"
        elif s.ended:
            code = "session_forbidden"
        elif not s.resumable(self.sim.resume_window_s):
            code = "session_not_found"
        if code is not None:
            self._first = True  # the client may now start fresh with session.update
            await self.error(code, f"cannot resume session {sid!r}", "session_id")
            if faults.session_not_found == "close":
                await self.close(CLOSE_POLICY, code)
            return
        assert s is not None
        old = s.connection
        if old is not None and old is not self:
            old.abort()  # the client moved to this socket; the old one is dead to it
            await old.agent.stop()
        s.connection = self
        s.detached_at = None
        s.connections += 1
        s.events.append("session.resume")
        self.session = s
        await self._become_ready(s, fresh=False)

    async def _late_resume(self, event: dict[str, Any]) -> None:
        await self.error(
            "invalid_format", "session.resume must be the first message on a socket", "type"
        )

    async def _end(self, event: dict[str, Any] | None) -> None:
        s = self.session
        ended = {
            "type": "session.ended",
            "timestamp": now_iso(),
            "session_duration_seconds": round(s.duration_s(), 3) if s else 0.0,
            "audio_duration_seconds": round(s.audio_duration_s(), 3) if s else 0.0,
        }
        await self.agent.stop()
        await self.send(ended)
        if s is not None:
            s.ended = True
            self.sim.session_ended(s)
        await self.close(CLOSE_NORMAL, "session ended")

    async def _update(self, event: dict[str, Any]) -> None:
        s = self.session
        assert s is not None
        if not s.ready:
            await self.error(
                "invalid_format", "wait for session.ready before updating again", "type"
            )
            return
        try:
            result = apply_update(
                s.config, event.get("session", {}), ready=True, voices=self.scenario.session.voices
            )
        except UpdateError as exc:
            await self.error(exc.code, exc.message, exc.param)
            return
        old_fmt = input_format(s.config)
        s.config = result.config
        s.ignored_keys.extend(result.ignored)
        if input_format(s.config) != old_fmt:
            s.make_vad()
            self._warn_rate(s)
        elif s.vad is not None:
            td = s.config["input"]["turn_detection"]
            s.vad.configure(td["vad_threshold"], td["min_silence"], td["max_silence"])
        await self.send({"type": "session.updated", "config": s.config})

    # ---- audio and turns ---------------------------------------------------------------
    async def _audio(self, event: dict[str, Any]) -> None:
        s = self.session
        assert s is not None
        if not s.ready:
            await self.error("invalid_format", "input.audio before session.ready", "type")
            return
        data = event.get("audio")
        if not isinstance(data, str):
            s.bad_audio_chunks += 1
            await self.error(
                "invalid_audio", "input.audio needs 'audio' as a base64 string", "audio"
            )
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            s.bad_audio_chunks += 1
            await self.error("invalid_audio", "audio is not valid base64", "audio")
            return
        fmt = input_format(s.config)
        if fmt.encoding == codec.PCM and len(raw) % 2:
            s.bad_audio_chunks += 1
            await self.error(
                "invalid_audio",
                f"PCM16 audio must have an even number of bytes, got {len(raw)}",
                "audio",
            )
            return
        samples = codec.decode(raw, fmt.encoding)
        s.received_audio_buf.extend(samples.astype("<i2").tobytes())
        s.received_samples += len(samples)
        self._last_audio = time.monotonic()
        deaf = (
            fmt.encoding == codec.PCM
            and fmt.sample_rate != codec.DEFAULT_RATE
            and self.scenario.faults.sample_rate == "deaf"
        )
        if s.vad is not None and not deaf:
            await self._vad_events(s, s.vad.feed(samples))

    async def _vad_events(self, s: SimSession, events: list[VadEvent]) -> None:
        assert s.vad is not None
        rate = s.vad.rate
        for ev in events:
            if isinstance(ev, SpeechStarted):
                if self._item_id is None:
                    self._start_turn(s)
                await self.send(
                    {
                        "type": "input.speech.started",
                        "timestamp": now_iso(),
                        "audio_start_ms": ev.at * 1000 // rate,
                    }
                )
                td = s.config["input"]["turn_detection"]
                if td["interrupt_response"]:
                    await self.agent.barge_in()
            elif isinstance(ev, SpeechStopped):
                await self.send(
                    {
                        "type": "input.speech.stopped",
                        "timestamp": now_iso(),
                        "audio_end_ms": ev.at * 1000 // rate,
                    }
                )
            elif isinstance(ev, TurnEnded):
                await self._end_turn(s, ev)
        if self._item_id is not None and s.vad.in_turn:
            await self._partial(s)

    def _start_turn(self, s: SimSession) -> None:
        assert s.vad is not None
        self._item_id = new_id("item")
        self._deltas_sent = 0
        turn = self.scenario.turn(s.turn_count)
        s.vad.expect_complete = turn.complete if turn is not None else True
        if self._idle_task is None or self._idle_task.done():
            self._idle_task = asyncio.ensure_future(self._idle_watch(s))

    def _user_text(self, s: SimSession, n_samples: int, final: bool) -> str:
        turn = self.scenario.turn(s.turn_count)
        assert s.vad is not None
        secs = n_samples / s.vad.rate
        if turn is not None and turn.user is not None:
            words = turn.user.split()
            if final:
                return turn.user
            return " ".join(words[: max(1, min(len(words) - 1, self._deltas_sent + 1))])
        return f"[user speech {secs:.2f} s]" if final else f"[user speech {secs:.1f} s...]"

    async def _partial(self, s: SimSession) -> None:
        assert s.vad is not None
        every = self.scenario.vad.delta_every_ms * s.vad.rate // 1000
        if s.vad.speech_samples >= every * (self._deltas_sent + 1):
            text = self._user_text(s, s.vad.speech_samples, final=False)
            self._deltas_sent += 1
            await self.send(
                {"type": "transcript.user.delta", "text": text, "item_id": self._item_id}
            )

    async def _end_turn(self, s: SimSession, ev: TurnEnded) -> None:
        start, end = s.vad_base + ev.start, s.vad_base + ev.end
        s.utterances.append((start, end))
        text = self._user_text(s, ev.end - ev.start, final=True)
        s.user_transcripts.append(text)
        item_id, self._item_id = self._item_id or new_id("item"), None
        turn = self.scenario.turn(s.turn_count)
        s.turn_count += 1
        samples = np.frombuffer(bytes(s.received_audio_buf[start * 2 : end * 2]), dtype="<i2")
        await self.agent.user_turn(item_id, text, samples, s.vad.rate if s.vad else 24000, turn)

    async def _idle_watch(self, s: SimSession) -> None:
        """End a turn on wall-clock silence when the client stops sending audio mid-turn."""
        period = IDLE_CHECK_S / self.sim.speed
        while not self.closed and s.vad is not None and s.vad.in_turn:
            await asyncio.sleep(period)
            gap = time.monotonic() - self._last_audio
            if gap >= period and s.vad.in_turn:
                await self._vad_events(s, s.vad.idle(period * 1000 * self.sim.speed))

    # ---- tools and explicit replies ----------------------------------------------------
    async def _tool_result(self, event: dict[str, Any]) -> None:
        s = self.session
        assert s is not None
        call_id = event.get("call_id")
        if not isinstance(call_id, str):
            await self.error("invalid_value", "tool.result needs a 'call_id' string", "call_id")
            return
        s.tool_results.append({"call_id": call_id, "result": event.get("result")})
        result = event.get("result")
        call = s.pending.get(call_id)
        if call is None:
            if any(c.get("call_id") == call_id for c in s.tool_calls):
                s.violations.append(
                    f"tool.result for {call_id} that is no longer pending "
                    "(duplicate, or its reply was interrupted)"
                )
                return
            await self.error("invalid_value", f"unknown call_id {call_id!r}", "call_id")
            return
        if not isinstance(result, str):
            s.violations.append(
                f"tool.result for {call_id}: result is not a JSON string "
                "(silently ignored, as the service does)"
            )
            return
        if not call.reply_done:
            s.violations.append(f"tool.result for {call_id} sent before reply.done")
        call.result = result
        await self.agent.tool_result_ready(call)

    async def _reply_create(self, event: dict[str, Any]) -> None:
        instructions = event.get("instructions", "")
        if not isinstance(instructions, str):
            await self.error("invalid_value", "instructions must be a string", "instructions")
            return
        self.agent.enqueue_create(instructions)
