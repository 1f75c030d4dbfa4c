"""OpenAI Realtime (GA) wire protocol, sans-I/O: what the service sends becomes the events
of :mod:`botrun.core.protocol` the bridge already consumes, and botrun's control events
become the service's messages. No sockets, no asyncio: testable with lists of strings.

The session config botrun builds is the neutral one of :func:`botrun.core.protocol.
session_payload` (system prompt, greeting, turn detection, voice, tools); this module turns
it into ``session.update``. What differs from the Voice Agent API, and where it is handled:

* no server greeting: the greeting is a ``response.create`` whose instructions ask for it,
  sent once the session is ready (:meth:`OpenAIWire.take_greeting`);
* a reply is a *response* (``response.created`` .. ``response.done``); its audio lives in
  an output *item*, whose id a barge-in needs (:meth:`OpenAIWire.barge_in`:
  ``response.cancel`` while the response is active, and ``conversation.item.truncate`` to
  what the caller heard, never more than was received);
* a tool result is a ``function_call_output`` item plus ``response.create`` (one, after the
  last result of the response that made the calls);
* no resume: a new socket is a new session, re-seeded with the conversation so far
  (:meth:`OpenAIWire.first_frames`);
* a phone call's audio is G.711 μ-law at 8 kHz both ways (``audio/pcmu``, passed through
  by the bridge): reply bytes are 8 a ms, not PCM16's 48, when truncating (:func:`bytes_per_ms`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ...protocol import (
    ProtocolError,
    ReplyAudio,
    ReplyCreate,
    ReplyDone,
    ReplyStarted,
    SessionEnd,
    SessionError,
    SessionReady,
    SessionUpdate,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolResult,
    TranscriptAgent,
    TranscriptAgentDelta,
    TranscriptUser,
    TranscriptUserDelta,
    UnknownEvent,
)

RAW_KEEP = 200
#: Conversation items re-sent to a new session after a reconnect (the latest ones).
RESEED_MAX = 40
TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
#: An item heard to within this many ms of its end counts as heard in full.
HEARD_SLACK_MS = 30

#: Server events the wire knows and that carry nothing the bridge needs.
QUIET = frozenset(
    {
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        "conversation.created",
        "conversation.item.created",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.retrieved",
        "conversation.item.deleted",
        "conversation.item.truncated",
        "conversation.item.input_audio_transcription.failed",
        "conversation.item.input_audio_transcription.segment",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_audio.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "rate_limits.updated",
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
        "output_audio_buffer.cleared",
    }
)


@dataclass
class WireFrames:
    """Control frames that exist only on this wire (``response.cancel``, truncation, the
    greeting, re-seeding): sent as they are once the session is ready."""

    frames: list[str]


@dataclass
class _Item:
    """An assistant audio item: its response and how much audio arrived for it."""

    item_id: str
    response_id: str
    received_bytes: int = 0
    settled: bool = False  # truncated, deleted, or known to be fully heard


@dataclass
class _Response:
    response_id: str
    text: list[str] = field(default_factory=list)
    transcript: str | None = None
    calls: set[str] = field(default_factory=set)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _dump(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str) -> str:
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"...(+{len(text) - RAW_KEEP})"


def greeting_instructions(greeting: str) -> str:
    """What botrun asks the model to say first (the simulator speaks the quoted text)."""
    return f'Say exactly this greeting, and nothing else: "{greeting}"'


def audio_format(neutral: dict[str, Any]) -> dict[str, Any]:
    """The service's format object for the neutral config's ``format``: PCM16 at 24 kHz,
    or G.711 (``audio/pcmu`` / ``audio/pcma``, 8 kHz, no rate field) for a phone call whose
    μ-law the bridge passes through (``BackendSpec.phone_audio``)."""
    enc = neutral.get("encoding", "audio/pcm") if isinstance(neutral, dict) else "audio/pcm"
    if enc in ("audio/pcmu", "audio/pcma"):
        return {"type": enc}
    return {"type": "audio/pcm", "rate": 24000}


def bytes_per_ms(fmt: dict[str, Any]) -> float:
    """Bytes of audio per ms in the service's format object: G.711 is one byte a sample at
    8 kHz, PCM16 two at 24 kHz (what ``audio_end_ms`` of a truncation is computed from)."""
    return 8.0 if fmt.get("type") in ("audio/pcmu", "audio/pcma") else 48.0


def tool_object(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.get("name", ""),
        "description": tool.get("description", ""),
        "parameters": tool.get("parameters", {"type": "object", "properties": {}}),
    }


def session_object(cfg: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The ``session`` of a ``session.update`` for the neutral config ``cfg`` (a change set
    when ``partial``: only what it names)."""
    s: dict[str, Any] = {"type": "realtime"}
    if "system_prompt" in cfg:
        s["instructions"] = cfg["system_prompt"]
    inp, out = _dict(cfg.get("input")), _dict(cfg.get("output"))
    audio_in: dict[str, Any] = {}
    if not partial or "format" in inp:
        audio_in["format"] = audio_format(inp.get("format", {}))
    if not partial or "keyterms" in inp:
        transcription: dict[str, Any] = {"model": TRANSCRIPTION_MODEL}
        if inp.get("keyterms"):  # the transcription prompt biases it toward these words
            transcription["prompt"] = ", ".join(inp["keyterms"])
        audio_in["transcription"] = transcription
    td = inp.get("turn_detection")
    if isinstance(td, dict) or not partial:
        td = td if isinstance(td, dict) else {}
        if td.get("semantic_vad"):
            audio_in["turn_detection"] = {
                "type": "semantic_vad",
                "eagerness": "auto",
                "create_response": True,
                "interrupt_response": td.get("interrupt_response", True),
            }
        else:
            audio_in["turn_detection"] = {
                "type": "server_vad",
                "threshold": td.get("vad_threshold", 0.5),
                "silence_duration_ms": td.get("min_silence", 500),
                "prefix_padding_ms": 300,
                "create_response": True,
                "interrupt_response": td.get("interrupt_response", True),
            }
    audio_out: dict[str, Any] = {}
    if not partial or "format" in out:
        audio_out["format"] = audio_format(out.get("format", {}))
    if out.get("voice"):
        audio_out["voice"] = out["voice"]
    audio: dict[str, Any] = {}
    if audio_in:
        audio["input"] = audio_in
    if audio_out:
        audio["output"] = audio_out
    if audio:
        s["audio"] = audio
    if not partial:
        s["output_modalities"] = ["audio"]
    if "tools" in cfg:
        s["tools"] = [tool_object(t) for t in cfg["tools"] if isinstance(t, dict)]
        s["tool_choice"] = "auto"
    return s


def _error_code(err: dict[str, Any], ready: bool) -> str:
    """The Voice Agent API code an OpenAI ``error`` means (so the session's classifier
    treats it alike): auth, a transient server fault, an expired session, a refused setup."""
    code = err.get("code") if isinstance(err.get("code"), str) else None
    kind = err.get("type") if isinstance(err.get("type"), str) else ""
    if code in ("invalid_api_key", "insufficient_quota") or kind == "authentication_error":
        return "UNAUTHORIZED"
    if code == "session_expired":
        return "session_expired"
    if kind == "server_error" or code == "server_error":
        return "server_error"
    if code in ("rate_limit_exceeded",) or kind == "rate_limit_error":
        return "rate_limited"
    if not ready and kind == "invalid_request_error":
        return "invalid_config"  # the session.update was refused: fatal at setup
    return code or kind or "error"


class OpenAIWire:
    """One call's translation state (across its sockets)."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.ready = False  # this socket's first session.updated came
        self.greeting: str | None = None  # to ask for once ready
        self.history: deque[tuple[str, str]] = deque(maxlen=RESEED_MAX)
        # the session's audio formats (service objects): PCM16 24 kHz, or G.711 for a
        # phone call passed through; the output's says how many ms a reply's bytes are
        self.fmt: dict[str, Any] = {"type": "audio/pcm", "rate": 24000}
        self.out_fmt: dict[str, Any] = dict(self.fmt)
        self._responses: dict[str, _Response] = {}
        self._active: str | None = None  # response in progress
        self._items: dict[str, _Item] = {}
        self._last_item: _Item | None = None
        self._user_partial: dict[str, str] = {}
        self._call_response: dict[str, str] = {}
        self.truncations: list[tuple[str, int, int]] = []  # (item, audio_end_ms, received)
        # One response at a time: the service refuses a response.create while one is in
        # progress (conversation_already_has_active_response), so later ones wait here, in
        # order, and go out one per response.done (release()). _requested: sent, not yet
        # answered by response.created.
        self._creates: deque[str] = deque()
        self._requested = 0

    # -- socket start ---------------------------------------------------------------------

    def connection_opened(self) -> None:
        self.session_id = None
        self.ready = False
        self._active = None
        self._responses.clear()
        self._items.clear()
        self._last_item = None
        self._user_partial.clear()
        self._call_response.clear()
        self._creates.clear()  # (a new session: the conversation is re-seeded instead)
        self._requested = 0

    def first_frames(self, cfg: dict[str, Any]) -> list[str]:
        """``session.update`` with the whole config, then the conversation so far (a new
        session after a lost one: the service has no resume)."""
        inp, out = _dict(cfg.get("input")), _dict(cfg.get("output"))
        self.fmt = audio_format(inp.get("format", {}))
        self.out_fmt = audio_format(out.get("format", {}))
        frames = [_dump({"type": "session.update", "session": session_object(cfg)})]
        for role, text in self.history:
            kind = "input_text" if role == "user" else "output_text"
            item = {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
            frames.append(_dump({"type": "conversation.item.create", "item": item}))
        self.greeting = cfg.get("greeting") or None
        return frames

    def take_greeting(self) -> list[str]:
        """The greeting's ``response.create``, once (after the session is ready)."""
        greeting, self.greeting = self.greeting, None
        if not greeting:
            return []
        return self._create_or_hold(self._response_create(greeting_instructions(greeting)))

    def _create_or_hold(self, frame: str) -> list[str]:
        if self._active is None and not self._requested:
            self._requested += 1
            return [frame]
        self._creates.append(frame)
        return []

    def release(self) -> list[str]:
        """The next held ``response.create``, once no response is in progress (after a
        ``response.done`` or an error), or nothing."""
        if self._active is not None or self._requested or not self._creates:
            return []
        self._requested += 1
        return [self._creates.popleft()]

    # -- botrun -> service --------------------------------------------------------------

    @staticmethod
    def _response_create(instructions: str | None = None) -> str:
        if instructions is None:
            return _dump({"type": "response.create"})
        return _dump({"type": "response.create", "response": {"instructions": instructions}})

    def encode(self, ev: Any) -> list[str]:
        match ev:
            case WireFrames(frames=frames):
                return list(frames)
            case ToolResult(call_id=cid, result=result):
                item = {"type": "function_call_output", "call_id": cid, "output": result}
                frames = [_dump({"type": "conversation.item.create", "item": item})]
                rid = self._call_response.pop(cid, None)
                if rid is None or rid not in self._call_response.values():
                    # the last result: continue (once the response in progress is done)
                    frames += self._create_or_hold(self._response_create())
                return frames
            case ReplyCreate(instructions=instructions):
                return self._create_or_hold(self._response_create(instructions))
            case SessionUpdate(session=changes):
                return [
                    _dump(
                        {"type": "session.update", "session": session_object(changes, partial=True)}
                    )
                ]
            case SessionEnd():
                return []  # no goodbye message: closing the socket ends the session
        raise TypeError(f"not a client event for OpenAI Realtime: {ev!r}")

    def audio_message(self, pcm: bytes) -> bytes:
        return (
            b'{"type":"input_audio_buffer.append","audio":"'
            + binascii.b2a_base64(pcm, newline=False)
            + b'"}'
        )

    def barge_in(self, heard_ms: Any) -> list[str]:
        """The caller spoke over the agent: cancel the response still in progress and cut
        the last audio item to what was heard (``heard_ms(response_id)``, the pacer's played
        position), never past what was received. Nothing heard: the item is deleted (some
        service versions refuse ``audio_end_ms`` 0)."""
        frames = []
        if self._active is not None:
            frames.append(_dump({"type": "response.cancel", "response_id": self._active}))
        item = self._last_item
        if item is None or item.settled:
            return frames
        received_ms = int(item.received_bytes / bytes_per_ms(self.out_fmt))
        heard = heard_ms(item.response_id) if heard_ms is not None else float(received_ms)
        end = max(0, min(int(heard), received_ms))
        in_progress = self._active == item.response_id
        if not in_progress and end >= received_ms - HEARD_SLACK_MS:
            # a finished item heard in full (the resampler may hold a few ms back)
            item.settled = True
            return frames
        # (a response in progress is always cut: the service has generated more of the
        # item than has arrived here, and the caller heard at most what arrived)
        item.settled = True
        self.truncations.append((item.item_id, end, received_ms))
        if end == 0:
            frames.append(_dump({"type": "conversation.item.delete", "item_id": item.item_id}))
        else:
            frames.append(
                _dump(
                    {
                        "type": "conversation.item.truncate",
                        "item_id": item.item_id,
                        "content_index": 0,
                        "audio_end_ms": end,
                    }
                )
            )
        return frames

    # -- service -> botrun --------------------------------------------------------------

    def decode(self, msg: str | bytes) -> list[Any]:
        """The :mod:`botrun.core.protocol` events one message means. Never raises."""
        if isinstance(msg, bytes | bytearray | memoryview):
            return [ProtocolError(f"binary frame of {len(msg)} bytes (expected JSON text)")]
        try:
            data = json.loads(msg)
        except (ValueError, RecursionError) as exc:
            return [ProtocolError(f"malformed JSON: {exc}", _cut(msg))]
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return [ProtocolError("expected a JSON object with a string 'type'", _cut(msg))]
        try:
            return self._event(data["type"], data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return [ProtocolError(f"{data['type']}: bad field ({exc})", _cut(msg))]

    def _event(self, kind: str, d: dict[str, Any]) -> list[Any]:
        match kind:
            case "session.created":
                self.session_id = str(d["session"]["id"])
                return []
            case "session.updated":
                if not self.ready:
                    self.ready = True
                    return [SessionReady(self.session_id or "openai")]
                return [SessionUpdated(d.get("session") or {})]
            case "input_audio_buffer.speech_started":
                return [SpeechStarted(d.get("audio_start_ms"))]
            case "input_audio_buffer.speech_stopped":
                return [SpeechStopped(d.get("audio_end_ms"))]
            case "conversation.item.input_audio_transcription.delta":
                iid = str(d.get("item_id", ""))
                text = self._user_partial.get(iid, "") + str(d.get("delta", ""))
                self._user_partial[iid] = text
                return [TranscriptUserDelta(text, iid)]
            case "conversation.item.input_audio_transcription.completed":
                iid = str(d.get("item_id", ""))
                self._user_partial.pop(iid, None)
                text = str(d.get("transcript", ""))
                if text:
                    self.history.append(("user", text))
                return [TranscriptUser(text, iid)]
            case "response.created":
                self._requested = max(0, self._requested - 1)
                rid = str(d["response"]["id"])
                self._responses[rid] = _Response(rid)
                self._active = rid
                return [ReplyStarted(rid)]
            case "response.output_item.added":
                item = d["item"]
                if item.get("type") == "message":
                    it = _Item(str(item["id"]), str(d.get("response_id", self._active or "")))
                    self._items[it.item_id] = self._last_item = it
                return []
            case "response.output_audio.delta":
                return self._audio(d)
            case "response.output_audio_transcript.delta":
                rid = str(d.get("response_id", self._active or ""))
                delta = str(d.get("delta", ""))
                if rid in self._responses:
                    self._responses[rid].text.append(delta)
                return [TranscriptAgentDelta(rid, delta)]
            case "response.output_audio_transcript.done":
                rid = str(d.get("response_id", ""))
                if rid in self._responses:
                    self._responses[rid].transcript = str(d.get("transcript", ""))
                return []
            case "response.function_call_arguments.done":
                return [self._tool_call(d)]
            case "response.done":
                return self._done(d.get("response") or {})
            case "error":
                self._requested = 0  # a refused response.create is answered so (release())
                err = _dict(d.get("error"))
                return [
                    SessionError(
                        _error_code(err, self.ready),
                        str(err.get("message", "")),
                        err.get("param") if isinstance(err.get("param"), str) else None,
                    )
                ]
        if kind in QUIET:
            return []
        return [UnknownEvent(kind, d)]

    def _audio(self, d: dict[str, Any]) -> list[Any]:
        rid = str(d.get("response_id", self._active or ""))
        try:
            pcm = base64.b64decode(d["delta"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            return [ProtocolError("response.output_audio.delta: 'delta' is not valid base64")]
        if self.out_fmt.get("type") == "audio/pcm" and len(pcm) % 2:  # G.711: any length
            return [ProtocolError(f"response.output_audio.delta: odd PCM16 length {len(pcm)}")]
        iid = d.get("item_id")
        item = self._items.get(iid) if isinstance(iid, str) else None
        if item is None and isinstance(iid, str):
            item = self._items[iid] = self._last_item = _Item(iid, rid)
        if item is not None:
            item.received_bytes += len(pcm)
        return [ReplyAudio(pcm, rid)]

    def _tool_call(self, d: dict[str, Any]) -> ToolCall:
        cid, name = str(d["call_id"]), str(d["name"])
        rid = str(d.get("response_id", self._active or ""))
        self._call_response[cid] = rid
        if rid in self._responses:
            self._responses[rid].calls.add(cid)
        raw = d.get("arguments", "{}")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return ToolCall(cid, name, {}, bad_arguments="'arguments' is not JSON")
        if not isinstance(args, dict):
            return ToolCall(cid, name, {}, bad_arguments="'arguments' is not a JSON object")
        return ToolCall(cid, name, args)

    def _done(self, r: dict[str, Any]) -> list[Any]:
        rid = str(r.get("id", self._active or ""))
        status = str(r.get("status", "completed"))
        resp = self._responses.pop(rid, None)
        if self._active == rid:
            self._active = None
        self._requested = 0  # whatever was asked for has come and gone
        cut = status in ("cancelled", "incomplete")
        out: list[Any] = []
        if resp is not None:
            text = resp.transcript if resp.transcript is not None else "".join(resp.text)
            if text:
                out.append(TranscriptAgent(rid, text, interrupted=cut))
                self.history.append(("assistant", text))
            if cut:  # the service drops the calls of a cancelled response; so do we
                for cid in resp.calls:
                    self._call_response.pop(cid, None)
        if status == "failed":
            details = r.get("status_details") or {}
            err = details.get("error") if isinstance(details, dict) else None
            message = err.get("message", "") if isinstance(err, dict) else ""
            out.append(SessionError("response_failed", str(message)))
        out.append(ReplyDone(rid, "interrupted" if cut else "completed"))
        return out
