"""The live console every transport command shows: who joins and leaves, who is speaking,
what each side says, and each turn's latency. On a terminal, partial transcripts update in
place with colour; otherwise every event is one plain, timestamped line."""

from __future__ import annotations

import sys
import time
from typing import IO

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
            status = "failed" if d.get("error") else "ok"
            return "info", f"  tool {d.get('name')}({d.get('arguments')}) {status}", False
        if e.kind == ev.ERROR:
            return "warn", f"error: {d.get('message')}", False
        return None
