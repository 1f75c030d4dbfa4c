"""Daily's pinless dial-in webhook: signature check, replay guard and payload parsing.

Pure functions over bytes and headers (no HTTP server here), so every rule is testable with
plain values. Daily signs each webhook with the ``hmac`` secret it returned when dial-in was
configured (base64): ``X-Pinless-Signature = base64(HMAC-SHA256(base64decode(secret),
f"{X-Pinless-Timestamp}.{raw body}"))``. A timestamp further than :data:`MAX_AGE_S` from our
clock is refused so a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SIGNATURE_HEADER = "X-Pinless-Signature"
TIMESTAMP_HEADER = "X-Pinless-Timestamp"
#: Oldest (and furthest in the future) a signed webhook may be, in seconds.
MAX_AGE_S = 300.0
_MS_THRESHOLD = 1e11  # a Unix time above this is in milliseconds (year 5138 in seconds)


class WebhookRejected(Exception):
    """The webhook is refused; ``status`` is the HTTP status to answer (401 or 400)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class DialinCall:
    """One incoming phone call as Daily describes it in the webhook."""

    call_id: str
    call_domain: str
    to: str = ""
    from_: str = ""
    sip_headers: dict[str, str] = field(default_factory=dict)


def decode_secret(secret_b64: str) -> bytes:
    """The HMAC key: Daily hands out the secret base64-encoded. Raises ``ValueError``."""
    try:
        key = base64.b64decode(secret_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "DAILY_DIALIN_SECRET is not valid base64 (use the `hmac` value Daily returned)"
        ) from None
    if not key:
        raise ValueError("DAILY_DIALIN_SECRET is empty")
    return key


def dialin_key(raw_secret: str | None) -> bytes | None:
    """The HMAC key of ``DAILY_DIALIN_SECRET`` (None when unset: webhooks unsigned);
    a one-line :class:`~botrun.core.errors.ConfigError` when it is not valid."""
    from botrun.core.errors import ConfigError

    if not raw_secret:
        return None
    try:
        return decode_secret(raw_secret)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """The signature Daily sends for ``body`` at ``timestamp`` (base64 HMAC-SHA256)."""
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def parse_timestamp(value: str) -> float:
    """Unix seconds from the timestamp header: Unix seconds, milliseconds, or ISO 8601
    (the check does not depend on which one Daily uses). Raises ``ValueError``."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("timestamp without a time zone") from None
        return moment.timestamp()
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("timestamp is not a finite number")
    return number / 1000.0 if number > _MS_THRESHOLD else number


def verify(
    key: bytes,
    headers: Any,
    body: bytes,
    *,
    now: float | None = None,
    max_age_s: float = MAX_AGE_S,
) -> None:
    """Raise :class:`WebhookRejected` (401) unless ``body`` carries a valid, fresh signature.
    ``headers`` is any case-insensitive mapping (aiohttp's ``request.headers``)."""
    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected(401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        sent_at = parse_timestamp(timestamp)
    except ValueError:
        raise WebhookRejected(401, f"unreadable {TIMESTAMP_HEADER}") from None
    age = (time.time() if now is None else now) - sent_at
    if abs(age) > max_age_s:
        raise WebhookRejected(
            401, f"stale {TIMESTAMP_HEADER} ({age:.0f} s from now; limit {max_age_s:.0f} s)"
        )
    expected = sign(key, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise WebhookRejected(401, "bad signature")


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    return data


def is_test_payload(body: bytes) -> bool:
    """Daily's configuration check (``{"Test": "test"}``): answer 200, start nothing."""
    try:
        data = _load_object(body)
    except WebhookRejected:
        return False
    return "callId" not in data and any(k.lower() == "test" for k in data)


def parse_call(body: bytes) -> DialinCall:
    """The call in a dial-in webhook body; :class:`WebhookRejected` (400) when malformed."""
    data = _load_object(body)
    values: dict[str, str] = {}
    for key in ("callId", "callDomain", "To", "From"):
        value = data.get(key, "")
        if not isinstance(value, str):
            raise WebhookRejected(400, f"'{key}' must be a string")
        values[key] = value.strip()
    for key in ("callId", "callDomain"):
        if not values[key]:
            raise WebhookRejected(400, f"'{key}' is missing")
    headers = data.get("sipHeaders") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise WebhookRejected(400, "'sipHeaders' must be an object of strings")
    return DialinCall(
        call_id=values["callId"],
        call_domain=values["callDomain"],
        to=values["To"],
        from_=values["From"],
        sip_headers=dict(headers),
    )


#: How long a handled call id is remembered: a signed webhook stays valid until its timestamp
#: is :data:`MAX_AGE_S` old, and that timestamp may itself be up to :data:`MAX_AGE_S` ahead
#: of our clock.
REMEMBER_S = 2 * MAX_AGE_S
#: Most call ids remembered at once (the oldest are forgotten first).
REMEMBER_MAX = 100_000


class RecentCalls:
    """Call ids that already got a bot, remembered for the whole replay window so a replayed
    webhook cannot start a second room and bot after the first bot ended."""

    def __init__(
        self,
        ttl_s: float = REMEMBER_S,
        max_entries: int = REMEMBER_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._calls: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def _prune(self) -> None:
        now = self._clock()
        while self._calls:
            _, (expires, _) = next(iter(self._calls.items()))
            if expires > now and len(self._calls) <= self.max_entries:
                return
            self._calls.popitem(last=False)

    def remember(self, call_id: str, info: dict[str, Any]) -> None:
        """Remember ``call_id`` (with what to answer a replay) for ``ttl_s`` from now."""
        self._calls.pop(call_id, None)
        self._calls[call_id] = (self._clock() + self.ttl_s, dict(info))
        self._prune()

    def get(self, call_id: str) -> dict[str, Any] | None:
        """What was remembered about ``call_id``, or None (never seen, or forgotten)."""
        self._prune()
        entry = self._calls.get(call_id)
        return dict(entry[1]) if entry else None

    def __len__(self) -> int:
        self._prune()
        return len(self._calls)
