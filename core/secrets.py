"""Secrets come only from the environment or a ``.env`` file, and never reach a log line.

Every secret value that botrun loads (or that the user passes on the command line, such as a
meeting token) is registered here; :class:`RedactingFilter` replaces each registered value in
every log record, and :func:`redact` does the same for error messages. A URL that may carry
credentials (``ws://user:PASSWORD@host/?token=...``) is shown only through :func:`mask_url`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import MissingSecretError, UsageError

#: The secrets botrun knows by name: every credential any botrun command reads.
KNOWN_SECRETS: tuple[str, ...] = (
    "ASSEMBLYAI_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "DAILY_API_KEY",
    "DAILY_DIALIN_SECRET",
    "DAILY_MEETING_TOKEN",
    "AGORA_APP_ID",
    "AGORA_APP_CERTIFICATE",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "BOTRUN_API_TOKEN",
    "BOTRUN_SIM_API_KEY",
)

#: Other variables whose name ends like this are credentials too (a plugin backend's
#: ``ACME_API_KEY``...): their values are masked as well.
SECRET_SUFFIXES: tuple[str, ...] = (
    "_API_KEY",
    "_API_TOKEN",
    "_AUTH_TOKEN",
    "_ACCESS_TOKEN",
    "_SECRET",
    "_SECRET_KEY",
    "_PASSWORD",
    "_CERTIFICATE",
)


def is_secret_name(name: str) -> bool:
    """Whether the variable ``name`` holds a credential (:data:`KNOWN_SECRETS` or a name
    ending in one of :data:`SECRET_SUFFIXES`)."""
    return name in KNOWN_SECRETS or name.upper().endswith(SECRET_SUFFIXES)


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


#: Query parameters whose value is a credential (matched as a part of the lower-cased name:
#: ``token``, ``access_token``, ``api_key``, ``X-Amz-Signature``...).
_CREDENTIAL_PARAMS = ("token", "key", "secret", "pass", "pwd", "auth", "sig", "credential")


def _is_credential_param(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in _CREDENTIAL_PARAMS)


def url_credentials(url: str) -> list[str]:
    """The credentials a URL carries: its userinfo password and every credential-like query
    value (see :func:`mask_url`)."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    found += [v for k, v in pairs if v and _is_credential_param(k)]
    return found


def mask_url(url: str) -> str:
    """``url`` as it may be shown: a userinfo password and credential-like query values
    (``token``, ``api_key``, ``secret``...) become ``***``, and registered secrets too."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: still mask what we know
        return redact(url)
    netloc = parts.netloc
    if password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(v and _is_credential_param(k) for k, v in pairs):
        masked = [(k, MASK if v and _is_credential_param(k) else v) for k, v in pairs]
        query = urlencode(masked, safe="*")
    return redact(urlunsplit(parts._replace(netloc=netloc, query=query)))


def register_url_credentials(url: str) -> None:
    """Register the credentials in ``url`` (:func:`url_credentials`) for redaction."""
    for value in url_credentials(url):
        register_secret(value)


def _read_dotenv(path: Path) -> dict[str, str]:
    """``path``'s variables (python-dotenv); :class:`UsageError` naming the file when it
    cannot be read or is not UTF-8 text."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # lazy: only when a .env exists

    try:
        values = dotenv_values(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8 or remove it"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return {k: v for k, v in values.items() if v is not None}


class Secrets:
    """Secrets from ``environ`` (wins) and a ``.env`` file in ``cwd``; every credential's
    value (:func:`is_secret_name`) is registered for redaction as soon as it is loaded, so
    every command builds one before anything runs (``demo`` too, simulator or not)."""

    def __init__(self, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        dotenv = _read_dotenv((cwd or Path.cwd()) / ".env")
        self._values: dict[str, str] = {**dotenv, **env}
        for name, value in self._values.items():
            if is_secret_name(name):
                register_secret(value)
            elif "://" in value:  # BOTRUN_QUEUE=redis://:PASSWORD@host, ...?token=...
                register_url_credentials(value)

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
