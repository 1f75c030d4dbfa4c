"""The simulator speaking OpenAI Realtime (GA): see ``wire.py`` for how adapters work.

Faithful where botrun depends on it: ``session.created`` first, no greeting until
``response.create``, responses and output items with ids, audio deltas per item,
``response.done`` with ``completed``/``cancelled``, function calls answered by a
``function_call_output`` item *and* a ``response.create`` (no reply before it),
``response.cancel`` (an error when nothing is active), ``conversation.item.truncate``
refused when ``audio_end_ms`` is past the audio sent for that item, and no resume: every
socket is a new session.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from ..backends.mismatch import close_reason
from .codec import AudioFormat
from .session import new_id
from .wire import WireSocket, dump, spoken

CLIENT_TYPES = frozenset(
    {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "response.create",
        "response.cancel",
        "conversation.item.create",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "output_audio_buffer.clear",
    }
)
_ERROR_TYPES = {
    "UNAUTHORIZED": ("invalid_request_error", "invalid_api_key"),
    "FORBIDDEN": ("invalid_request_error", "invalid_api_key"),
    "server_error": ("server_error", "server_error"),
    "internal_error": ("server_error", "server_error"),
    "agent_init_failed": ("server_error", "server_error"),
    "agent_timeout": ("server_error", "server_error"),
    "rate_limited": ("rate_limit_error", "rate_limit_exceeded"),
    "session_expired": ("invalid_request_error", "session_expired"),
}


@dataclass
class _Item:
    item_id: str
    response_id: str
    sent_bytes: int = 0


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _decoded_len(data: Any) -> int:
    try:
        return len(base64.b64decode(data, validate=True)) if isinstance(data, str) else 0
    except (binascii.Error, ValueError):
        return 0


def _format(fmt: Any) -> dict[str, Any]:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("audio/pcmu", "audio/pcma"):
        return {"encoding": kind, "sample_rate": 8000}
    return {"encoding": "audio/pcm", "sample_rate": 24000}


class OpenAISocket(WireSocket):
    protocol = "openai"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.session_id = new_id("sess")
        self.config: dict[str, Any] = {"type": "realtime", "id": self.session_id}
        self._configured = False
        self._user_item: str | None = None
        self._user_text = ""
        self._active: str | None = None  # response in progress
        self._last_response: str | None = None
        self._item: _Item | None = None  # the current/last assistant audio item
        self._items: dict[str, _Item] = {}
        self._outputs: list[tuple[str, str]] = []  # function outputs awaiting response.create
        self._bytes_per_ms = 48.0

    # -- client -> simulator ---------------------------------------------------------------
    async def opened(self) -> None:
        await self.ws.send(
            dump({"type": "session.created", "event_id": new_id("ev"), "session": self.config})
        )

    def knows(self, data: dict[str, Any]) -> bool:
        return data.get("type") in CLIENT_TYPES

    async def refuse_foreign(self, theirs: str) -> None:
        await self.error("invalid_request_error", close_reason(self.protocol, theirs), "type")
        await super().refuse_foreign(theirs)

    async def error(self, code: str, message: str, param: str | None = None) -> None:
        err: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
        if param is not None:
            err["param"] = param
        self.record("errors", code)
        await self.ws.send(dump({"type": "error", "event_id": new_id("ev"), "error": err}))

    async def from_client(self, d: dict[str, Any]) -> list[str]:
        kind = d["type"]
        self.record("client", kind)
        if kind == "session.update":
            return self._session_update(d.get("session"))
        if kind == "input_audio_buffer.append":
            return [dump({"type": "input.audio", "audio": d.get("audio")})]
        if kind in ("input_audio_buffer.commit", "input_audio_buffer.clear"):
            return []  # server_vad commits on its own
        if not self._configured:
            await self.error("invalid_request_error", "send session.update first", "type")
            return []
        match kind:
            case "response.create":
                return await self._response_create(d.get("response"))
            case "response.cancel":
                if self._active is None:
                    await self.error("response_cancel_not_active", "no active response")
                    return []
                if self.conn is not None:
                    await self.conn.agent.barge_in()
                return []
            case "conversation.item.create":
                return await self._item_create(d.get("item"))
            case "conversation.item.truncate":
                await self._truncate(d)
                return []
            case "conversation.item.delete":
                iid = d.get("item_id")
                if iid not in self._items:
                    await self.error("invalid_value", f"no item {iid!r}", "item_id")
                    return []
                self.record("deleted", iid)
                await self.ws.send(dump({"type": "conversation.item.deleted", "item_id": iid}))
                return []
        return []

    def _session_update(self, session: Any) -> list[str]:
        if not isinstance(session, dict):
            session = {}
        merged = {**self.config, **session}
        self.config = merged
        audio = _dict(session.get("audio"))
        inp = _dict(audio.get("input"))
        td = inp.get("turn_detection") if isinstance(inp.get("turn_detection"), dict) else None
        out: dict[str, Any] = {}
        if "instructions" in session:
            out["system_prompt"] = str(session["instructions"])
        turn: dict[str, Any] = {}
        if td is not None:
            silence = int(td.get("silence_duration_ms", 500))
            turn = {
                "vad_threshold": float(td.get("threshold", 0.5)),
                "min_silence": silence,
                "max_silence": max(silence, 3000),
                "interrupt_response": bool(td.get("interrupt_response", True)),
            }
        if "tools" in session and isinstance(session["tools"], list):
            out["tools"] = [
                {
                    "type": "function",
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("parameters", {}),
                }
                for t in session["tools"]
                if isinstance(t, dict)
            ]
        if not self._configured:
            self._configured = True
            fmt = _format(inp.get("format"))
            out_fmt = _format(_dict(audio.get("output")).get("format"))
            # the reply's bytes per ms (truncation checks): G.711 8 kHz or PCM16 24 kHz
            af = AudioFormat(out_fmt["encoding"], out_fmt["sample_rate"])
            self._bytes_per_ms = af.sample_rate * af.bytes_per_sample / 1000
            out["greeting"] = ""  # OpenAI has no greeting: response.create asks for one
            out["input"] = {"format": fmt, **({"turn_detection": turn} if turn else {})}
            out["output"] = {"format": out_fmt}
        elif turn:
            out["input"] = {"turn_detection": turn}
        return [dump({"type": "session.update", "session": out})]

    async def _response_create(self, response: Any) -> list[str]:
        if self._active is not None:
            await self.error(
                "conversation_already_has_active_response",
                f"response {self._active} is in progress",
            )
            return []
        if self._outputs:  # function results: the agent continues with them now
            outs, self._outputs = self._outputs, []
            return [
                dump({"type": "tool.result", "call_id": cid, "result": output})
                for cid, output in outs
            ]
        instructions = response.get("instructions") if isinstance(response, dict) else None
        text = spoken(instructions) if isinstance(instructions, str) else ""
        return [dump({"type": "reply.create", "instructions": text})]

    async def _item_create(self, item: Any) -> list[str]:
        if not isinstance(item, dict):
            await self.error("invalid_value", "item must be an object", "item")
            return []
        iid = item.get("id") or new_id("item")
        if item.get("type") == "function_call_output":
            cid, output = item.get("call_id"), item.get("output")
            if not isinstance(cid, str) or not isinstance(output, str):
                await self.error("invalid_value", "call_id and output must be strings", "item")
                return []
            self._outputs.append((cid, output))
            self.record("function_outputs", {"call_id": cid, "output": output})
        elif item.get("type") == "message":
            role = item.get("role")
            content = item.get("content")
            parts: list[Any] = content if isinstance(content, list) else []
            text = " ".join(
                str(p.get("text", "")) for p in parts if isinstance(p, dict) and "text" in p
            )
            self.record("seeded", (role, text))
            s = self.session
            if s is not None and role in ("user", "assistant"):
                s.context.append(("user" if role == "user" else "agent", text))
        else:
            await self.error("invalid_value", f"unsupported item type {item.get('type')!r}")
            return []
        await self.ws.send(dump({"type": "conversation.item.added", "item": {**item, "id": iid}}))
        return []

    async def _truncate(self, d: dict[str, Any]) -> None:
        iid, end = d.get("item_id"), d.get("audio_end_ms")
        item = self._items.get(iid) if isinstance(iid, str) else None
        if item is None:
            await self.error("invalid_value", f"no assistant audio item {iid!r}", "item_id")
            return
        sent_ms = int(item.sent_bytes / self._bytes_per_ms)
        if not isinstance(end, int) or isinstance(end, bool) or end < 0 or end > sent_ms:
            await self.error(
                "invalid_value",
                f"audio_end_ms {end!r} is outside the {sent_ms} ms of audio of item {iid}",
                "audio_end_ms",
            )
            return
        self.record("truncations", {"item_id": iid, "audio_end_ms": end, "sent_ms": sent_ms})
        await self.ws.send(
            dump(
                {
                    "type": "conversation.item.truncated",
                    "item_id": iid,
                    "content_index": d.get("content_index", 0),
                    "audio_end_ms": end,
                }
            )
        )

    # -- simulator -> client ------------------------------------------------------------
    def _audio_item(self, frames: list[str]) -> _Item:
        rid = self._active or self._last_response or new_id("resp")
        if self._item is None or self._item.response_id != rid:
            self._item = _Item(new_id("item"), rid)
            self._items[self._item.item_id] = self._item
            item = {"id": self._item.item_id, "type": "message", "role": "assistant"}
            frames.append(
                dump(
                    {
                        "type": "response.output_item.added",
                        "response_id": rid,
                        "output_index": 0,
                        "item": {**item, "status": "in_progress", "content": []},
                    }
                )
            )
        return self._item

    async def to_client(self, e: dict[str, Any]) -> list[str]:
        kind = e["type"]
        frames: list[str] = []
        match kind:
            case "session.ready" | "session.ended":
                return []
            case "session.updated":
                return [dump({"type": "session.updated", "session": self.config})]
            case "input.speech.started":
                self._user_item, self._user_text = new_id("item"), ""
                return [
                    dump(
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": e.get("audio_start_ms", 0),
                            "item_id": self._user_item,
                        }
                    )
                ]
            case "input.speech.stopped":
                iid = self._user_item or new_id("item")
                return [
                    dump(
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "audio_end_ms": e.get("audio_end_ms", 0),
                            "item_id": iid,
                        }
                    ),
                    dump({"type": "input_audio_buffer.committed", "item_id": iid}),
                ]
            case "transcript.user.delta":
                text = str(e.get("text", ""))
                delta = text[len(self._user_text) :] if text.startswith(self._user_text) else text
                self._user_text = text
                return [
                    dump(
                        {
                            "type": "conversation.item.input_audio_transcription.delta",
                            "item_id": self._user_item or "",
                            "content_index": 0,
                            "delta": delta,
                        }
                    )
                ]
            case "transcript.user":
                iid = self._user_item or new_id("item")
                self._user_item, self._user_text = None, ""
                return [
                    dump(
                        {
                            "type": "conversation.item.input_audio_transcription.completed",
                            "item_id": iid,
                            "content_index": 0,
                            "transcript": e.get("text", ""),
                        }
                    )
                ]
            case "reply.started":
                rid = "resp_" + str(e.get("reply_id", new_id("r")))
                self._active = self._last_response = rid
                response = {"id": rid, "object": "realtime.response", "status": "in_progress"}
                return [dump({"type": "response.created", "response": {**response, "output": []}})]
            case "reply.audio":
                item = self._audio_item(frames)
                data = e.get("data", "")
                item.sent_bytes += _decoded_len(data)
                frames.append(
                    dump(
                        {
                            "type": "response.output_audio.delta",
                            "response_id": item.response_id,
                            "item_id": item.item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "delta": data,
                        }
                    )
                )
                return frames
            case "transcript.agent.delta":
                item = self._audio_item(frames)
                frames.append(
                    dump(
                        {
                            "type": "response.output_audio_transcript.delta",
                            "response_id": item.response_id,
                            "item_id": item.item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "delta": e.get("delta", ""),
                        }
                    )
                )
                return frames
            case "transcript.agent":
                item = self._audio_item(frames)
                frames.append(
                    dump(
                        {
                            "type": "response.output_audio_transcript.done",
                            "response_id": item.response_id,
                            "item_id": item.item_id,
                            "output_index": 0,
                            "content_index": 0,
                            "transcript": e.get("text", ""),
                        }
                    )
                )
                return frames
            case "tool.call":
                rid = self._active or self._last_response or new_id("resp")
                iid = new_id("item")
                call = {
                    "id": iid,
                    "type": "function_call",
                    "call_id": e.get("call_id"),
                    "name": e.get("name"),
                }
                args = json.dumps(e.get("arguments") or {})
                return [
                    dump(
                        {
                            "type": "response.output_item.added",
                            "response_id": rid,
                            "output_index": 1,
                            "item": {**call, "arguments": "", "status": "in_progress"},
                        }
                    ),
                    dump(
                        {
                            "type": "response.function_call_arguments.done",
                            "response_id": rid,
                            "item_id": iid,
                            "output_index": 1,
                            "call_id": e.get("call_id"),
                            "name": e.get("name"),
                            "arguments": args,
                        }
                    ),
                ]
            case "reply.done":
                rid = self._active or self._last_response or ""
                self._active = None
                cancelled = e.get("status") == "interrupted"
                done: dict[str, Any] = {
                    "id": rid,
                    "object": "realtime.response",
                    "status": "cancelled" if cancelled else "completed",
                }
                if cancelled:
                    done["status_details"] = {"type": "cancelled", "reason": "turn_detected"}
                if self._item is not None and self._item.response_id == rid:
                    frames.append(
                        dump(
                            {
                                "type": "response.output_audio.done",
                                "response_id": rid,
                                "item_id": self._item.item_id,
                            }
                        )
                    )
                frames.append(dump({"type": "response.done", "response": done}))
                return frames
            case "session.error":
                code = str(e.get("code", "error"))
                kind_, oa_code = _ERROR_TYPES.get(code, ("invalid_request_error", code))
                err: dict[str, Any] = {
                    "type": kind_,
                    "code": oa_code,
                    "message": e.get("message", ""),
                }
                if e.get("param") is not None:
                    err["param"] = e["param"]
                return [dump({"type": "error", "event_id": new_id("ev"), "error": err})]
        return [dump(e)]  # not a Voice Agent API event (injected junk): as it is
