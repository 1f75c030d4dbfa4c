"""Secrets come only from the environment or a ``.env`` file, and never reach a log line.

Every secret value that botrun loads (or that the user passes on the command line, such as a
meeting token) is registered here; :class:`RedactingFilter` replaces each registered value in
every log record, and :func:`redact` does the same for error messages.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from .errors import MissingSecretError

#: The secrets botrun knows by name.
KNOWN_SECRETS: tuple[str, ...] = (
    "ASSEMBLYAI_API_KEY",
    "DAILY_API_KEY",
    "DAILY_DIALIN_SECRET",
    "AGORA_APP_ID",
    "AGORA_APP_CERTIFICATE",
    "BOTRUN_API_TOKEN",
)

MASK = "***"
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words; they are not real secrets

_lock = threading.Lock()
_values: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` so it is masked in every later log line and error message."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _lock:
            _values.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    if not _values or not text:
        return text
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # lazy: only when a .env exists

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class Secrets:
    """Secrets from ``environ`` (wins) and a ``.env`` file in ``cwd``; all values registered
    for redaction as soon as they are loaded."""

    def __init__(self, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        dotenv = _read_dotenv((cwd or Path.cwd()) / ".env")
        self._values: dict[str, str] = {**dotenv, **env}
        for name in KNOWN_SECRETS:
            register_secret(self._values.get(name))

    def get(self, name: str) -> str | None:
        value = self._values.get(name) or None
        register_secret(value)
        return value

    def require(self, name: str, purpose: str) -> str:
        value = self.get(name)
        if not value:
            raise MissingSecretError(name, purpose)
        return value

    def env(self, name: str, default: str | None = None) -> str | None:
        """A non-secret setting that may also live in ``.env`` (e.g. ``DAILY_API_URL``)."""
        return self._values.get(name) or default


class RedactingFilter(logging.Filter):
    """Masks registered secrets in the fully formatted message (and any traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _values:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string must not kill logging
                message = str(record.msg)
            clean = redact(message)
            if clean != message or record.args:
                record.msg, record.args = clean, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True
