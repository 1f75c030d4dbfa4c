"""The page protocol: what the browser page and the server say to each other over the
WebSocket (no I/O here).

Page -> server: binary frames are PCM16 little-endian mono at the rate the page announced in
its ``hello`` (one per call: the transport drops any later one); text frames are JSON
objects: ``{"type": "hello", "rate": N}``, ``{"type": "mute", "muted": bool}``,
``{"type": "hangup"}``.

Server -> page: binary frames are the bot's voice, PCM16 mono at :data:`OUTPUT_RATE`; text
frames are ``{"type": "welcome", "rate": N}``, ``{"type": "event", "kind": ..., ...}`` (one
per bridge event, its fields), ``{"type": "flush"}`` (barge-in: drop what is queued),
``{"type": "busy"}`` and ``{"type": "ended", "reason": ...}``."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from botrun.core.events import BridgeEvent
from botrun.core.secrets import redact

#: The bot's voice goes to the page at the agent's own rate: no resampling on the way out.
OUTPUT_RATE = 24000
#: Rates the page may announce for its microphone (an AudioContext's range in practice).
MIN_RATE, MAX_RATE = 8000, 96000
#: Largest message the page may send: 1 s of 48 kHz PCM16 is 96 000 bytes.
MAX_BINARY = 192_000
MAX_TEXT = 4096
#: The WebSocket's own limit, far above the ones above: a message up to this size is read,
#: then dropped and counted (the call goes on); only a larger one closes the socket (1009),
#: since the WebSocket library holds a whole message in memory before handing it over.
MAX_FRAME = 16 * 1024 * 1024


class BadMessage(ValueError):
    """A message from the page that is dropped (the reason is the text)."""


@dataclass(frozen=True)
class Hello:
    rate: int


@dataclass(frozen=True)
class Mute:
    muted: bool


@dataclass(frozen=True)
class HangUp:
    pass


PageMessage = Hello | Mute | HangUp


def parse_text(text: str) -> PageMessage:
    """A text frame from the page; :class:`BadMessage` for anything else."""
    if len(text) > MAX_TEXT:
        raise BadMessage(f"text message of {len(text)} characters (limit {MAX_TEXT})")
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise BadMessage("not JSON") from None
    if not isinstance(msg, dict):
        raise BadMessage("not a JSON object")
    kind = msg.get("type")
    if kind == "hello":
        rate = msg.get("rate")
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate):
            raise BadMessage("hello without a numeric rate")
        if not MIN_RATE <= rate <= MAX_RATE or rate != int(rate):
            raise BadMessage(f"hello with rate {rate} (expected {MIN_RATE}..{MAX_RATE} Hz)")
        return Hello(int(rate))
    if kind == "mute":
        muted = msg.get("muted")
        if not isinstance(muted, bool):
            raise BadMessage("mute without a boolean 'muted'")
        return Mute(muted)
    if kind == "hangup":
        return HangUp()
    raise BadMessage(f"unknown message type {str(kind)[:40]!r}")


def check_audio(data: bytes) -> None:
    """A binary frame from the page: whole PCM16 samples, not oversized."""
    if len(data) > MAX_BINARY:
        raise BadMessage(f"audio message of {len(data)} bytes (limit {MAX_BINARY})")
    if len(data) % 2:
        raise BadMessage(f"audio message of {len(data)} bytes (odd: not PCM16)")


def _plain(value: Any) -> Any:
    """JSON-safe and redacted: secrets never reach the page."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return redact(str(value))


def event_message(event: BridgeEvent) -> str:
    """A bridge event as the page receives it."""
    return json.dumps({"type": "event", "kind": event.kind, **_plain(event.data)})


def control(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **_plain(fields)})
