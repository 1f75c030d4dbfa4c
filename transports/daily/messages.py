"""Turns daily-python's raw error strings into one-line messages a user can act on.

Daily reports join failures as debug-formatted Rust enums, e.g.
``Connection(Api(RoomLookup(RoomInfoFetchFailed(Get(...Connect...)))))``. We recognise the
common families (network, not found, expired, refused) by keywords and keep a short, redacted
tail of the raw text so nothing is hidden.
"""

from __future__ import annotations

from botrun.core.secrets import redact

_MAX_RAW = 240

_FAMILIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("notfound", "not found", "no such room", "does not exist", "nonexistent"),
        "the room {url} does not exist (check the URL, or whether it was deleted)",
    ),
    (("expired", "roomexpired", "tokenexpired"), "the room {url} or its meeting token has expired"),
    (
        (
            "forbidden",
            "403",
            "unauthorized",
            "401",
            "not allowed",
            "notallowed",
            "invalid token",
            "invalidtoken",
            "tokenerror",
            "ejected",
            "knock",
            "private",
        ),
        "Daily refused the bot access to {url} (a private room needs a valid meeting token for "
        "this room: pass --token or set DAILY_API_KEY)",
    ),
    (
        (
            "connect",
            "lookup address",
            "dns",
            "network",
            "timedout",
            "timed out",
            "roomlookup",
            "roominfofetchfailed",
            "websocket",
        ),
        "cannot reach Daily to join {url} (network down, DNS failure or a firewall)",
    ),
)


def _short(raw: str) -> str:
    text = " ".join(redact(raw).split())
    return text if len(text) <= _MAX_RAW else text[:_MAX_RAW] + "…"


def short_error(raw: object) -> str:
    """An SDK error string on one line, redacted and cut to a readable length."""
    return _short(str(raw))


def join_error_message(raw: object, url: str) -> str:
    """A clear message for a join completion error (or an ``on_error`` during the join)."""
    text = str(raw)
    low = text.lower().replace("_", "")
    for keys, template in _FAMILIES:
        if any(k in low for k in keys):
            return f"{template.format(url=url)} [daily: {_short(text)}]"
    return f"could not join {url}: {_short(text)}"


def call_error_message(raw: object) -> str:
    """A clear message for an ``on_error`` during the call."""
    return f"Daily reported an error during the call: {_short(str(raw))}"


def is_request_error(message: str) -> bool:
    """``on_error`` also reports single failed requests ("Error handling startDialout: ...",
    "Error handling setParticipantAudioRenderer: ..."); only a failed join among them ends
    the call (other fatal problems arrive as a state change to "left")."""
    text = message.strip()
    return text.startswith("Error handling ") and not text.startswith("Error handling join")
