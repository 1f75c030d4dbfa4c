"""The live console every transport command shows: who joins and leaves, who is speaking,
what each side says, and each turn's latency. On a terminal, partial transcripts update in
place with colour; otherwise every event is one plain, timestamped line."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from . import events as ev
from .events import BridgeEvent

_COLORS = {"user": "\033[36m", "agent": "\033[35m", "info": "\033[2m", "warn": "\033[33m"}
_RESET = "\033[0m"


class Console:
    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._partial = False  # a partial line is on screen (tty only)

    def __call__(self, event: BridgeEvent) -> None:
        line = self._render(event)
        if line is None:
            return
        kind, text, partial = line
        if self.tty:
            color = _COLORS.get(kind, "")
            out = f"\r\033[K{color}{text}{_RESET}"
            self.stream.write(out if partial else out + "\n")
            self._partial = partial
        elif not partial:
            self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
        self.stream.flush()

    def _render(self, e: BridgeEvent) -> tuple[str, str, bool] | None:
        d = e.data
        if e.kind == ev.PARTICIPANT_JOINED:
            return "info", f"+ {d.get('name') or d.get('id')} joined", False
        if e.kind == ev.PARTICIPANT_LEFT:
            return "info", f"- {d.get('name') or d.get('id')} left", False
        if e.kind == ev.SPEECH_STARTED:
            who = d.get("name")
            text = f"… {who} is speaking" if who else "… someone is speaking"
            return "info", text, self.tty  # a line of its own in plain output
        if e.kind == ev.TRANSCRIPT_USER:
            who = d.get("participant_name") or "user"
            return "user", f"{who}: {d.get('text', '')}", not d.get("final", True)
        if e.kind == ev.TRANSCRIPT_AGENT:
            mark = " [interrupted]" if d.get("interrupted") else ""
            return "agent", f"bot: {d.get('text', '')}{mark}", not d.get("final", True)
        if e.kind == ev.TURN_METRICS and d.get("latency_ms") is not None:
            return "info", f"  (reply after {d['latency_ms']:.0f} ms)", False
        if e.kind == ev.BARGE_IN:
            return "warn", f"  (interrupted: dropped {d.get('flushed_ms', 0):.0f} ms)", False
        if e.kind == ev.SESSION_STATE:
            detail = f": {d['detail']}" if d.get("detail") else ""
            return "info", f"agent {d.get('state')}{detail}", False
        if e.kind == ev.TOOL_CALL:
            return _tool_line(d)
        if e.kind == ev.ERROR:
            return "warn", f"error: {d.get('message')}", False
        return None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_line(d: dict[str, Any]) -> tuple[str, str, bool]:
    """``tool NAME(ARGS) -> RESULT (N ms)`` or ``tool NAME(ARGS) failed (N ms): WHY``, each
    part kept short, secrets masked."""
    import json

    from .secrets import redact

    try:
        args = json.dumps(d.get("arguments"), ensure_ascii=False, default=str)
    except ValueError:
        args = str(d.get("arguments"))
    call = f"tool {d.get('name')}({_short(args, 80)})"
    notes = []
    if d.get("duration_ms") is not None:
        notes.append(f"{d['duration_ms']:.0f} ms")
    if d.get("truncated"):
        notes.append("result truncated")
    took = f" ({', '.join(notes)})" if notes else ""
    if d.get("error"):
        return "warn", redact(f"  {call} failed{took}: {_short(str(d['error']))}"), False
    return "info", redact(f"  {call} -> {_short(str(d.get('result', '')), 80)}{took}"), False
