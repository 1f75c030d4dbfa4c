"""Twilio's REST API through the official ``twilio`` package: place, update, fetch calls.

Async (``AsyncTwilioHttpClient``, aiohttp) so many calls share one event loop. Failures
become :class:`TwilioApiError` carrying Twilio's own message and code, never the
credentials. ``api_url`` (``TWILIO_API_URL``) points the client at another base URL (a
local fake in tests): the package's ``Domain.base_url`` is public and read per request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botrun.core.errors import TransportError
from botrun.core.secrets import redact, register_secret

log = logging.getLogger("botrun.twilio")

#: Seconds a REST request may take.
TIMEOUT_S = 15.0


class TwilioApiError(TransportError):
    """A Twilio REST request failed: Twilio's message (and code), or why it was unreachable."""


@dataclass(frozen=True)
class CallInfo:
    sid: str
    status: str
    direction: str = ""
    answered_by: str = ""


class TwilioRest:
    """The few REST calls botrun makes. Create and use on one event loop; :meth:`close`."""

    def __init__(self, account_sid: str, auth_token: str, api_url: str | None = None) -> None:
        register_secret(auth_token)
        self._sid = account_sid
        self._token = auth_token
        self._api_url = api_url
        self._client: Any = None

    def _rest(self) -> Any:
        if self._client is None:
            from twilio.http.async_http_client import AsyncTwilioHttpClient
            from twilio.rest import Client

            # its request/response lines are INFO; ours say what matters (and are redacted)
            logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
            client = Client(self._sid, self._token, http_client=AsyncTwilioHttpClient())
            if self._api_url:
                client.api.base_url = self._api_url.rstrip("/")
            self._client = client
        return self._client

    async def _do(self, what: str, coro: Any) -> Any:
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            return await coro
        except TwilioRestException as exc:
            code = f" (code {exc.code})" if exc.code else ""
            raise TwilioApiError(
                f"Twilio refused to {what}: HTTP {exc.status}: {redact(str(exc.msg))}{code}"
            ) from None
        except TwilioException as exc:
            raise TwilioApiError(f"Twilio refused to {what}: {redact(str(exc))}") from None
        except (OSError, TimeoutError) as exc:  # aiohttp's connection errors are OSErrors
            raise TwilioApiError(
                f"could not reach Twilio to {what}: {redact(str(exc)) or type(exc).__name__}"
            ) from None

    async def create_call(
        self,
        to: str,
        from_: str,
        *,
        url: str,
        status_callback: str,
        machine_detection: str | None = None,
        timeout_s: int | None = None,
    ) -> CallInfo:
        kwargs: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "url": url,
            "status_callback": status_callback,
            "status_callback_event": ["initiated", "ringing", "answered", "completed"],
        }
        if machine_detection:
            kwargs["machine_detection"] = machine_detection
        if timeout_s:
            kwargs["timeout"] = timeout_s
        call = await self._do(f"place a call to {to}", self._rest().calls.create_async(**kwargs))
        return _info(call)

    async def fetch_call(self, sid: str) -> CallInfo:
        return _info(await self._do(f"look up call {sid}", self._rest().calls(sid).fetch_async()))

    async def hang_up(self, sid: str) -> None:
        await self._do(
            f"hang up call {sid}", self._rest().calls(sid).update_async(status="completed")
        )

    async def redirect(self, sid: str, twiml: str) -> None:
        await self._do(f"update call {sid}", self._rest().calls(sid).update_async(twiml=twiml))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.http_client.close()


def _info(call: Any) -> CallInfo:
    return CallInfo(
        sid=str(call.sid),
        status=str(call.status or ""),
        direction=str(call.direction or ""),
        answered_by=str(call.answered_by or ""),
    )
