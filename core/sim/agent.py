"""The simulated agent of one connection: turns user turns, greetings, ``reply.create`` and tool
results into replies, and plays them in real time (divided by the simulator's speed factor).

Replies run one at a time from a queue. A reply can be interrupted by barge-in (the connection
calls :meth:`Agent.barge_in` on ``input.speech.started``), which sends the trimmed
``transcript.agent``, ``reply.done{status: "interrupted"}`` and then a few stale audio frames,
as the real service does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from botrun.core.errors import ConfigError
from botrun.core.instructions import said_text

from . import codec
from .config import output_format, tool_mode
from .recorder import ReplyRecord
from .replies import ReplyPlan, audio_plan, echo_plan, spoken_text, tone_plan
from .session import PendingCall, new_id

if TYPE_CHECKING:
    from .connection import Connection
    from .scenario import Turn
    from .session import SimSession

log = logging.getLogger("botrun.sim")


def _fill(template: str, **values: str) -> str:
    """Substitute ``{name}`` placeholders without ``str.format`` (client text may hold braces)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def spoken_result(result: str) -> str:
    """A tool result as the agent would say it: a JSON string without its quotes, an error
    object (``{"error": "..."}``) as a sentence; any other result as it came."""
    try:
        value = json.loads(result)
    except ValueError:
        return result
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return f"Sorry, that did not work: {value['error']}"
    return result


@dataclass
class _Held:
    item_id: str
    text: str
    samples: np.ndarray
    rate: int
    turn: Turn | None


class _Playback:
    """A reply being played; ``interrupt()`` wakes the pacing wait at once."""

    def __init__(self) -> None:
        self.interrupted = False
        self.done = asyncio.get_running_loop().create_future()
        self._wake: asyncio.Future[None] | None = None

    def interrupt(self) -> None:
        self.interrupted = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait(self, delay: float) -> None:
        if delay <= 0 or self.interrupted:
            return
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._wake = wake
        handle = loop.call_later(delay, _settle, wake)
        try:
            await wake
        finally:
            handle.cancel()
            self._wake = None


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Agent:
    """Reply queue and player for one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.scenario = conn.scenario
        self._queue: asyncio.Queue[tuple[float, Callable[[], ReplyPlan | None]]] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self.playing: _Playback | None = None
        self.holding = False
        self._held: list[_Held] = []
        self._stopped = False

    @property
    def session(self) -> SimSession:
        assert self.conn.session is not None
        return self.conn.session

    @property
    def speed(self) -> float:
        return self.conn.sim.speed

    # ---- queueing ----------------------------------------------------------------------
    def _enqueue(self, delay_ms: float, build: Callable[[], ReplyPlan | None]) -> None:
        if self._stopped:
            return
        self._queue.put_nowait((delay_ms, build))
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())

    def enqueue_greeting(self, text: str) -> None:
        self._enqueue(0, lambda: self._tone(text))

    def enqueue_create(self, instructions: str) -> None:
        """``reply.create``: words :meth:`CallContext.say` asked for are spoken verbatim;
        other instructions through the scenario's ``reply.reply_create`` template (by
        default the instruction text itself); none: the scenario's default text."""
        r = self.scenario.reply
        said = said_text(instructions) if instructions else None
        if said is not None:
            text = said
        else:
            text = _fill(r.reply_create, instructions=instructions) if instructions else r.text
        self._enqueue(r.delay_ms, lambda: self._tone(text or r.text))

    async def user_turn(
        self, item_id: str, text: str, samples: np.ndarray, rate: int, turn: Turn | None
    ) -> None:
        """A finished user turn: transcribe it (unless a hold-mode tool runs) and reply."""
        self.session.context.append(("user", text))
        if self.holding:
            self._held.append(_Held(item_id, text, samples, rate, turn))
            return
        await self.conn.send({"type": "transcript.user", "text": text, "item_id": item_id})
        self._enqueue(
            self.scenario.reply.delay_ms, lambda: self._turn_plan(text, samples, rate, turn)
        )

    async def _release_held(self) -> None:
        self.holding = False
        held, self._held = self._held, []
        for h in held:
            await self.conn.send({"type": "transcript.user", "text": h.text, "item_id": h.item_id})
            self._enqueue(
                self.scenario.reply.delay_ms,
                partial(self._turn_plan, h.text, h.samples, h.rate, h.turn),
            )

    # ---- plans -------------------------------------------------------------------------
    def _out_rate(self) -> int:
        return output_format(self.session.config).sample_rate

    def _tone(self, text: str) -> ReplyPlan:
        return tone_plan(text, self._out_rate(), self.scenario.reply.ms_per_char)

    def _turn_plan(
        self, text: str, samples: np.ndarray, rate: int, turn: Turn | None
    ) -> ReplyPlan | None:
        r = self.scenario.reply
        out_rate = self._out_rate()
        if turn is not None and turn.tool is not None:
            declared = tool_mode(self.session.config, turn.tool.name)
            if declared is None:
                log.warning(
                    "scenario calls tool %r, which the client did not declare: "
                    "speaking the reply instead",
                    turn.tool.name,
                )
                self.session.violations.append(f"scenario tool {turn.tool.name!r} not declared")
            else:
                mode = turn.tool.mode or declared[0]
                said = turn.reply if turn.reply is not None else r.tool_transition
                plan = (
                    self._tone(said)
                    if mode == "interactive"
                    else audio_plan(np.zeros(0, np.int16), out_rate, "", "silence")
                )
                plan.final_transcript = False
                plan.tool_call = {
                    "name": turn.tool.name,
                    "arguments": dict(turn.tool.arguments),
                    "mode": mode,
                    "timeout_s": declared[1],
                    "result_reply": turn.result,
                }
                return plan
        kind = (turn.audio if turn is not None and turn.audio else None) or r.default
        reply_text = turn.reply if turn is not None and turn.reply is not None else None
        if kind == "echo":
            audio = codec.resample_linear(samples, rate, out_rate)
            return echo_plan(audio, out_rate, reply_text if reply_text is not None else text)
        if kind == "wav":
            assert turn is not None
            data, wav_rate = self.scenario.wav_audio(turn)
            return audio_plan(
                codec.resample_linear(data, wav_rate, out_rate), out_rate, reply_text or "", "wav"
            )
        reply_text = reply_text if reply_text is not None else r.text
        if kind == "silence":
            n = max(1, len(reply_text)) * r.ms_per_char * out_rate // 1000
            return audio_plan(np.zeros(n, np.int16), out_rate, reply_text, "silence")
        return self._tone(reply_text)

    # ---- playing -----------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopped:
            delay_ms, build = await self._queue.get()
            if delay_ms:
                await asyncio.sleep(delay_ms / 1000 / self.speed)
            try:
                plan = build()
            except ConfigError as exc:  # a WAV file that went bad after the scenario loaded
                log.error("simulator: cannot build a reply: %s", exc)
                continue
            except Exception:  # a bug must not end the session
                log.exception("simulator: cannot build a reply")
                continue
            if plan is not None and not self.conn.closed:
                await self._play(plan)

    async def _play(self, plan: ReplyPlan) -> None:
        s, conn = self.session, self.conn
        fmt = output_format(s.config)
        rate = fmt.sample_rate
        reply_id = new_id("reply")
        record = ReplyRecord(reply_id, plan.kind, plan.text)
        s.replies.append(record)
        pb = self.playing = _Playback()
        try:
            await conn.send({"type": "reply.started", "reply_id": reply_id})
            call = await self._make_call(plan, reply_id) if plan.tool_call else None
            chunk = max(1, self.scenario.reply.chunk_ms * rate // 1000)
            audio = plan.audio
            n_frames = -(-len(audio) // chunk)
            words = list(plan.words)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            sent_frames = 0
            for i in range(n_frames):
                if pb.interrupted or conn.closed:
                    break
                frame_end_ms = (i + 1) * chunk * 1000 // rate
                while words and words[0].start_ms < frame_end_ms:
                    w = words.pop(0)
                    lead = "" if w is plan.words[0] else " "
                    await conn.send(
                        {
                            "type": "transcript.agent.delta",
                            "reply_id": reply_id,
                            "delta": lead + w.text,
                            "start_ms": w.start_ms,
                            "end_ms": w.end_ms,
                        }
                    )
                pcm = audio[i * chunk : (i + 1) * chunk]
                await self._send_audio(pcm, fmt.encoding)
                record.audio.extend(pcm.astype("<i2").tobytes())
                sent_frames += 1
                if conn.closed:
                    break
                await pb.wait(t0 + (i + 1) * chunk / rate / self.speed - loop.time())
            if conn.closed:
                record.status = "lost"
                return
            if self.scenario.faults.reply_never_done and not pb.interrupted:
                log.info("fault: reply %s never sends reply.done", reply_id)
                record.status = "stuck"
                while not (pb.interrupted or conn.closed):
                    await pb.wait(1.0)
                return
            sent_ms = sent_frames * chunk * 1000 // rate
            if pb.interrupted and sent_frames < n_frames:
                await self._finish_interrupted(
                    plan, record, call, sent_ms, audio[sent_frames * chunk :], chunk, fmt.encoding
                )
            else:
                await self._finish_completed(plan, record, call)
        finally:
            self.playing = None
            if not pb.done.done():
                pb.done.set_result(None)

    async def _send_audio(self, pcm: np.ndarray, encoding: str) -> None:
        s, conn = self.session, self.conn
        data = base64.b64encode(codec.encode(pcm, encoding)).decode("ascii")
        await conn.send({"type": "reply.audio", "data": data})
        s.reply_audio_frames += 1
        faults = self.scenario.faults
        n = s.reply_audio_frames
        if faults.inject and n == faults.inject_at_reply_audio and s.fire_once("inject"):
            await conn.inject_junk()
        if faults.drop_at_reply_audio and n >= faults.drop_at_reply_audio and s.fire_once("drop"):
            log.info("fault: dropping session %s at reply.audio #%d", s.session_id, n)
            conn.abort()

    async def _make_call(self, plan: ReplyPlan, reply_id: str) -> PendingCall:
        assert plan.tool_call is not None
        tc = plan.tool_call
        call = PendingCall(
            new_id("call"), tc["name"], tc["arguments"], tc["mode"], tc["timeout_s"], reply_id
        )
        call.result_reply = tc.get("result_reply")
        self.session.pending[call.call_id] = call
        self.session.tool_calls.append(
            {
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
                "mode": call.mode,
            }
        )
        if call.mode == "hold":
            self.holding = True
        await self.conn.send(call.event())
        return call

    async def _finish_completed(
        self, plan: ReplyPlan, record: ReplyRecord, call: PendingCall | None
    ) -> None:
        conn, s = self.conn, self.session
        if plan.final_transcript:
            await conn.send(
                {
                    "type": "transcript.agent",
                    "reply_id": record.reply_id,
                    "text": plan.text,
                    "interrupted": False,
                }
            )
        await conn.send({"type": "reply.done", "reply_id": record.reply_id, "status": "completed"})
        record.status, record.spoken_text = "completed", plan.text
        if plan.text:
            s.context.append(("agent", plan.text))
        if call is not None:
            call.reply_done = True
            if call.result is not None:
                await self.tool_result_ready(call)
            else:
                conn.spawn(self._tool_timeout(call))

    async def _finish_interrupted(
        self,
        plan: ReplyPlan,
        record: ReplyRecord,
        call: PendingCall | None,
        sent_ms: int,
        rest: np.ndarray,
        chunk: int,
        encoding: str,
    ) -> None:
        conn, s = self.conn, self.session
        text = spoken_text(plan.words, sent_ms)
        await conn.send(
            {
                "type": "transcript.agent",
                "reply_id": record.reply_id,
                "text": text,
                "interrupted": True,
            }
        )
        await conn.send(
            {"type": "reply.done", "reply_id": record.reply_id, "status": "interrupted"}
        )
        record.status, record.spoken_text = "interrupted", text
        if text:
            s.context.append(("agent", text))
        if call is not None:  # the client discards its results; so does the service
            s.pending.pop(call.call_id, None)
            if call.mode == "hold":
                await self._release_held()
        for i in range(self.scenario.reply.stale_frames):
            pcm = rest[i * chunk : (i + 1) * chunk]
            if len(pcm) < chunk:
                pcm = np.concatenate((pcm, np.zeros(chunk - len(pcm), np.int16)))
            await self._send_audio(pcm, encoding)

    async def _tool_timeout(self, call: PendingCall) -> None:
        await asyncio.sleep(call.timeout_s / self.speed)
        if self.session.pending.get(call.call_id) is call and call.result is None:
            log.info("tool call %s (%s) timed out", call.call_id, call.name)
            self.session.pending.pop(call.call_id, None)
            self._enqueue(0, lambda: self._tone(self.scenario.reply.tool_timeout))
            if call.mode == "hold":
                await self._release_held()

    async def tool_result_ready(self, call: PendingCall) -> None:
        """A string result arrived; answer once the call's reply is done."""
        if not call.reply_done or call.result is None:
            return
        if self.session.pending.pop(call.call_id, None) is None:
            return
        template = self.scenario.reply.tool_result
        if call.result_reply is not None:
            template = call.result_reply
        text = _fill(template, result=spoken_result(call.result), name=call.name)
        if text:  # a turn's result = "" says nothing
            self._enqueue(self.scenario.reply.delay_ms, lambda: self._tone(text))
        if call.mode == "hold" and not any(c.mode == "hold" for c in self.session.pending.values()):
            await self._release_held()

    async def resend_pending(self) -> None:
        """After a resume: calls that were made but not answered are sent again."""
        for call in list(self.session.pending.values()):
            call.reply_done = True  # the reply that made it is lost with the old socket
            if call.mode == "hold":
                self.holding = True
            if self.scenario.reply.resend_tool_calls and call.result is None:
                await self.conn.send(call.event())
            elif call.result is not None:
                await self.tool_result_ready(call)
            self.conn.spawn(self._tool_timeout(call))

    # ---- barge-in and shutdown ---------------------------------------------------------
    async def barge_in(self) -> None:
        """User speech during a reply: stop it and wait until the interruption is sent."""
        pb = self.playing
        if pb is None or pb.interrupted:
            return
        pb.interrupt()
        await asyncio.shield(pb.done)

    async def stop(self) -> None:
        self._stopped = True
        if self.playing is not None:
            self.playing.interrupt()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        for record in self.session.replies if self.conn.session else []:
            if record.status == "in_progress":
                record.status = "lost"
