"""The conversation as JSON Lines (``--transcript FILE``): one object per final utterance,
keypad press, tool call and call action (hang-up, transfer, DTMF, dial-out, ..., refused ones
too). Every string is passed through the secret redaction the logs use.

:class:`TranscriptWriter` is an observer of the bridge's events (final transcripts, finished
tool calls and call actions); the lines are written and flushed by a writer thread (core/writer.py),
never on the event loop, and :meth:`TranscriptWriter.close` waits until all are on disk."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from . import events as ev
from .errors import UsageError
from .secrets import redact
from .writer import BackgroundWriter


def _redacted(value: Any) -> Any:
    """``value`` with every registered secret masked in every string it holds (keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_redacted(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


class TranscriptWriter:
    """Appends ``{"time", "role", "participant_id", "participant_name", "text",
    "interrupted"}`` lines (``role`` is ``user`` or ``agent``) and ``{"time", "role": "tool",
    "call_id", "name", "arguments", "result", "error", "duration_ms", "truncated"}`` lines
    and ``{"time", "role": "action", "action", "detail", "error"}`` lines (what the bot did
    to the call, core/call.py; ``error`` is null when it was done, else why it failed or was
    refused), and ``{"time", "role": "dtmf", "participant_id", "digit"}`` lines (a caller's
    keypad press).
    Each line is flushed as soon as the writer thread gets to it, so a crash loses at most
    what was still queued."""

    def __init__(self, path: Path) -> None:
        from botrun.core.paths import check_output_file

        self.path = path
        check_output_file(path, "--transcript")
        try:
            fh: IO[str] = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write transcript {path}: {exc.strerror or exc}") from None
        self._out: BackgroundWriter | None = BackgroundWriter(
            fh, owns_stream=True, name="transcript"
        )
        self.lines = 0

    def __call__(self, event: ev.BridgeEvent) -> None:
        """The observer: final utterances, keypad presses, finished tool calls and call
        actions become lines."""
        match event:
            case ev.UserTranscript(final=True):
                self.write(
                    "user",
                    event.text,
                    participant_id=event.participant_id,
                    participant_name=event.participant_name,
                )
            case ev.AgentTranscript(final=True):
                self.write("agent", event.text, interrupted=event.interrupted)
            case ev.ToolCalled():
                self.write_tool(
                    event.name,
                    event.arguments,
                    event.result,
                    call_id=event.call_id,
                    error=event.error,
                    duration_ms=event.duration_ms,
                    truncated=event.truncated,
                )
            case ev.DtmfReceived():
                self._append(
                    {"role": "dtmf", "participant_id": event.participant_id, "digit": event.digit}
                )
            case ev.CallAction():
                self.write_action(event.action, event.detail, event.error)

    def write(
        self,
        role: str,
        text: str,
        *,
        participant_id: str | None = None,
        participant_name: str | None = None,
        interrupted: bool = False,
        **extra: Any,
    ) -> None:
        self._append(
            {
                "role": role,
                "participant_id": participant_id,
                "participant_name": participant_name,
                "text": text,
                "interrupted": interrupted,
                **extra,
            }
        )

    def write_tool(
        self,
        name: str,
        arguments: Any,
        result: str,
        *,
        call_id: str | None = None,
        error: str | None = None,
        duration_ms: float = 0.0,
        truncated: bool = False,
    ) -> None:
        """One finished tool call: ``result`` is the JSON string the agent got."""
        self._append(
            {
                "role": "tool",
                "call_id": call_id,
                "name": name,
                "arguments": arguments,
                "result": result,
                "error": error,
                "duration_ms": round(duration_ms, 1),
                "truncated": truncated,
            }
        )

    def write_action(self, action: str, detail: str = "", error: str | None = None) -> None:
        """One call action (``hang_up``, ``transfer``, ``send_dtmf``, ``dial_out``, ``say``,
        ``reply``, ``update``): done (``error`` null), failed or refused."""
        self._append({"role": "action", "action": action, "detail": detail, "error": error})

    def _append(self, fields: dict[str, Any]) -> None:
        if self._out is None:
            return
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        line = json.dumps(_redacted(record), ensure_ascii=False, default=str)
        self._out.write(line + "\n")
        self.lines += 1

    def close(self) -> None:
        """Write every queued line, close the file. Waits: not for the loop's hot path."""
        out, self._out = self._out, None
        if out is not None:
            out.close()
