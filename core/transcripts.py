"""The conversation as JSON Lines (``--transcript FILE``): one object per final utterance and
one per tool call. Every string is passed through the secret redaction the logs use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import UsageError
from .secrets import redact


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
    "call_id", "name", "arguments", "result", "error", "duration_ms", "truncated"}`` lines,
    flushing each one, so a crash loses nothing written so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] | None = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write transcript {path}: {exc.strerror or exc}") from None
        self.lines = 0

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

    def _append(self, fields: dict[str, Any]) -> None:
        if self._fh is None:
            return
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        line = json.dumps(_redacted(record), ensure_ascii=False, default=str)
        self._fh.write(line + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
