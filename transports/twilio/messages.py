"""Twilio Media Streams messages, sans I/O: parse what Twilio sends, build what we send.

Twilio -> us (JSON text frames): ``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``. Us -> Twilio: ``media``, ``mark``, ``clear``. :func:`parse` never raises: a frame
that is not what the protocol says becomes :class:`BadMessage` with the reason (the
transport logs and counts it, and the call goes on).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Longest frame read from Twilio (a 20 ms media message is about 300 bytes).
MAX_MESSAGE_BYTES = 64 * 1024
#: The WebSocket's own limit, far above :data:`MAX_MESSAGE_BYTES`: a frame up to this size is
#: read, then refused (logged, counted, the call goes on); only a larger one closes the socket
#: (1009), since the WebSocket library holds a whole frame in memory before handing it over.
MAX_FRAME_BYTES = 16 * 1024 * 1024
DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True)
class Connected:
    protocol: str = ""


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str = ""
    custom_parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/x-mulaw"
    sample_rate: int = 8000
    channels: int = 1


@dataclass(frozen=True)
class Media:
    payload: bytes = field(repr=False)
    track: str = "inbound"
    timestamp: int | None = None


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Stop:
    call_sid: str = ""


@dataclass(frozen=True)
class BadMessage:
    reason: str


Message = Connected | Start | Media | Dtmf | Mark | Stop | BadMessage


def _str(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise ValueError(f"'{key}' missing or not a string")
    return v


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        raise ValueError(f"'{key}' missing or not an object")
    return v


def _start(d: dict[str, Any]) -> Start:
    s = _obj(d, "start")
    fmt = s.get("mediaFormat") or {}
    if not isinstance(fmt, dict):
        raise ValueError("'mediaFormat' is not an object")
    params = s.get("customParameters") or {}
    if not isinstance(params, dict):
        raise ValueError("'customParameters' is not an object")
    try:
        rate, channels = int(fmt.get("sampleRate", 8000)), int(fmt.get("channels", 1))
    except (TypeError, ValueError):
        raise ValueError("'mediaFormat' has a non-numeric rate or channel count") from None
    return Start(
        stream_sid=str(s.get("streamSid") or d.get("streamSid") or ""),
        call_sid=_str(s, "callSid"),
        account_sid=str(s.get("accountSid") or ""),
        custom_parameters={str(k): str(v) for k, v in params.items()},
        encoding=str(fmt.get("encoding", "audio/x-mulaw")),
        sample_rate=rate,
        channels=channels,
    )


def _media(d: dict[str, Any]) -> Media:
    m = _obj(d, "media")
    try:
        payload = binascii.a2b_base64(_str(m, "payload").encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("'payload' is not valid base64") from None
    ts = m.get("timestamp")
    try:
        timestamp = int(ts) if ts is not None else None
    except (TypeError, ValueError):
        timestamp = None
    return Media(payload, str(m.get("track", "inbound")), timestamp)


def _dtmf(d: dict[str, Any]) -> Dtmf:
    digit = _str(_obj(d, "dtmf"), "digit")
    if digit not in DIGITS:
        raise ValueError(f"'digit' {digit[:8]!r} is not a keypad digit")
    return Dtmf(digit)


_PARSERS: dict[str, Callable[[dict[str, Any]], Message]] = {
    "connected": lambda d: Connected(str(d.get("protocol", ""))),
    "start": _start,
    "media": _media,
    "dtmf": _dtmf,
    "mark": lambda d: Mark(_str(_obj(d, "mark"), "name")),
    "stop": lambda d: Stop(str((d.get("stop") or {}).get("callSid", ""))),
}


def parse(frame: str | bytes) -> Message:
    """One frame from Twilio as a typed message; never raises."""
    if isinstance(frame, bytes | bytearray):
        return BadMessage("binary frame (Media Streams sends JSON text)")
    if len(frame) > MAX_MESSAGE_BYTES:
        return BadMessage(f"frame of {len(frame)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(frame)
    except ValueError:
        return BadMessage("not JSON")
    if not isinstance(data, dict):
        return BadMessage("not a JSON object")
    event = data.get("event")
    parser = _PARSERS.get(event) if isinstance(event, str) else None
    if parser is None:
        return BadMessage(f"unknown event {str(event)[:32]!r}")
    try:
        return parser(data)
    except ValueError as exc:
        return BadMessage(f"{event}: {exc}")


# -- what we send -----------------------------------------------------------------------


def media(stream_sid: str, ulaw: bytes) -> str:
    payload = binascii.b2a_base64(ulaw, newline=False).decode("ascii")
    return json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
