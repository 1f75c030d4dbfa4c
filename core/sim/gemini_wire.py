"""The simulator speaking Gemini Live: see ``wire.py`` for how adapters work.

Faithful where botrun depends on it: ``setup`` first (a second one closes the socket),
``setupComplete``, 16 kHz ``realtimeInput`` audio (taken up to the simulator's 24 kHz with
botrun's own streaming resampler), no speech events and no reply ids, ``serverContent``
with 24 kHz model audio, ``inputTranscription`` / ``outputTranscription`` pieces,
``interrupted``, ``generationComplete`` and ``turnComplete``; ``toolCall`` answered by
``toolResponse`` (the model then goes on by itself), ``toolCallCancellation`` for the calls
of an interrupted turn; ``sessionResumptionUpdate`` handles after setup and each turn,
``setup.sessionResumption.handle`` to resume (refused: close 1008), ``goAway`` before the
socket is closed (``Simulator(go_away_after_s=)``, ``--go-away-after``); errors are close
frames with a reason, as the live service sends them (no in-band error message).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from .wire import WireSocket, dump, spoken

if TYPE_CHECKING:
    from ..audio.resampler import StreamResampler

CLIENT_KEYS = frozenset({"setup", "realtimeInput", "clientContent", "toolResponse"})
_CLOSES = {
    "UNAUTHORIZED": (1008, "API key not valid. Please pass a valid API key."),
    "FORBIDDEN": (1008, "The caller does not have permission"),
    "session_not_found": (1008, "Invalid session resumption handle."),
    "session_forbidden": (1008, "Invalid session resumption handle."),
    "server_error": (1013, "The service is currently unavailable."),
    "rate_limited": (1013, "Resource has been exhausted."),
    "internal_error": (1011, "Internal error encountered."),
    "agent_init_failed": (1011, "Internal error encountered."),
    "agent_timeout": (1011, "Deadline expired before operation could complete."),
}
HANDLE_PREFIX = "h1."
#: How long before closing a connection goAway is sent (its timeLeft).
GO_AWAY_NOTICE_S = 10.0


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class GeminiSocket(WireSocket):
    protocol = "gemini"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._setup = False
        self._resampler: StreamResampler | None = None
        self._user_text = ""
        self._reply_active = False
        self._reply_calls: list[str] = []
        self._held: list[str] = []  # toolResponse results, until the reply is done
        self._handles = 0
        self._close_reason: tuple[int, str] | None = None
        self._go_away: asyncio.Task[None] | None = None

    def knows(self, data: dict[str, Any]) -> bool:
        return any(k in CLIENT_KEYS for k in data)

    def close_frame(self, code: int, reason: str) -> tuple[int, str]:
        if self._close_reason is not None:
            return self._close_reason
        if reason in _CLOSES:
            return _CLOSES[reason]
        return code, reason

    async def _close(self, code: int, reason: str) -> None:
        self.record("closes", (code, reason))
        self._close_reason = (code, reason)
        await self.ws.close(code, reason)

    # -- client -> simulator ---------------------------------------------------------------
    async def from_client(self, d: dict[str, Any]) -> list[str]:
        if "setup" in d:
            if self._setup:
                await self._close(1007, "setup must be the first and only setup message")
                return []
            self._setup = True
            return self._on_setup(_dict(d["setup"]))
        if not self._setup:
            await self._close(1007, "the first message must be setup")
            return []
        out: list[str] = []
        if "realtimeInput" in d:
            out += self._on_audio(_dict(d["realtimeInput"]))
        if "clientContent" in d:
            out += self._on_content(_dict(d["clientContent"]))
        if "toolResponse" in d:
            out += self._on_tool_response(_dict(d["toolResponse"]))
        return out

    def _on_setup(self, setup: dict[str, Any]) -> list[str]:
        self.record("client", "setup")
        handle = _dict(setup.get("sessionResumption")).get("handle")
        if isinstance(handle, str) and handle:
            sid = handle[len(HANDLE_PREFIX) :].rpartition(".")[0]
            if not handle.startswith(HANDLE_PREFIX) or not sid:
                sid = "unknown"
            return [dump({"type": "session.resume", "session_id": sid})]
        rt = _dict(setup.get("realtimeInputConfig"))
        aad = _dict(rt.get("automaticActivityDetection"))
        silence = int(aad.get("silenceDurationMs", 1000))
        session: dict[str, Any] = {
            "greeting": "",  # Gemini has no greeting: a text turn asks for one
            "input": {
                "format": {"encoding": "audio/pcm", "sample_rate": 24000},
                "turn_detection": {
                    "vad_threshold": 0.5,
                    "min_silence": silence,
                    "max_silence": max(silence, 3000),
                    "interrupt_response": rt.get("activityHandling") != "NO_INTERRUPTION",
                },
            },
        }
        parts = _dict(setup.get("systemInstruction")).get("parts") or []
        text = " ".join(str(_dict(p).get("text", "")) for p in parts if isinstance(parts, list))
        if text:
            session["system_prompt"] = text
        tools = []
        for group in setup.get("tools") or []:
            for fd in _dict(group).get("functionDeclarations") or []:
                fd = _dict(fd)
                tools.append(
                    {
                        "type": "function",
                        "name": fd.get("name"),
                        "description": fd.get("description", ""),
                        "parameters": fd.get("parameters", {}),
                    }
                )
        if tools:
            session["tools"] = tools
        return [dump({"type": "session.update", "session": session})]

    def _on_audio(self, rt: dict[str, Any]) -> list[str]:
        blobs = [_dict(rt["audio"])] if "audio" in rt else []
        blobs += [_dict(c) for c in rt.get("mediaChunks") or []]
        out = []
        for blob in blobs:
            data = blob.get("data")
            mime = str(blob.get("mimeType", ""))
            try:
                pcm = base64.b64decode(data, validate=True) if isinstance(data, str) else None
            except (binascii.Error, ValueError):
                pcm = None
            if pcm is None or len(pcm) % 2 or "rate=16000" not in mime:
                self.record("bad_audio", mime)
                out.append(dump({"type": "input.audio", "audio": data}))  # sim complains
                continue
            if self._resampler is None:
                from ..audio.resampler import StreamResampler

                self._resampler = StreamResampler(16000, 24000)
            up = self._resampler.process(pcm)
            if up:
                out.append(
                    dump({"type": "input.audio", "audio": base64.b64encode(up).decode("ascii")})
                )
        return out

    def _on_content(self, cc: dict[str, Any]) -> list[str]:
        turns = cc.get("turns") or []
        last_user = ""
        for turn in turns if isinstance(turns, list) else []:
            turn = _dict(turn)
            parts = turn.get("parts") or []
            text = " ".join(str(_dict(p).get("text", "")) for p in parts if isinstance(parts, list))
            role = turn.get("role", "user")
            self.record("seeded", (role, text))
            if role == "user":
                last_user = text
        if cc.get("turnComplete") and last_user:
            return [dump({"type": "reply.create", "instructions": spoken(last_user)})]
        return []

    def _on_tool_response(self, tr: dict[str, Any]) -> list[str]:
        out = []
        for fr in tr.get("functionResponses") or []:
            fr = _dict(fr)
            result = dump(
                {
                    "type": "tool.result",
                    "call_id": fr.get("id"),
                    "result": json.dumps(fr.get("response")),
                }
            )
            self.record("tool_responses", fr.get("id"))
            if self._reply_active:
                self._held.append(result)  # the simulator answers once its reply is done
            else:
                out.append(result)
        return out

    # -- simulator -> client ------------------------------------------------------------
    def _handle(self) -> str:
        s = self.session
        self._handles += 1
        sid = s.session_id if s is not None else "none"
        return f"{HANDLE_PREFIX}{sid}.{self._handles}"

    def _resumption(self) -> str:
        return dump({"sessionResumptionUpdate": {"newHandle": self._handle(), "resumable": True}})

    async def _schedule_go_away(self, after_s: float) -> None:
        await asyncio.sleep(after_s / self.sim.speed)
        self.record("go_away", after_s)
        await self.ws.send(dump({"goAway": {"timeLeft": f"{GO_AWAY_NOTICE_S:g}s"}}))
        await asyncio.sleep(GO_AWAY_NOTICE_S / self.sim.speed)
        await self._close(1000, "connection lifetime reached")

    async def to_client(self, e: dict[str, Any]) -> list[str]:
        kind = e["type"]
        match kind:
            case "session.ready":
                if self.sim.go_away_after_s and self.conn is not None:
                    self.conn.spawn(self._schedule_go_away(self.sim.go_away_after_s))
                return [dump({"setupComplete": {}}), self._resumption()]
            case (
                "session.updated"
                | "input.speech.started"
                | "input.speech.stopped"
                | "transcript.agent"
                | "session.ended"
            ):
                return []
            case "transcript.user.delta" | "transcript.user":
                text = str(e.get("text", ""))
                piece = text[len(self._user_text) :] if text.startswith(self._user_text) else text
                self._user_text = "" if kind == "transcript.user" else text
                if not piece.strip():
                    return []
                return [dump({"serverContent": {"inputTranscription": {"text": piece}}})]
            case "reply.started":
                self._reply_active = True
                self._reply_calls = []
                return []
            case "reply.audio":
                blob = {"mimeType": "audio/pcm;rate=24000", "data": e.get("data", "")}
                return [dump({"serverContent": {"modelTurn": {"parts": [{"inlineData": blob}]}}})]
            case "transcript.agent.delta":
                return [
                    dump({"serverContent": {"outputTranscription": {"text": e.get("delta", "")}}})
                ]
            case "tool.call":
                cid = str(e.get("call_id"))
                self._reply_calls.append(cid)
                call = {"id": cid, "name": e.get("name"), "args": e.get("arguments") or {}}
                return [dump({"toolCall": {"functionCalls": [call]}})]
            case "reply.done":
                self._reply_active = False
                frames: list[str] = []
                if e.get("status") == "interrupted":
                    frames.append(dump({"serverContent": {"interrupted": True}}))
                    if self._reply_calls:
                        self.record("cancelled", list(self._reply_calls))
                        frames.append(dump({"toolCallCancellation": {"ids": self._reply_calls}}))
                        cut = set(self._reply_calls)  # their held responses go nowhere now
                        self._held = [h for h in self._held if json.loads(h)["call_id"] not in cut]
                else:
                    frames.append(dump({"serverContent": {"generationComplete": True}}))
                    frames.append(dump({"serverContent": {"turnComplete": True}}))
                frames.append(self._resumption())
                self._reply_calls = []
                held, self._held = self._held, []
                if held and self.conn is not None:
                    self.conn.spawn(self._release(held))
                return frames
            case "session.error":
                code = str(e.get("code", ""))
                self.record("errors", code)
                if code in _CLOSES:
                    self._close_reason = _CLOSES[code]
                    if code.startswith("session_"):  # a refused resume: Gemini closes
                        await self._close(*_CLOSES[code])
                    return []
                if code == "session_expired":
                    return [dump({"goAway": {"timeLeft": "0s"}})]
                reason = f"Request contains an invalid argument. {e.get('message', '')}"
                await self._close(1007, reason[:120])
                return []
        return [dump(e)]  # not a Voice Agent API event (injected junk): as it is

    async def _release(self, held: list[str]) -> None:
        if self.conn is None:
            return
        for frame in held:
            await self.conn._handle_frame(frame)
