"""The voice-agent wire protocol, sans-I/O: typed events, ``encode`` and ``decode``.

This module knows the JSON messages of AssemblyAI's Voice Agent API (see
``shared/reference/voice-agent-protocol.md``) and nothing about sockets or event loops, in the
way the ``websockets`` and ``h11`` protocol layers are separate from their I/O. It imports no
asyncio and no websockets, so every rule is testable with plain strings.

Decoding never raises. Whatever arrives from the network (malformed JSON, a non-object, a
missing or non-string ``type``, wrong field types, invalid base64, odd-length PCM, a binary
frame) becomes a :class:`ProtocolError` value that the caller logs and counts; an unknown
``type`` becomes an :class:`UnknownEvent` the caller ignores (the service adds events over
time).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import AgentConfig
    from .tools import ToolSpec

#: The only audio format botrun speaks to the agent: PCM16 LE mono at 24 kHz.
AUDIO_FORMAT: dict[str, Any] = {"encoding": "audio/pcm", "sample_rate": 24000}
SAMPLE_RATE = 24000
#: Telephony pass-through (Twilio Media Streams): G.711 μ-law at 8 kHz both ways.
PCMU_FORMAT: dict[str, Any] = {"encoding": "audio/pcmu", "sample_rate": 8000}
BYTES_PER_SECOND = SAMPLE_RATE * 2

#: How much of an offending message a :class:`ProtocolError` keeps (for the log line).
RAW_KEEP = 200

# -- error codes (session.error.code) ----------------------------------------------------

#: The key is wrong or lacks access: stop, retrying cannot help.
FATAL_AUTH: frozenset[str] = frozenset({"UNAUTHORIZED", "FORBIDDEN"})
#: Worth a reconnect with backoff (and a resume of the same session).
TRANSIENT: frozenset[str] = frozenset(
    {"server_error", "agent_init_failed", "agent_timeout", "rate_limited", "internal_error"}
)
#: The session id is gone: start a fresh session with the same configuration.
FRESH_SESSION: frozenset[str] = frozenset(
    {"session_not_found", "session_forbidden", "session_expired"}
)
#: Reported while the session stays open: log and carry on.
RECOVERABLE: frozenset[str] = frozenset(
    {"invalid_format", "invalid_audio", "invalid_value", "immutable_field", "invalid_config"}
)
#: Answered to the first ``session.update`` (before ``session.ready``) they mean the service
#: refused the session's configuration: fatal, a retry would send the same config.
SETUP_REFUSED: frozenset[str] = frozenset({"invalid_value", "invalid_config", "invalid_format"})
#: WebSocket close codes after which the same session can be resumed.
TRANSIENT_CLOSE_CODES: frozenset[int] = frozenset({1001, 1005, 1006, 1009, 1011, 1012, 1013})
#: Session fields the service refuses to change once applied (``immutable_field``).
IMMUTABLE_FIELDS: tuple[tuple[str, ...], ...] = (
    ("greeting",),
    ("output", "voice"),
    ("output", "format"),
    ("agent_id",),
)


# -- client -> server ---------------------------------------------------------------------


@dataclass(frozen=True)
class SessionUpdate:
    """``session.update``: the first message of a new session; re-sendable to change
    mutable fields (prompt, turn detection, key terms, tools, volume)."""

    session: dict[str, Any]


@dataclass(frozen=True)
class InputAudio:
    """``input.audio``: raw PCM16 24 kHz; :func:`encode` base64s it."""

    audio: bytes


@dataclass(frozen=True)
class ToolResult:
    """``tool.result``: ``result`` is a JSON *string* (the service ignores objects)."""

    call_id: str
    result: str


@dataclass(frozen=True)
class SessionResume:
    """``session.resume``: the first message of a new socket that continues a session."""

    session_id: str


@dataclass(frozen=True)
class ReplyCreate:
    """``reply.create``: ask the agent to reply now, optionally with extra instructions."""

    instructions: str | None = None


@dataclass(frozen=True)
class SessionEnd:
    """``session.end``: the service answers ``session.ended`` and closes the socket."""


ClientEvent = SessionUpdate | InputAudio | ToolResult | SessionResume | ReplyCreate | SessionEnd


# -- server -> client ---------------------------------------------------------------------


@dataclass(frozen=True)
class SessionReady:
    session_id: str


@dataclass(frozen=True)
class SessionUpdated:
    config: dict[str, Any]


@dataclass(frozen=True)
class SpeechStarted:
    timestamp: float | str | None = None


@dataclass(frozen=True)
class SpeechStopped:
    timestamp: float | str | None = None


@dataclass(frozen=True)
class TranscriptUserDelta:
    """The whole partial transcript so far (replace, do not append)."""

    text: str
    item_id: str = ""


@dataclass(frozen=True)
class TranscriptUser:
    text: str
    item_id: str = ""


@dataclass(frozen=True)
class ReplyStarted:
    reply_id: str


@dataclass(frozen=True)
class ReplyAudio:
    """Decoded reply audio. The wire event has no ``reply_id``; the agent client fills it
    in from the reply in progress."""

    pcm: bytes = field(repr=False)
    reply_id: str | None = None


@dataclass(frozen=True)
class TranscriptAgentDelta:
    reply_id: str
    delta: str
    start_ms: float | None = None
    end_ms: float | None = None


@dataclass(frozen=True)
class TranscriptAgent:
    reply_id: str
    text: str
    interrupted: bool = False


@dataclass(frozen=True)
class ReplyDone:
    reply_id: str
    status: str = "completed"  # "completed" | "interrupted"

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]
    #: Why the call's ``arguments`` are unusable (not a JSON object); ``arguments`` is then
    #: empty and the call is answered with an error result instead of being run.
    bad_arguments: str | None = None


@dataclass(frozen=True)
class SessionError:
    code: str
    message: str = ""
    param: str | None = None


@dataclass(frozen=True)
class SessionEnded:
    session_duration_seconds: float = 0.0
    audio_duration_seconds: float = 0.0


@dataclass(frozen=True)
class UnknownEvent:
    """A well-formed event of a type this version does not know: ignore it."""

    type: str
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ProtocolError:
    """A message that could not be decoded; ``raw`` is truncated to :data:`RAW_KEEP` chars."""

    reason: str
    raw: str = ""


ServerEvent = (
    SessionReady
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | TranscriptUserDelta
    | TranscriptUser
    | ReplyStarted
    | ReplyAudio
    | TranscriptAgentDelta
    | TranscriptAgent
    | ReplyDone
    | ToolCall
    | SessionError
    | SessionEnded
)


# -- client-level notices (made by the agent client, never on the wire) ------------------


@dataclass(frozen=True)
class Reconnecting:
    """The connection was lost (``reason``); attempt ``attempt`` follows after ``delay_s``."""

    attempt: int
    reason: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class Resumed:
    """A reconnect resumed the same session: context kept, the in-flight reply lost."""

    session_id: str


@dataclass(frozen=True)
class NewSession:
    """The old session could not be resumed; a fresh one with the same config is ready."""

    session_id: str
    previous_session_id: str | None = None


@dataclass(frozen=True)
class ToolDone:
    """A tool call finished: the result the agent gets (a JSON string), ``error`` (why there
    is no real result, or None), how long it took and whether the result was cut to size."""

    call_id: str
    name: str
    arguments: Any
    result: str
    error: str | None = None
    duration_ms: float = 0.0
    truncated: bool = False


@dataclass(frozen=True)
class ReplyMuted:
    """The user started speaking over reply ``reply_id`` with ``interrupt_response`` on: the
    session drops the rest of its audio. Queued just before that ``input.speech.started``, so
    the consumer knows, in event order, that a reply was cut (and flushes what it queued)."""

    reply_id: str


Notice = Reconnecting | Resumed | NewSession | ReplyMuted | ToolDone


# -- encoding -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_dict(event: ClientEvent) -> dict[str, Any]:
    """The JSON object of a client event."""
    match event:
        case SessionUpdate(session=s):
            return {"type": "session.update", "session": s}
        case InputAudio(audio=a):
            return {"type": "input.audio", "audio": _b64(a)}
        case ToolResult(call_id=c, result=r):
            return {"type": "tool.result", "call_id": c, "result": r}
        case SessionResume(session_id=s):
            return {"type": "session.resume", "session_id": s}
        case ReplyCreate(instructions=i):
            return (
                {"type": "reply.create"}
                if i is None
                else {"type": "reply.create", "instructions": i}
            )
        case SessionEnd():
            return {"type": "session.end"}
    raise TypeError(f"not a client event: {event!r}")


def encode(event: ClientEvent) -> str:
    """JSON text of a client event, ready for a WebSocket text frame."""
    if isinstance(event, InputAudio):
        return encode_input_audio(event.audio).decode("ascii")
    return json.dumps(to_dict(event), separators=(",", ":"), ensure_ascii=False)


_INPUT_AUDIO_HEAD = b'{"type":"input.audio","audio":"'


def encode_input_audio(pcm: bytes) -> bytes:
    """``input.audio`` for ``pcm`` as UTF-8 JSON bytes, to send as a text frame
    (``ws.send(data, text=True)``): the same text as ``encode(InputAudio(pcm))`` without a
    dict, ``json.dumps`` or a str round trip (2.8 us instead of 15.6 us for 20 ms at
    24 kHz; it runs 50 times a second per call). Base64 never needs JSON escaping."""
    return _INPUT_AUDIO_HEAD + binascii.b2a_base64(pcm, newline=False) + b'"}'


def encode_server(event: ServerEvent) -> str:
    """JSON text of a server event (for test servers and the simulator)."""
    d: dict[str, Any]
    match event:
        case SessionReady(session_id=s):
            d = {"type": "session.ready", "session_id": s}
        case SessionUpdated(config=c):
            d = {"type": "session.updated", "config": c}
        case SpeechStarted(timestamp=t):
            d = {"type": "input.speech.started", "timestamp": t}
        case SpeechStopped(timestamp=t):
            d = {"type": "input.speech.stopped", "timestamp": t}
        case TranscriptUserDelta(text=t, item_id=i):
            d = {"type": "transcript.user.delta", "text": t, "item_id": i}
        case TranscriptUser(text=t, item_id=i):
            d = {"type": "transcript.user", "text": t, "item_id": i}
        case ReplyStarted(reply_id=r):
            d = {"type": "reply.started", "reply_id": r}
        case ReplyAudio(pcm=p):
            d = {"type": "reply.audio", "data": _b64(p)}
        case TranscriptAgentDelta(reply_id=r, delta=x, start_ms=s, end_ms=e):
            d = {
                "type": "transcript.agent.delta",
                "reply_id": r,
                "delta": x,
                "start_ms": s,
                "end_ms": e,
            }
        case TranscriptAgent(reply_id=r, text=t, interrupted=i):
            d = {"type": "transcript.agent", "reply_id": r, "text": t, "interrupted": i}
        case ReplyDone(reply_id=r, status=s):
            d = {"type": "reply.done", "reply_id": r, "status": s}
        case ToolCall(call_id=c, name=n, arguments=a):
            d = {"type": "tool.call", "call_id": c, "name": n, "arguments": a}
        case SessionError(code=c, message=m, param=p):
            d = {"type": "session.error", "code": c, "message": m}
            if p is not None:
                d["param"] = p
        case SessionEnded(session_duration_seconds=s, audio_duration_seconds=a):
            d = {
                "type": "session.ended",
                "session_duration_seconds": s,
                "audio_duration_seconds": a,
            }
        case _:
            raise TypeError(f"not a server event: {event!r}")
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


# -- decoding -------------------------------------------------------------------------------


class _Bad(Exception):
    """Internal: a field failed validation (turned into a ProtocolError)."""


def _str(d: dict[str, Any], key: str, default: str | None = None, *, required: bool = False) -> str:
    v = d.get(key)
    if v is None:
        if required or default is None:
            raise _Bad(f"missing string field '{key}'")
        return default
    if not isinstance(v, str):
        raise _Bad(f"field '{key}' must be a string, got {type(v).__name__}")
    return v


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise _Bad(f"field '{key}' must be a string, got {type(v).__name__}")
    return v


def _num(d: dict[str, Any], key: str) -> float | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"field '{key}' must be a number, got {type(v).__name__}")
    return float(v)


def _stamp(d: dict[str, Any]) -> float | str | None:
    v = d.get("timestamp")
    if v is None or isinstance(v, str):
        return v
    return _num(d, "timestamp")


def _bool(d: dict[str, Any], key: str, default: bool) -> bool:
    v = d.get(key, default)
    if not isinstance(v, bool):
        raise _Bad(f"field '{key}' must be a boolean, got {type(v).__name__}")
    return v


def _obj(d: dict[str, Any], key: str, *, required: bool = False) -> dict[str, Any]:
    v = d.get(key)
    if v is None and not required:
        return {}
    if isinstance(v, str) and key == "arguments":
        # OpenAI-style JSON-string arguments: accept them, they mean the same thing.
        try:
            v = json.loads(v)
        except ValueError:
            raise _Bad("field 'arguments' is a string that is not JSON") from None
    if not isinstance(v, dict):
        raise _Bad(f"field '{key}' must be an object, got {type(v).__name__}")
    return v


def _audio(d: dict[str, Any], key: str, pcm16: bool) -> bytes:
    v = d.get(key)
    if not isinstance(v, str):
        raise _Bad(f"field '{key}' must be a base64 string")
    try:  # b64decode(validate=True)'s own check, on the text as it is (35 -> 21 us a chunk)
        pcm = binascii.a2b_base64(v, strict_mode=True)
    except (binascii.Error, ValueError):
        raise _Bad(f"field '{key}' is not valid base64") from None
    if pcm16 and len(pcm) % 2:
        raise _Bad(f"field '{key}' holds an odd number of bytes ({len(pcm)}) for PCM16")
    return pcm


def _dec_tool_call(d: dict[str, Any]) -> ToolCall:
    call_id, name = _str(d, "call_id", required=True), _str(d, "name", required=True)
    try:
        return ToolCall(call_id, name, _obj(d, "arguments"))
    except _Bad as bad:  # answerable: the agent gets an error result instead of waiting
        return ToolCall(call_id, name, {}, bad_arguments=str(bad))


def _dec_ended(d: dict[str, Any]) -> SessionEnded:
    return SessionEnded(
        _num(d, "session_duration_seconds") or 0.0, _num(d, "audio_duration_seconds") or 0.0
    )


_SERVER: dict[str, Callable[[dict[str, Any], bool], Any]] = {
    "session.ready": lambda d, _: SessionReady(_str(d, "session_id", required=True)),
    "session.updated": lambda d, _: SessionUpdated(_obj(d, "config") or _obj(d, "session")),
    "input.speech.started": lambda d, _: SpeechStarted(_stamp(d)),
    "input.speech.stopped": lambda d, _: SpeechStopped(_stamp(d)),
    "transcript.user.delta": lambda d, _: TranscriptUserDelta(
        _str(d, "text", ""), _str(d, "item_id", "")
    ),
    "transcript.user": lambda d, _: TranscriptUser(_str(d, "text", ""), _str(d, "item_id", "")),
    "reply.started": lambda d, _: ReplyStarted(_str(d, "reply_id", "")),
    "reply.audio": lambda d, pcm16: ReplyAudio(_audio(d, "data", pcm16), _opt_str(d, "reply_id")),
    "transcript.agent.delta": lambda d, _: TranscriptAgentDelta(
        _str(d, "reply_id", ""), _str(d, "delta", ""), _num(d, "start_ms"), _num(d, "end_ms")
    ),
    "transcript.agent": lambda d, _: TranscriptAgent(
        _str(d, "reply_id", ""), _str(d, "text", ""), _bool(d, "interrupted", False)
    ),
    "reply.done": lambda d, _: ReplyDone(_str(d, "reply_id", ""), _str(d, "status", "completed")),
    "tool.call": lambda d, _: _dec_tool_call(d),
    "session.error": lambda d, _: SessionError(
        _str(d, "code", required=True), _str(d, "message", ""), _opt_str(d, "param")
    ),
    "session.ended": lambda d, _: _dec_ended(d),
}

_CLIENT: dict[str, Callable[[dict[str, Any], bool], Any]] = {
    "session.update": lambda d, _: SessionUpdate(_obj(d, "session")),
    "input.audio": lambda d, pcm16: InputAudio(_audio(d, "audio", pcm16)),
    "tool.result": lambda d, _: ToolResult(
        _str(d, "call_id", required=True), _str(d, "result", required=True)
    ),
    "session.resume": lambda d, _: SessionResume(_str(d, "session_id", required=True)),
    "reply.create": lambda d, _: ReplyCreate(_opt_str(d, "instructions")),
    "session.end": lambda d, _: SessionEnd(),
}


def _truncate(text: str) -> str:
    return text if len(text) <= RAW_KEEP else text[:RAW_KEEP] + f"...(+{len(text) - RAW_KEEP})"


def _decode(
    text: str | bytes, table: dict[str, Callable[[dict[str, Any], bool], Any]], pcm16: bool
) -> Any:
    if isinstance(text, bytes | bytearray | memoryview):
        return ProtocolError(
            f"binary frame of {len(text)} bytes (expected JSON text)",
            _truncate(bytes(text[:RAW_KEEP]).hex()),
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return ProtocolError(f"malformed JSON: {exc}", _truncate(text))
    if not isinstance(data, dict):
        return ProtocolError(f"expected a JSON object, got {type(data).__name__}", _truncate(text))
    kind = data.get("type")
    if not isinstance(kind, str):
        return ProtocolError("missing or non-string 'type'", _truncate(text))
    dec = table.get(kind)
    if dec is None:
        return UnknownEvent(kind, data)
    try:
        return dec(data, pcm16)
    except _Bad as exc:
        return ProtocolError(f"{kind}: {exc}", _truncate(text))


def decode(text: str | bytes, *, pcm16: bool = True) -> ServerEvent | UnknownEvent | ProtocolError:
    """Decode one server message. Never raises.

    ``pcm16=False`` accepts odd-length audio (G.711 μ-law/A-law output)."""
    return _decode(text, _SERVER, pcm16)


def decode_client(
    text: str | bytes, *, pcm16: bool = True
) -> ClientEvent | UnknownEvent | ProtocolError:
    """Decode one client message (for servers: the simulator, test servers). Never raises."""
    return _decode(text, _CLIENT, pcm16)


# -- the session object ------------------------------------------------------------------


def tool_payload(spec: ToolSpec) -> dict[str, Any]:
    """A tool as the service expects it: flat, not OpenAI's nested ``function``."""
    out: dict[str, Any] = {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
    }
    if spec.execution_mode is not None:
        out["execution_mode"] = spec.execution_mode
    return out


def session_payload(
    cfg: AgentConfig,
    tools: list[ToolSpec] | tuple[ToolSpec, ...] = (),
    audio_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``session`` object of the first ``session.update``, built from the bot config.

    Audio is PCM16 at 24 kHz both ways (the bridge resamples) unless ``audio_format`` says
    otherwise (:data:`PCMU_FORMAT`: a phone call's μ-law passed through untouched); empty optional
    values (greeting, key terms, volume, tools) are left out so service defaults apply.
    A whole ``BotConfig`` is accepted too (its ``agent`` section is used)."""
    cfg = getattr(cfg, "agent", cfg)
    td = cfg.input.turn_detection
    session: dict[str, Any] = {"system_prompt": cfg.system_prompt}
    if cfg.greeting:
        session["greeting"] = cfg.greeting
    fmt = dict(audio_format or AUDIO_FORMAT)
    inp: dict[str, Any] = {
        "format": dict(fmt),
        "turn_detection": {
            "vad_threshold": td.vad_threshold,
            "min_silence": td.min_silence,
            "max_silence": td.max_silence,
            "interrupt_response": td.interrupt_response,
        },
    }
    if getattr(td, "semantic_vad", False):  # OpenAI only (other backends refuse it at load)
        inp["turn_detection"]["semantic_vad"] = True
    if cfg.input.keyterms:
        inp["keyterms"] = list(cfg.input.keyterms)
    session["input"] = inp
    out: dict[str, Any] = {"voice": cfg.voice, "format": dict(fmt)}
    if cfg.volume is not None:
        out["volume"] = cfg.volume
    session["output"] = out
    if tools:
        session["tools"] = [tool_payload(t) for t in tools]
    return session


def get_path(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``d[path[0]][path[1]]...`` or ``None`` when any level is missing."""
    node: Any = d
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def merge_session(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``changes`` recursively (objects merge, anything else replaces,
    so a new ``tools`` list replaces the old one, as the service does)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_session(out[key], value)
        else:
            out[key] = value
    return out
