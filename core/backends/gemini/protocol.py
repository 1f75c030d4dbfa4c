"""Gemini Live wire protocol, sans-I/O: the service's messages become the events of
:mod:`botrun.core.protocol` the bridge already consumes. No sockets, no asyncio.

What differs from the Voice Agent API, and how it is mapped:

* ``setup`` is the first message and fixes the config for the connection (its answer,
  ``setupComplete``, is ``session.ready``); a later config change needs a new connection;
* there are no reply ids and no speech events: a reply starts with the first model audio
  or output transcription after the last one ended and ends at ``turnComplete``; the user
  is taken to be speaking from their first input transcription (or the ``interrupted``
  that cut a reply) until the reply to them starts -- so turn latency is counted from the
  moment the model starts answering the transcribed words, not from the end of speech;
* ``interrupted`` is a barge-in: the reply is over (interrupted) and model audio that
  still arrives for it is stale until the user's next input transcription;
* a ``toolCall`` ends the reply that made it (the model waits for ``toolResponse``, then
  goes on by itself: no ``response.create``); ``toolCallCancellation`` withdraws calls;
* ``goAway`` announces the end of the connection, and ``sessionResumptionUpdate`` hands
  out the handle a new connection resumes the session with (botrun's ``session.resume``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from ...protocol import (
    ProtocolError,
    ReplyAudio,
    ReplyCreate,
    ReplyDone,
    ReplyStarted,
    SessionEnd,
    SessionReady,
    SessionUpdate,
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
INPUT_RATE = 16000
#: Server message fields the wire knows and that carry nothing the bridge needs.
QUIET = frozenset({"usageMetadata"})


@dataclass(frozen=True)
class GoAway:
    """The service will close this connection in ``time_left`` (a duration string)."""

    time_left: str = ""


@dataclass(frozen=True)
class ToolCancelled:
    """``toolCallCancellation``: the model no longer waits for these calls."""

    call_ids: tuple[str, ...]


@dataclass
class WireFrames:
    """Frames that exist only on this wire (the greeting's turn): sent once ready."""

    frames: list[str]


def _dump(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _cut(text: str) -> str:
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"...(+{len(text) - RAW_KEEP})"


def greeting_text(greeting: str) -> str:
    return f'Say exactly this greeting, and nothing else: "{greeting}"'


def setup_message(cfg: dict[str, Any], model: str, handle: str | None) -> dict[str, Any]:
    """``setup`` for the neutral config ``cfg`` (see ``core/protocol.session_payload``),
    resuming the session with ``handle`` when given."""
    inp, out = _dict(cfg.get("input")), _dict(cfg.get("output"))
    td = _dict(inp.get("turn_detection"))
    setup: dict[str, Any] = {
        "model": model,
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "speechConfig": {
                "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": out.get("voice", "Puck")}}
            },
        },
        "realtimeInputConfig": {
            "automaticActivityDetection": {"silenceDurationMs": int(td.get("min_silence", 1000))},
            "activityHandling": (
                "START_OF_ACTIVITY_INTERRUPTS"
                if td.get("interrupt_response", True)
                else "NO_INTERRUPTION"
            ),
        },
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "sessionResumption": {"handle": handle} if handle else {},
    }
    if cfg.get("system_prompt"):
        setup["systemInstruction"] = {"parts": [{"text": cfg["system_prompt"]}]}
    tools = [t for t in cfg.get("tools", []) if isinstance(t, dict)]
    if tools:
        setup["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t.get("name", ""),
                        "description": t.get("description", ""),
                        "parameters": t.get("parameters", {"type": "object", "properties": {}}),
                    }
                    for t in tools
                ]
            }
        ]
    return {"setup": setup}


def text_turn(text: str) -> str:
    """A user text turn the model answers (``clientContent``)."""
    turn = {"role": "user", "parts": [{"text": text}]}
    return _dump({"clientContent": {"turns": [turn], "turnComplete": True}})


class GeminiWire:
    """One call's translation state (across its connections)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.handle: str | None = None  # the latest session-resumption handle
        self.session_key = "gemini-1"  # botrun's id for the session a handle continues
        self._sessions = 1
        self.greeting: str | None = None
        self.resuming = False
        self._set_up = False  # a setup was sent on some connection
        self._reply: str | None = None  # the reply in progress (botrun's id)
        self._replies = 0
        self._stale: str | None = None  # the interrupted reply, until new user input
        self._agent_text: list[str] = []
        self._user_text = ""
        self._user_speaking = False

    @property
    def between_turns(self) -> bool:
        """No reply in progress and none owed to words the user has said."""
        return self._reply is None and not self._user_speaking and not self._user_text

    # -- connection start -----------------------------------------------------------------

    def connection_opened(self) -> None:
        self._reply = None
        self._stale = None
        self._agent_text = []
        self._user_text = ""
        self._user_speaking = False

    def forget(self) -> None:
        """The session cannot be resumed: the next setup starts a new one."""
        self.handle = None
        self._sessions += 1
        self.session_key = f"gemini-{self._sessions}"

    def first_frames(self, cfg: dict[str, Any], resume: bool) -> list[str]:
        self.resuming = resume and self.handle is not None
        if not self.resuming and self._set_up:
            self.forget()  # a new session: a new id, so botrun's session rules see one
        self._set_up = True
        self.greeting = None if self.resuming else (cfg.get("greeting") or None)
        handle = self.handle if self.resuming else None
        return [_dump(setup_message(cfg, self.model, handle))]

    def take_greeting(self) -> list[str]:
        greeting, self.greeting = self.greeting, None
        return [text_turn(greeting_text(greeting))] if greeting else []

    # -- botrun -> service --------------------------------------------------------------

    def encode(self, ev: Any) -> list[str]:
        match ev:
            case WireFrames(frames=frames):
                return list(frames)
            case ToolResult(call_id=cid, result=result):
                try:
                    response: Any = json.loads(result)
                except ValueError:
                    response = result
                if not isinstance(response, dict):
                    response = {"result": response}
                fr = {"id": cid, "response": response}
                return [_dump({"toolResponse": {"functionResponses": [fr]}})]
            case ReplyCreate(instructions=instructions):
                return [text_turn(instructions or "Please go on.")]
            case SessionUpdate():
                return []  # fixed for the connection: applied at the next setup
            case SessionEnd():
                return []
        raise TypeError(f"not a client event for Gemini Live: {ev!r}")

    def audio_message(self, pcm16k: bytes) -> bytes:
        return (
            b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"'
            + binascii.b2a_base64(pcm16k, newline=False)
            + b'"}}}'
        )

    # -- service -> botrun --------------------------------------------------------------

    def decode(self, msg: str | bytes) -> list[Any]:
        """The events one message means. Never raises. (Gemini may send JSON as binary
        frames: UTF-8 bytes are decoded like text.)"""
        if isinstance(msg, bytes | bytearray | memoryview):
            try:
                msg = bytes(msg).decode("utf-8")
            except UnicodeDecodeError:
                return [ProtocolError(f"binary frame of {len(msg)} bytes that is not UTF-8")]
        try:
            data = json.loads(msg)
        except (ValueError, RecursionError) as exc:
            return [ProtocolError(f"malformed JSON: {exc}", _cut(msg))]
        if not isinstance(data, dict):
            return [ProtocolError("expected a JSON object", _cut(msg))]
        out: list[Any] = []
        known = False
        try:
            for key, value in data.items():
                handler = self._HANDLERS.get(key)
                if handler is not None:
                    known = True
                    out.extend(handler(self, _dict(value)))
                elif key in QUIET:
                    known = True
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return [*out, ProtocolError(f"bad message ({exc})", _cut(msg))]
        if not known:
            return [UnknownEvent(next(iter(data), "?"), data)]
        return out

    def _setup_complete(self, _d: dict[str, Any]) -> list[Any]:
        return [SessionReady(self.session_key)]

    def _begin_reply(self) -> list[Any]:
        """Model output arrived with no reply in progress: the user's turn is over."""
        out = self._end_user_turn()
        self._replies += 1
        self._reply = f"{self.session_key}-r{self._replies}"
        self._agent_text = []
        out.append(ReplyStarted(self._reply))
        return out

    def _end_user_turn(self) -> list[Any]:
        out: list[Any] = []
        if self._user_speaking:
            out.append(SpeechStopped())
            self._user_speaking = False
        if self._user_text:
            out.append(TranscriptUser(self._user_text.strip()))
            self._user_text = ""
        return out

    def _end_reply(self, status: str) -> list[Any]:
        rid, self._reply = self._reply, None
        if rid is None:
            return []
        out: list[Any] = []
        text = "".join(self._agent_text).strip()
        self._agent_text = []
        if text:
            out.append(TranscriptAgent(rid, text, interrupted=status == "interrupted"))
        out.append(ReplyDone(rid, status))
        return out

    def _server_content(self, d: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        if d.get("interrupted") and self._reply is not None:
            if not self._user_speaking:
                self._user_speaking = True
                out.append(SpeechStarted())
            self._stale = self._reply
            out.extend(self._end_reply("interrupted"))
        inp = _dict(d.get("inputTranscription"))
        if inp.get("text"):
            self._stale = None  # the user's new turn: what follows is a new reply
            if not self._user_speaking and self._reply is None:
                self._user_speaking = True
                out.append(SpeechStarted())
            self._user_text += str(inp["text"])
            out.append(TranscriptUserDelta(self._user_text.strip()))
        parts = _dict(d.get("modelTurn")).get("parts") or []
        for part in parts if isinstance(parts, list) else []:
            blob = _dict(_dict(part).get("inlineData"))
            if "data" not in blob:
                continue
            try:
                pcm = base64.b64decode(blob["data"], validate=True)
            except (binascii.Error, ValueError, TypeError):
                out.append(ProtocolError("modelTurn: inlineData is not valid base64"))
                continue
            if len(pcm) % 2:
                out.append(ProtocolError(f"modelTurn: odd PCM16 length {len(pcm)}"))
                continue
            if self._stale is not None:
                out.append(ReplyAudio(pcm, self._stale))  # the session drops and counts it
                continue
            if self._reply is None:
                out.extend(self._begin_reply())
            out.append(ReplyAudio(pcm, self._reply))
        otr = _dict(d.get("outputTranscription"))
        if otr.get("text") and self._stale is None:
            if self._reply is None:
                out.extend(self._begin_reply())
            assert self._reply is not None
            self._agent_text.append(str(otr["text"]))
            out.append(TranscriptAgentDelta(self._reply, str(otr["text"])))
        if d.get("turnComplete"):
            self._stale = None
            if self._reply is None:
                out.extend(self._end_user_turn())
            out.extend(self._end_reply("completed"))
        return out

    def _tool_call(self, d: dict[str, Any]) -> list[Any]:
        out = self._end_user_turn() if self._reply is None else []
        out.extend(self._end_reply("completed"))  # the model waits for the results
        for fc in d.get("functionCalls") or []:
            fc = _dict(fc)
            cid, name, args = str(fc["id"]), str(fc["name"]), fc.get("args", {})
            if not isinstance(args, dict):
                out.append(ToolCall(cid, name, {}, bad_arguments="'args' is not an object"))
            else:
                out.append(ToolCall(cid, name, args))
        return out

    def _cancellation(self, d: dict[str, Any]) -> list[Any]:
        ids = d.get("ids") or []
        return [ToolCancelled(tuple(str(i) for i in ids if isinstance(i, str)))]

    def _go_away(self, d: dict[str, Any]) -> list[Any]:
        return [GoAway(str(d.get("timeLeft", "")))]

    def _resumption(self, d: dict[str, Any]) -> list[Any]:
        if d.get("resumable") and isinstance(d.get("newHandle"), str) and d["newHandle"]:
            self.handle = d["newHandle"]
        return []

    _HANDLERS: ClassVar[dict[str, Any]] = {
        "setupComplete": _setup_complete,
        "serverContent": _server_content,
        "toolCall": _tool_call,
        "toolCallCancellation": _cancellation,
        "goAway": _go_away,
        "sessionResumptionUpdate": _resumption,
    }
