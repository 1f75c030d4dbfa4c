"""The conversation as JSON Lines (``--transcript FILE``): one object per final utterance."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import UsageError


class TranscriptWriter:
    """Appends ``{"time", "role", "participant_id", "participant_name", "text",
    "interrupted"}`` lines and flushes each one, so a crash loses nothing written so far."""

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
        if self._fh is None:
            return
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "role": role,
            "participant_id": participant_id,
            "participant_name": participant_name,
            "text": text,
            "interrupted": interrupted,
            **extra,
        }
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
