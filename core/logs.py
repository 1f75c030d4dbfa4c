"""Logging setup shared by every command: one format, secrets redacted on every handler."""

from __future__ import annotations

import logging
import sys

from .secrets import RedactingFilter

LEVELS = ("debug", "info", "warning", "error")


class OneLineFormatter(logging.Formatter):
    """A log line is one line: control characters in the message (a participant's name, an
    agent's or a tool's error text: from the network or user code) are shown escaped, so
    nothing logged can forge a console line. A traceback below it keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from .console import escape_controls

        return escape_controls(super().formatMessage(record))


def setup_logging(level: str = "info", stream=None) -> None:
    """Configure the root logger once per process; later calls only change the level."""
    root = logging.getLogger()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for h in root.handlers:
        if getattr(h, "_botrun", False):
            return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._botrun = True  # type: ignore[attr-defined]
    handler.setFormatter(
        OneLineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    # Chatty third-party loggers stay at warning unless the user asked for debug.
    if level != "debug":
        for name in ("websockets", "aiohttp.access", "asyncio"):
            logging.getLogger(name).setLevel(logging.WARNING)
