"""``X-Twilio-Signature`` checks with the official package's ``RequestValidator``.

Twilio signs the URL it requested (the *public* one: ``PUBLIC_URL`` + path and query, not
the address serve listens on behind a proxy or tunnel) plus the POST parameters; a
WebSocket upgrade is signed over its wss:// URL alone."""

from __future__ import annotations

from collections.abc import Mapping


class Validator:
    def __init__(self, auth_token: str) -> None:
        from twilio.request_validator import RequestValidator

        self._validator = RequestValidator(auth_token)

    def valid(self, url: str, params: Mapping[str, str], signature: str | None) -> bool:
        if not signature:
            return False
        return bool(self._validator.validate(url, dict(params), signature))
