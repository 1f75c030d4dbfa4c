"""Per-session inspection: what the simulator received and sent, so tests can assert that nothing
was lost, and ``--record DIR`` can save it for a developer to listen to.

A :class:`SessionRecord` survives reconnects (a resumed session keeps appending to it).
:func:`save_record` writes ``<session_id>.wav`` (all received audio, decoded to PCM16) and
``<session_id>.json`` (events, errors, utterances, replies) into a directory.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botrun.core.errors import UsageError

from .codec import write_wav


@dataclass
class ReplyRecord:
    """One reply as sent: its audio (PCM16 at the output rate, before G.711 encoding) and how
    it ended (``completed``, ``interrupted`` or ``lost`` when the socket went away)."""

    reply_id: str
    kind: str
    text: str
    status: str = "in_progress"
    audio: bytearray = field(default_factory=bytearray)
    spoken_text: str = ""


@dataclass
class SessionRecord:
    """What one session received and sent. Sample positions index ``received_audio``."""

    session_id: str
    received_samples: int = 0
    received_audio_buf: bytearray = field(default_factory=bytearray)
    input_rate: int = 24000
    events: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    utterances: list[tuple[int, int]] = field(default_factory=list)
    user_transcripts: list[str] = field(default_factory=list)
    replies: list[ReplyRecord] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)
    connections: int = 0
    bad_audio_chunks: int = 0

    @property
    def received_audio(self) -> bytes:
        """All PCM16 audio received so far (G.711 input decoded to PCM16)."""
        return bytes(self.received_audio_buf)

    @property
    def error_codes(self) -> list[str]:
        return [e["code"] for e in self.errors]

    def utterance_audio(self, index: int) -> bytes:
        """The PCM16 bytes of the ``index``-th detected utterance (what an echo reply sends)."""
        start, end = self.utterances[index]
        return bytes(self.received_audio_buf[start * 2 : end * 2])

    def summary(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "received_samples": self.received_samples,
            "input_rate": self.input_rate,
            "connections": self.connections,
            "events": self.events,
            "sent": self.sent,
            "errors": self.errors,
            "utterances": self.utterances,
            "user_transcripts": self.user_transcripts,
            "replies": [
                {
                    "reply_id": r.reply_id,
                    "kind": r.kind,
                    "text": r.text,
                    "status": r.status,
                    "spoken_text": r.spoken_text,
                    "audio_bytes": len(r.audio),
                }
                for r in self.replies
            ],
            "tool_calls": self.tool_calls,
            "tool_results": self.tool_results,
            "violations": self.violations,
            "ignored_keys": self.ignored_keys,
            "bad_audio_chunks": self.bad_audio_chunks,
        }


def save_record(record: SessionRecord, directory: Path) -> list[Path]:
    """Write the record's audio and summary into ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    wav = directory / f"{record.session_id}.wav"
    summary = directory / f"{record.session_id}.json"
    write_wav(wav, record.received_audio, record.input_rate)
    summary.write_text(json.dumps(record.summary(), indent=2) + "\n", encoding="utf-8")
    return [wav, summary]


def prepare_record_dir(directory: Path) -> None:
    """Create ``directory`` (its parent must exist) and check a file can be written in it, so
    a bad ``--record`` is a :class:`UsageError` at start, not a lost recording at the end."""
    try:
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"cannot record to {directory}: not a directory")
        parent = directory.parent
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"cannot record to {directory}: {parent} is not a directory")
        if not parent.exists():
            raise UsageError(
                f"cannot record to {directory}: {parent} does not exist (create it first)"
            )
        directory.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(f"cannot record to {directory}: {exc.strerror or exc}") from None
