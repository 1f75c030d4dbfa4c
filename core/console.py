"""The live console every transport command shows: who joins and leaves, who is speaking,
what each side says, and each turn's latency. On a terminal, partial transcripts update in
place with colour; otherwise every event is one plain, timestamped line. The lines are
written by a thread of their own (core/writer.py), never on the event loop."""

from __future__ import annotations

import sys
import time
from typing import IO

from . import events as ev
from .events import BridgeEvent
from .secrets import redact
from .writer import BackgroundWriter

#: Characters that would let text from the network (a participant's display name, a
#: transcript, a tool's name or result) move the cursor, start a line of its own or recolour
#: the terminal: C0 and C1 controls, DEL, Unicode line/paragraph separators and bidi
#: overrides/isolates. Shown escaped (``\n``, ``\x1b``, ``\u2028``) instead.
_ESCAPES: dict[int, str] = {
    c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
    for c in (
        *range(0x00, 0x20),
        *range(0x7F, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def escape_controls(text: str) -> str:
    """``text`` safe to print on one terminal line: every control character escaped."""
    return text.translate(_ESCAPES)


_COLORS = {"user": "\033[36m", "agent": "\033[35m", "info": "\033[2m", "warn": "\033[33m"}
_RESET = "\033[0m"


class Console:
    """An observer (the runner attaches it): renders each event to one line and hands it to
    a writer thread, so a slow terminal never stalls the call. :meth:`close` (or
    :meth:`flush`) waits until everything is on screen."""

    def __init__(self, stream: IO[str] | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self._partial = False  # a partial line is on screen (tty only)
        self._out = BackgroundWriter(self.stream, name="console")

    def __call__(self, event: BridgeEvent) -> None:
        line = self._render(event)
        if line is None:
            return
        kind, text, partial = line
        text = redact(text)  # what either side says can quote a secret (a tool's result)
        # names, transcripts and tool calls come from the network: never a fake line
        text = escape_controls(text)
        if self.tty:
            color = _COLORS.get(kind, "")
            out = f"\r\033[K{color}{text}{_RESET}"
            self._out.write(out if partial else out + "\n")
            self._partial = partial
        elif not partial:
            self._out.write(f"{time.strftime('%H:%M:%S')} {text}\n")

    def print(self, text: str) -> None:
        """Plain text (the end-of-call summary) after whatever is queued, on a line of its own."""
        if self._partial:
            self._out.write("\n")
            self._partial = False
        lines = redact(text).split("\n")  # (the summary's lines are its own)
        self._out.write("\n".join(escape_controls(line) for line in lines) + "\n")

    def flush(self, timeout: float = 5.0) -> bool:
        return self._out.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self._out.close(timeout)

    def _render(self, e: BridgeEvent) -> tuple[str, str, bool] | None:
        match e:
            case ev.ParticipantJoined(participant_id=pid, name=name):
                return "info", f"+ {name or pid} joined", False
            case ev.ParticipantLeft(participant_id=pid, name=name):
                return "info", f"- {name or pid} left", False
            case ev.SpeechStarted(name=who):
                verb = "are" if who == "you" else "is"  # the browser page's caller is "you"
                text = f"… {who} {verb} speaking" if who else "… someone is speaking"
                return "info", text, self.tty  # a line of its own in plain output
            case ev.UserTranscript(text=text, final=final, participant_name=who):
                return "user", f"{who or 'user'}: {text}", not final
            case ev.AgentTranscript(text=text, final=final, interrupted=interrupted):
                mark = " [interrupted]" if interrupted else ""
                return "agent", f"bot: {text}{mark}", not final
            case ev.ReplyStarted(latency_ms=latency) if latency is not None:
                return "info", f"  (reply after {latency:.0f} ms)", False
            case ev.ReplyInterrupted(flushed_ms=flushed):
                return "warn", f"  (interrupted: dropped {flushed:.0f} ms)", False
            case ev.SessionStateChanged(state=state, detail=detail):
                return "info", f"agent {state}{f': {detail}' if detail else ''}", False
            case ev.ToolCalled():
                return _tool_line(e)
            case ev.ErrorOccurred(message=message):
                return "warn", f"error: {message}", False
            case ev.DtmfReceived(digit=digit):
                return "info", f"  (keypad: {digit})", False
            case ev.TransportStatus(state=state, detail=detail):
                return "warn", f"transport {state}{f': {detail}' if detail else ''}", False
            case ev.CallAction(action=action, error=error) if action not in (
                "say",
                "reply",
            ):  # (what the agent then says is on its own line)
                what = _short(e.what)
                if error:
                    return "warn", f"  call: {what} failed: {_short(error)}", False
                return "info", f"  call: {what}", False
        return None


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_line(e: ev.ToolCalled) -> tuple[str, str, bool]:
    """``tool NAME(ARGS) -> RESULT (N ms)`` or ``tool NAME(ARGS) failed (N ms): WHY``, each
    part kept short (secrets are masked on every line, in ``Console.__call__``)."""
    import json

    try:
        args = json.dumps(e.arguments, ensure_ascii=False, default=str)
    except ValueError:
        args = str(e.arguments)
    call = f"tool {e.name}({_short(args, 80)})"
    notes = [f"{e.duration_ms:.0f} ms"]
    if e.truncated:
        notes.append("result truncated")
    took = f" ({', '.join(notes)})"
    if e.error:
        return "warn", f"  {call} failed{took}: {_short(str(e.error))}", False
    return "info", f"  {call} -> {_short(str(e.result), 80)}{took}", False
