"""Daily's native log lines go to botrun's log, not raw onto the terminal.

daily-python's native core writes one JSON line to file descriptor 2 whenever a request
fails (``{"timestamp":…,"level":"ERROR","fields":{"message":"startDialout (request 1)
encountered an error: …"},"target":"daily_core::native::ffi::call_client"}``), even with
``Daily.init(log_level=LogLevel.Off)``; the SDK has no log callback (0.36: ``Daily.init``,
``Daily.set_log_level`` only). botrun reports those failures itself, in one line. So while a
Daily call runs, descriptor 2 is a pipe read by one thread (:class:`StderrCapture`): lines
that are Daily's JSON records become DEBUG lines of logger ``botrun.daily.native``; every
other byte (botrun's own log, Python warnings and tracebacks, anything else) is copied
unchanged, in order, to the original standard error. When the call is over the original
descriptor is put back and the pipe is drained.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
from typing import Any

log = logging.getLogger("botrun.daily.native")

_lock = threading.Lock()
_active: StderrCapture | None = None
_users = 0


def parse_native_line(raw: bytes) -> dict[str, Any] | None:
    """Daily's JSON log record in ``raw``, or None when the line is anything else."""
    text = raw.strip()
    if not (text.startswith(b"{") and text.endswith(b"}")):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not str(record.get("target", "")).startswith("daily"):
        return None
    return record


def describe(record: dict[str, Any]) -> str:
    fields = record.get("fields")
    message = fields.get("message") if isinstance(fields, dict) else None
    return f"{record.get('level', '?')} {record.get('target', '')}: {message or fields}"


class StderrCapture:
    """Descriptor 2 through a pipe: Daily's records to the log, the rest passed through."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._read: int | None = None
        self._thread: threading.Thread | None = None
        # The pump never logs itself: a log handler writing to descriptor 2 would write into
        # the pipe the pump reads, and block it when the pipe is full.
        self._records: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._logger: threading.Thread | None = None

    def start(self) -> None:
        _flush_stderr()
        saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._saved, self._read = saved, read
        self._thread = threading.Thread(target=self._pump, name="daily-stderr", daemon=True)
        self._logger = threading.Thread(target=self._log, name="daily-stderr-log", daemon=True)
        self._thread.start()
        self._logger.start()

    def stop(self, timeout: float = 2.0) -> None:
        if self._saved is None:
            return
        _flush_stderr()
        os.dup2(self._saved, 2)  # the pipe loses its last writer: the pump sees EOF
        if self._thread is not None:
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            # (a child process that inherited the pipe keeps it open: then leave it be)
            os.close(self._read)  # type: ignore[arg-type]
            os.close(self._saved)
        self._records.put(None)
        if self._logger is not None:
            self._logger.join(timeout)
        self._saved = self._read = None

    def _log(self) -> None:
        while (record := self._records.get()) is not None:
            with contextlib.suppress(Exception):  # the log must never break anything
                log.debug("daily (native) %s", describe(record))

    def _pump(self) -> None:
        assert self._read is not None and self._saved is not None
        read, out = self._read, self._saved
        pending = b""
        while True:
            try:
                chunk = os.read(read, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._route(line + b"\n", out)
        if pending:
            self._route(pending, out)

    def _route(self, raw: bytes, out: int) -> None:
        record = parse_native_line(raw)
        if record is not None:
            self._records.put(record)
        else:
            _write_all(out, raw)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = os.write(fd, data)
        except OSError:
            return
        data = data[n:]


def _flush_stderr() -> None:
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def capture() -> None:
    """Start capturing (nested calls are counted; the first one starts the pipe)."""
    global _active, _users
    with _lock:
        _users += 1
        if _active is None:
            active = StderrCapture()
            try:
                active.start()
            except OSError as exc:  # no descriptor 2, out of descriptors: carry on
                log.debug("cannot capture Daily's native log lines: %s", exc)
                return
            _active = active


def release() -> None:
    """End one :func:`capture`; the last one restores descriptor 2."""
    global _active, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0 and _active is not None:
            active, _active = _active, None
            active.stop()
