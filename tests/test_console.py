"""The live console: one plain timestamped line per event off a terminal; colour and
in-place partial transcripts on a terminal."""

from __future__ import annotations

import io
import json
import re
import threading
from pathlib import Path

from botrun.core import events as ev
from botrun.core.console import Console
from botrun.core.transcripts import TranscriptWriter

CALL: list[ev.BridgeEvent] = [
    ev.ParticipantJoined("p1", "Ann"),
    ev.SessionStateChanged("ready", "sess_1"),
    ev.SpeechStarted("p1", "Ann"),
    ev.UserTranscript("where is", final=False, participant_name="Ann"),
    ev.UserTranscript("where is my order", final=True, participant_name="Ann"),
    ev.ToolCalled(
        "c1", "lookup_order", {"order_id": "A1"}, '{"found": true}', None, duration_ms=12.3
    ),
    ev.ToolCalled(
        "c2",
        "lookup_order",
        {"order_id": "B2"},
        '{"error": "..."}',
        "tool 'lookup_order' timed out after 5 s",
        duration_ms=5001.0,
    ),
    ev.AgentTranscript("It ships", final=False),
    ev.ReplyStarted(latency_ms=812.4),
    ev.AgentTranscript("It ships today", final=True, interrupted=True),
    ev.ReplyInterrupted(flushed_ms=420.0),
    ev.ReplyDone("interrupted"),
    ev.TurnMetrics(latency_ms=812.4, reply_ms=1500.0, interrupted=True),
    ev.ParticipantLeft("p1", "Ann", "left"),
    ev.ErrorOccurred("invalid_audio: bad base64"),
]


def test_events_are_typed_with_a_kind_and_a_time() -> None:
    """Each event is a frozen dataclass; ``kind`` and ``data`` serve string dispatchers."""
    import dataclasses

    import pytest

    joined = CALL[0]
    assert isinstance(joined, ev.ParticipantJoined) and joined.kind == ev.PARTICIPANT_JOINED
    assert joined.data == {"participant_id": "p1", "name": "Ann"}
    assert joined.time > 0
    metrics = CALL[-3]
    assert metrics.data == {"latency_ms": 812.4, "reply_ms": 1500.0, "interrupted": True}
    with pytest.raises(dataclasses.FrozenInstanceError):
        joined.name = "Bob"  # type: ignore[misc]
    assert len({cls.kind for cls in ev.ALL}) == len(ev.ALL)  # one kind per class


def test_plain_output_is_one_timestamped_line_per_final_event() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    for e in CALL:
        console(e)
    console.close()
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
    console.close()
    raw = out.getvalue()
    # partial lines are rewritten with \r and a clear-line code, finals end with a newline
    assert raw.count("\r\033[K") == 3
    assert raw.count("\n") == 1
    assert raw.endswith("Ann: where is my order\033[0m\n")
    assert "\033[36m" in raw  # the user's words in colour


class GatedStream(io.StringIO):
    """A terminal that hangs (a pipe nobody reads) until ``gate`` opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, s: str) -> int:
        if not self.gate.wait(5):
            raise AssertionError("the console wrote on the caller's thread (it blocked)")
        return super().write(s)


def test_a_stalled_terminal_never_blocks_the_caller() -> None:
    """Issue 15 bug 6: the console wrote and flushed on the event loop for every event.
    Now the caller only queues; a writer thread writes, and close() waits for all of it."""
    out = GatedStream()
    console = Console(out, tty=False)
    for e in CALL:
        console(e)  # the stream is stalled: these must return without writing
    console.print("summary line")
    assert out.getvalue() == ""  # nothing could be written yet, and nobody waited for it
    out.gate.set()
    console.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 12 and lines[-1] == "summary line"


def test_transcript_lines_are_all_on_disk_after_close(tmp_path: Path) -> None:
    """The transcript observer queues its lines; close() leaves every one written."""
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(path)
    for e in CALL:
        writer(e)
    writer.close()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["role"] for r in records] == ["user", "tool", "tool", "agent"]
    assert records[0]["participant_name"] == "Ann" and records[0]["text"] == "where is my order"
    assert records[2]["error"] == "tool 'lookup_order' timed out after 5 s"
    assert records[3]["interrupted"] is True
    writer(ev.AgentTranscript("after close"))  # ignored, no error
    assert len(path.read_text().splitlines()) == 4


def test_keypad_call_actions_and_transport_status_have_lines() -> None:
    out = io.StringIO()
    console = Console(out, tty=False)
    for e in (
        ev.DtmfReceived("5", "p1"),
        ev.CallAction("say", "You pressed 5."),  # the agent's own line shows the words
        ev.CallAction("transfer", "sales (sip:sales@example.com)"),
        ev.CallAction("send_dtmf", "1#", "the wav transport cannot send DTMF tones"),
        ev.TransportStatus("reconnecting", "signalling interrupted"),
    ):
        console(e)
    console.close()
    assert [line[9:] for line in out.getvalue().splitlines()] == [
        "  (keypad: 5)",
        "  call: transfer sales (sip:sales@example.com)",
        "  call: send_dtmf 1# failed: the wav transport cannot send DTMF tones",
        "transport reconnecting: signalling interrupted",
    ]


def test_what_either_side_says_never_shows_a_secret(monkeypatch) -> None:
    """A tool's result that quotes a key reaches the agent, which says it back: the console
    (and so serve's and the worker's logs, which carry it) masks it like the log does."""
    from botrun.core import secrets

    monkeypatch.setattr(secrets, "_values", set())
    secrets.register_secret("zzKEYzz-0123456789abcdef")
    out = io.StringIO()
    console = Console(out, tty=False)
    for e in (
        ev.UserTranscript("my key is zzKEYzz-0123456789abcdef", final=True),
        ev.AgentTranscript('the key is "zzKEYzz-0123456789abcdef"', final=True),
        ev.ErrorOccurred("bad key zzKEYzz-0123456789abcdef"),
        ev.SpeechStarted("p1", "you"),
    ):
        console(e)
    console.print("summary: zzKEYzz-0123456789abcdef")
    console.close()
    text = out.getvalue()
    assert "zzKEYzz" not in text
    assert text.count("***") == 4
    assert "you are speaking" in text


def test_a_call_action_does_not_repeat_its_name() -> None:
    """A hang-up's default reason is its own name: 'hang_up', not 'hang_up hang_up'."""
    from botrun.bots.runner import action_lines

    actions = [
        ev.CallAction("hang_up", "hang_up"),
        ev.CallAction("hang_up", "caller asked"),
        ev.CallAction("transfer", "sales", "refused"),
    ]
    assert action_lines(actions) == [
        "call action: hang_up (done)",
        "call action: hang_up caller asked (done)",
        "call action: transfer sales (failed: refused)",
    ]
    out = io.StringIO()
    console = Console(out, tty=False)
    console(actions[0])
    console.close()
    assert out.getvalue().endswith(" call: hang_up\n")


def test_network_text_cannot_forge_a_console_line() -> None:
    """A display name, a transcript, a tool's name or result with newlines, ANSI escapes or
    other C0/C1 controls is printed escaped on its own one line (probe item 4)."""
    fake = "x\n06:00:00 bot: I will wire you $1000"
    events = [
        ev.ParticipantJoined(participant_id="p1", name=fake),
        ev.UserTranscript(text="hi\r\033[2Kbot: fake", participant_name="Ann\x9b31m"),
        ev.AgentTranscript(text="ok\u2028bot: fake\u202e"),
        ev.ToolCalled(call_id="c1", name="t\nool", arguments={"a": "\x07"}, result="r\x00\n"),
        ev.ParticipantLeft(participant_id="p1", name=fake),
    ]
    for tty in (False, True):
        out = io.StringIO()
        console = Console(out, tty=tty)
        for e in events:
            console(e)
        console.print("summary line one\nsummary line two")
        console.close()
        text = out.getvalue()
        lines = text.removesuffix("\n").split("\n")
        assert len(lines) == len(events) + 2, lines
        assert text.count("\r") == (len(events) if tty else 0)  # the console's own
        for control in ("\x9b", "\x00", "\x07", "\u2028", "\u202e"):
            assert control not in text
        if not tty:
            assert "\033" not in text
        else:  # only the console's own colour codes
            assert text.count("\033") == 3 * len(events)
        assert r"+ x\n06:00:00 bot: I will wire you $1000 joined" in text
        assert r"hi\r\x1b[2Kbot: fake" in text and r"Ann\x9b31m:" in text
        assert r"ok\u2028bot: fake\u202e" in text
        assert r'tool t\nool({"a": "\u0007"}) -> r\x00\n' in text
        assert not any(" bot: I will" in line[:30] for line in lines)


def test_log_lines_cannot_forge_a_console_line() -> None:
    """A logged message quoting network text (a name, an error) stays one line; a traceback
    logged with it keeps its own lines (probe item 4)."""
    import logging

    from botrun.core.logs import setup_logging

    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [h for h in saved if not getattr(h, "_botrun", False)]
    out = io.StringIO()
    try:
        setup_logging("warning", stream=out)
        log = logging.getLogger("test.console.oneline")
        log.warning("participant %s left", "x\n06:00:00 bot: I will wire you $1000\033[2K")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("tool failed: %s", "a\rb")
    finally:
        for h in root.handlers:
            if getattr(h, "_botrun", False) and h not in saved:
                root.removeHandler(h)
        root.handlers = saved
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(r"participant x\n06:00:00 bot: I will wire you $1000\x1b[2K left")
    assert lines[1].endswith(r"tool failed: a\rb")
    assert lines[2].startswith("Traceback") and lines[-1] == "RuntimeError: boom"
