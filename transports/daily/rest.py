"""A small async client for Daily's REST API: rooms, meeting tokens and pinless dial-in.

It is what ``botrun serve`` uses to create a SIP dial-in room per phone call, and what the
Daily transport uses to forward a held call into its room (``dialin/pinlessCallUpdate``).

Why its own module: REST calls are I/O with their own failure modes (rate limits, 5xx,
timeouts) and must never leak the API key; keeping them apart from the SDK-thread code of
the transport keeps both small and testable (tests run it against a local fake API).

* Retries with exponential backoff on 429 (honouring ``Retry-After``), 5xx, timeouts and
  connection errors; other 4xx fail at once.
* Every failure is a :class:`DailyApiError` whose message carries Daily's own error body
  (``error`` / ``info``) so the user sees *why*; the API key is registered as a secret and
  never appears in a message or a log line.

aiohttp is imported lazily, so importing this module stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlparse

from botrun.core.errors import TransportError, UsageError
from botrun.core.secrets import redact, register_secret

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("botrun.daily.rest")

DEFAULT_API_URL = "https://api.daily.co/v1"
#: Longest wait honoured from a ``Retry-After`` header (seconds).
MAX_RETRY_AFTER_S = 30.0
#: Longest slice of an error body kept in a message (characters).
MAX_BODY_CHARS = 500


class DailyApiError(TransportError):
    """A Daily REST call failed. ``status`` is the HTTP status (``None`` for network errors
    and timeouts); ``body`` is Daily's error JSON (a dict) or text; ``unreachable`` is True
    when Daily never answered (connection refused, DNS, timeout), as opposed to a refusal."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: Any = None,
        unreachable: bool = False,
    ) -> None:
        detail = _describe_body(body)
        text = f"{message}: {detail}" if detail else message
        super().__init__(redact(text))
        self.status = status
        self.body = body
        self.unreachable = unreachable


def _describe_body(body: Any) -> str:
    """Daily's error JSON is ``{"error": "...", "info": "..."}``; show both when present."""
    if body is None or body == "":
        return ""
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "info") if body.get(k)]
        text = ": ".join(parts) if parts else json.dumps(body, sort_keys=True)
    else:
        text = str(body)
    text = " ".join(text.split())
    return text[:MAX_BODY_CHARS] + ("…" if len(text) > MAX_BODY_CHARS else "")


@dataclass
class Room:
    """A Daily room. ``sip_endpoint`` is the room's SIP URI (always ``sip:``-prefixed) when
    the room was created with SIP dial-in, else ``None``."""

    name: str
    url: str
    sip_endpoint: str | None = None


def normalise_sip_uri(value: str) -> str:
    """Daily reports SIP endpoints with or without the ``sip:`` scheme; use it always."""
    value = value.strip()
    return value if value.lower().startswith("sip:") else f"sip:{value}"


def _room_from_json(data: Any) -> Room:
    if not isinstance(data, dict) or not data.get("name") or not data.get("url"):
        raise DailyApiError("Daily returned an unexpected room object", body=data)
    config = data.get("config")
    if not isinstance(config, dict):
        config = {}
    sip_uri = config.get("sip_uri")
    if not isinstance(sip_uri, dict):
        sip_uri = {}
    endpoint = sip_uri.get("endpoint")
    return Room(
        name=str(data["name"]),
        url=str(data["url"]),
        sip_endpoint=normalise_sip_uri(endpoint)
        if isinstance(endpoint, str) and endpoint
        else None,
    )


def room_name_from_url(url: str) -> str:
    """The room name in a Daily room URL (``https://<domain>.daily.co/<room>``, or any
    http(s) base with one path segment). Raises :class:`UsageError` for anything else."""
    parsed = urlparse(url.strip())
    segments = [s for s in parsed.path.split("/") if s]
    if parsed.scheme not in ("http", "https") or not parsed.hostname or len(segments) != 1:
        raise UsageError(
            f"not a Daily room URL: {url!r} (expected https://<your-domain>.daily.co/<room>)"
        )
    name = segments[0]
    if not all(c.isalnum() or c in "-_." for c in name):
        raise UsageError(f"not a Daily room URL: {url!r} (room name {name!r} has odd characters)")
    return name


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER_S) if raw is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


class DailyRest:
    """Async Daily REST client; use as ``async with DailyRest(key) as api: ...``.

    ``retries`` is the number of *extra* attempts after the first; the wait before retry
    ``n`` (0-based) is ``backoff * 2**n`` seconds (or the server's ``Retry-After``)."""

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not api_key:
            raise UsageError("a Daily API key is needed (DAILY_API_KEY)")
        register_secret(api_key)
        self._api_key = api_key
        self.base_url = (base_url or os.environ.get("DAILY_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never show the key
        return f"DailyRest(base_url={self.base_url!r})"

    async def __aenter__(self) -> DailyRest:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connection pool (safe to call twice)."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        ok_statuses: tuple[int, ...] = (),
    ) -> Any:
        """One API call with retries. Returns the decoded JSON body (or ``None``)."""
        import aiohttp

        url = f"{self.base_url}{path}"
        what = f"Daily API {method} {path}"
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            wait = self.backoff * (2**attempt)
            try:
                session = self._get_session()
                async with session.request(method, url, json=payload) as resp:
                    text = await resp.text()
                    body = _decode(text)
                    if resp.status < 300 or resp.status in ok_statuses:
                        return body
                    retryable = resp.status == 429 or resp.status >= 500
                    if not retryable or last:
                        raise DailyApiError(
                            f"{what} failed with HTTP {resp.status}", status=resp.status, body=body
                        )
                    hinted = _retry_after(resp.headers) if resp.status == 429 else None
                    if hinted is not None:
                        wait = hinted
                    log.warning(
                        "%s: HTTP %s (%s); retry %d/%d in %.2fs",
                        what,
                        resp.status,
                        _describe_body(body) or "no body",
                        attempt + 1,
                        self.retries,
                        wait,
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = (
                    "timed out"
                    if isinstance(exc, TimeoutError)
                    else (f"network error: {type(exc).__name__}: {exc}")
                )
                if last:
                    raise DailyApiError(
                        f"{what} failed after {attempts} attempt(s): {reason}", unreachable=True
                    ) from None
                log.warning(
                    "%s %s; retry %d/%d in %.2fs",
                    what,
                    redact(reason),
                    attempt + 1,
                    self.retries,
                    wait,
                )
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_room(
        self,
        *,
        exp_s: float | None = 3600,
        sip_display_name: str | None = None,
        sip_mode: str = "dial-in",
        enable_dialout: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> Room:
        """Create a room that expires in ``exp_s`` seconds (participants are ejected then).
        With ``sip_display_name`` the room gets one SIP dial-in endpoint whose participant
        shows that name (use the caller's number). ``properties`` are merged last."""
        props: dict[str, Any] = {}
        if exp_s is not None:
            props["exp"] = int(time.time() + exp_s)
            props["eject_at_room_exp"] = True
        if sip_display_name is not None:
            props["sip"] = {
                "display_name": sip_display_name or "caller",
                "sip_mode": sip_mode,
                "num_endpoints": 1,
                "video": False,
            }
        if enable_dialout:
            props["enable_dialout"] = True
        props.update(properties or {})
        data = await self._request("POST", "/rooms", {"properties": props})
        room = _room_from_json(data)
        if sip_display_name is not None and room.sip_endpoint is None:
            log.warning("Daily created room %s without a SIP endpoint", room.name)
        log.info("created Daily room %s", room.name)
        return room

    async def get_room(self, name: str) -> Room:
        """Look a room up by name."""
        return _room_from_json(await self._request("GET", f"/rooms/{quote(name, safe='')}"))

    async def create_meeting_token(
        self,
        room_name: str,
        *,
        owner: bool = True,
        exp_s: float = 3600,
        user_name: str | None = None,
    ) -> str:
        """A meeting token for ``room_name`` (owner by default: needed for dial-in/out).
        The token is registered as a secret so it never shows in logs."""
        props: dict[str, Any] = {
            "room_name": room_name,
            "is_owner": owner,
            "exp": int(time.time() + exp_s),
        }
        if user_name:
            props["user_name"] = user_name
        data = await self._request("POST", "/meeting-tokens", {"properties": props})
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise DailyApiError("Daily returned no meeting token", body=data)
        register_secret(token)
        return token

    async def pinless_call_update(self, call_id: str, call_domain: str, sip_uri: str) -> None:
        """Forward a held dial-in call (``callId``/``callDomain`` from the webhook) to the
        room's SIP endpoint. Call this once per call."""
        await self._request(
            "POST",
            "/dialin/pinlessCallUpdate",
            {"callId": call_id, "callDomain": call_domain, "sipUri": normalise_sip_uri(sip_uri)},
        )
        log.info("forwarded dial-in call %s to %s", call_id, normalise_sip_uri(sip_uri))

    async def delete_room(self, name: str) -> None:
        """Delete a room; a room that is already gone (404) counts as deleted."""
        await self._request("DELETE", f"/rooms/{quote(name, safe='')}", ok_statuses=(404,))
        log.info("deleted Daily room %s", name)


def _decode(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
