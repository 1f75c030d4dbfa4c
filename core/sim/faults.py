"""Injected faults: the junk frames a flaky service sends, and how refused connections close.

The scenario's ``[faults]`` table decides *when* (see ``FaultSettings``); this module only says
*what*: the exact bytes of each junk frame and the close code for each connect-time error code.
"""

from __future__ import annotations

import json

#: Close codes the service uses for errors that end the connection.
CLOSE_POLICY = 1008  # auth, forbidden, session_not_found (documented variant)
CLOSE_TRY_AGAIN = 1013  # at capacity / rate limited: retry with backoff
CLOSE_INTERNAL = 1011  # worker failed: transient, retry
CLOSE_NORMAL = 1000

CONNECT_CLOSE_CODES: dict[str, int] = {
    "UNAUTHORIZED": CLOSE_POLICY,
    "FORBIDDEN": CLOSE_POLICY,
    "server_error": CLOSE_TRY_AGAIN,
    "rate_limited": CLOSE_TRY_AGAIN,
    "internal_error": CLOSE_INTERNAL,
    "agent_init_failed": CLOSE_INTERNAL,
    "agent_timeout": CLOSE_INTERNAL,
}

CONNECT_MESSAGES: dict[str, str] = {
    "UNAUTHORIZED": "missing or invalid API key or token",
    "FORBIDDEN": "this key may not use the voice agent API",
    "server_error": "the service is at capacity, retry with backoff",
    "rate_limited": "too many connections, retry with backoff",
    "internal_error": "internal error",
    "agent_init_failed": "the agent worker failed to start",
    "agent_timeout": "the agent worker was not ready in time",
}

#: Type of the unknown server event the simulator can send (clients must ignore it).
UNKNOWN_EVENT_TYPE = "sim.unknown_event"


def junk_frame(kind: str, oversized_bytes: int) -> str | bytes:
    """The frame for one ``FaultSettings.inject`` kind."""
    if kind == "malformed_json":
        return '{"type": "reply.audio", "data": "AAAA'  # truncated mid-string
    if kind == "binary_frame":
        return b"\x00\x01binary-frame\xff"
    if kind == "unknown_event":
        return json.dumps({"type": UNKNOWN_EVENT_TYPE, "note": "clients must ignore this"})
    if kind == "oversized_message":
        head = '{"type": "sim.padding", "pad": "'
        tail = '"}'
        return head + "x" * max(0, oversized_bytes - len(head) - len(tail)) + tail
    raise ValueError(f"unknown fault kind {kind!r}")
