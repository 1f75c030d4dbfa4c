"""The live console: one plain timestamped line per event off a terminal; colour and
in-place partial transcripts on a terminal."""

from __future__ import annotations

import io
import re

from botrun.core import events as ev
from botrun.core.console import Console
from botrun.core.events import BridgeEvent

CALL = [
    BridgeEvent(ev.PARTICIPANT_JOINED, {"id": "p1", "name": "Ann"}),
    BridgeEvent(ev.SESSION_STATE, {"state": "ready", "detail": "sess_1"}),
    BridgeEvent(ev.SPEECH_STARTED, {"participant_id": "p1", "name": "Ann"}),
    BridgeEvent(
        ev.TRANSCRIPT_USER, {"text": "where is", "final": False, "participant_name": "Ann"}
    ),
    BridgeEvent(
        ev.TRANSCRIPT_USER, {"text": "where is my order", "final": True, "participant_name": "Ann"}
    ),
    BridgeEvent(
        ev.TOOL_CALL,
        {
            "name": "lookup_order",
            "arguments": {"order_id": "A1"},
            "result": '{"found": true}',
            "error": None,
            "duration_ms": 12.3,
        },
    ),
    BridgeEvent(
        ev.TOOL_CALL,
        {
            "name": "lookup_order",
            "arguments": {"order_id": "B2"},
            "result": '{"error": "..."}',
            "error": "tool 'lookup_order' timed out after 5 s",
            "duration_ms": 5001.0,
        },
    ),
    BridgeEvent(ev.TRANSCRIPT_AGENT, {"text": "It ships", "final": False}),
    BridgeEvent(ev.TURN_METRICS, {"latency_ms": 812.4}),
    BridgeEvent(
        ev.TRANSCRIPT_AGENT, {"text": "It ships today", "final": True, "interrupted": True}
    ),
    BridgeEvent(ev.BARGE_IN, {"flushed_ms": 420.0}),
    BridgeEvent(ev.PARTICIPANT_LEFT, {"id": "p1", "name": "Ann", "reason": "left"}),
    BridgeEvent(ev.ERROR, {"message": "invalid_audio: bad base64"}),
]


def test_plain_output_is_one_timestamped_line_per_final_event() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    for e in CALL:
        console(e)
    lines = out.getvalue().splitlines()
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines)
    assert "\033" not in out.getvalue()  # no colour codes off a terminal
    text = [line[9:] for line in lines]
    assert text == [
        "+ Ann joined",
        "agent ready: sess_1",
        "… Ann is speaking",
        "Ann: where is my order",
        '  tool lookup_order({"order_id": "A1"}) -> {"found": true} (12 ms)',
        '  tool lookup_order({"order_id": "B2"}) failed (5001 ms): '
        "tool 'lookup_order' timed out after 5 s",
        "  (reply after 812 ms)",
        "bot: It ships today [interrupted]",
        "  (interrupted: dropped 420 ms)",
        "- Ann left",
        "error: invalid_audio: bad base64",
    ]


def test_terminal_output_updates_partials_in_place() -> None:
    out = io.StringIO()
    console = Console(out, tty=True)
    for e in CALL[2:5]:
        console(e)
    raw = out.getvalue()
    # partial lines are rewritten with \r and a clear-line code, finals end with a newline
    assert raw.count("\r\033[K") == 3
    assert raw.count("\n") == 1
    assert raw.endswith("Ann: where is my order\033[0m\n")
    assert "\033[36m" in raw  # the user's words in colour
