"""Twilio credentials and addresses from the environment (or .env), checked up front.

``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN`` (both registered for redaction, never
logged), ``TWILIO_FROM_NUMBER`` (outbound calls), ``PUBLIC_URL`` (the https address at which
Twilio reaches ``botrun serve``, e.g. a tunnel; signatures are checked against it) and, for
tests, ``TWILIO_API_URL`` (another REST base URL). Each missing one is named in one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from botrun.core.errors import ConfigError
from botrun.core.secrets import Secrets

log = logging.getLogger("botrun.twilio")


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    public_url: str  # https://host[:port][/prefix], no trailing slash
    from_number: str | None = None
    api_url: str | None = None

    def http_url(self, path: str) -> str:
        return self.public_url + path

    def ws_url(self, path: str) -> str:
        """``path`` at the public address as Twilio opens the stream (wss://, or ws:// for
        an http:// PUBLIC_URL in a local test)."""
        scheme, rest = self.public_url.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + path


INSTALL_HINT = "Twilio calls need the twilio package: pip install 'botrun[twilio]'"


def require_package() -> None:
    """Raise :class:`UsageError` with the install hint when the ``twilio`` extra is missing."""
    from botrun.core.errors import UsageError

    try:
        import twilio  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


def public_url(value: str) -> str:
    """``value`` checked as the public address Twilio reaches (no trailing slash). An
    http:// address is allowed, for local tests with a fake Twilio, with a warning: real
    Twilio opens Media Streams only on wss://, so its calls would fail."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(
            "PUBLIC_URL must be an https:// address Twilio can reach (http:// only for "
            f"local tests), got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError("PUBLIC_URL must not have a query or fragment")
    if parts.scheme == "http":
        log.warning(
            "PUBLIC_URL %s is not https: Twilio opens Media Streams only on wss://, so real "
            "calls will fail (http:// is for local tests)",
            value,
        )
    return value.rstrip("/")


def load(secrets: Secrets, purpose: str, *, need_from: bool = False) -> TwilioSettings:
    """The settings, or a :class:`ConfigError` naming the missing variable(s)."""
    names = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "PUBLIC_URL"]
    if need_from:
        names.append("TWILIO_FROM_NUMBER")
    # the account SID and the auth token are registered for redaction (masked in any output)
    secret = ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID")
    values = {n: (secrets.get(n) if n in secret else secrets.env(n)) for n in names}
    missing = [n for n in names if not values[n]]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set ({purpose}): "
            "set in the environment or a .env file"
        )
    return TwilioSettings(
        account_sid=str(values["TWILIO_ACCOUNT_SID"]),
        auth_token=str(values["TWILIO_AUTH_TOKEN"]),
        public_url=public_url(str(values["PUBLIC_URL"])),
        from_number=values.get("TWILIO_FROM_NUMBER") or secrets.env("TWILIO_FROM_NUMBER"),
        api_url=secrets.env("TWILIO_API_URL"),
    )
