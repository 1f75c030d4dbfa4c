"""Phone calls on the bot side: forwarding a held dial-in call, and dialing out.

Dial-in (pinless): ``botrun serve`` created the room and started this bot with the held call's
``callId``/``callDomain``. When Daily reports ``on_dialin_ready(sip_endpoint)`` the bot asks
Daily (REST ``dialin/pinlessCallUpdate``) to forward the call to that endpoint -- exactly
once: the event fires once per endpoint, and forwarding twice puts a duplicate SIP
participant in the room. Failures are retried; the last one becomes the bot's error.

Dial-out: ``start_dialout`` once joined, retried on ``on_dialout_error`` up to a limit.

Both classes live on the event loop and are driven by the transport; they never touch
daily-python themselves, which keeps them testable with plain callables.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from botrun.core.errors import UsageError
from botrun.core.secrets import redact

log = logging.getLogger("botrun.daily")

UpdateFn = Callable[[str, str, str], Awaitable[None]]  # (call_id, call_domain, sip_uri)

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _is_final(exc: BaseException) -> bool:
    """A 4xx other than 429 will fail the same way again: no point retrying it."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status != 429


class PinlessForwarder:
    """Forwards one held dial-in call to the first SIP endpoint Daily reports."""

    def __init__(
        self,
        call_id: str,
        call_domain: str,
        update: UpdateFn,
        *,
        on_failure: Callable[[str], None],
        attempts: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        self.call_id = call_id
        self.call_domain = call_domain
        self._update = update
        self._on_failure = on_failure
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.endpoint: str | None = None
        self.forwarded = False
        self.calls = 0  # pinlessCallUpdate requests made (retries included)
        self.task: asyncio.Task[None] | None = None

    def on_ready(self, sip_endpoint: str) -> None:
        """``on_dialin_ready``: act on the first endpoint only (loop thread)."""
        if self.endpoint is not None:
            log.info("dial-in ready again (%s): already forwarding, ignored", sip_endpoint)
            return
        if not sip_endpoint:
            log.warning("dial-in ready without a SIP endpoint: ignored")
            return
        self.endpoint = sip_endpoint
        self.task = asyncio.get_running_loop().create_task(self._forward(sip_endpoint))

    async def _forward(self, sip_uri: str) -> None:
        error = ""
        for attempt in range(1, self.attempts + 1):
            self.calls += 1
            try:
                await self._update(self.call_id, self.call_domain, sip_uri)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is reported below
                error = redact(str(exc)) or type(exc).__name__
                log.warning(
                    "pinlessCallUpdate attempt %d/%d failed: %s", attempt, self.attempts, error
                )
                if _is_final(exc) or attempt == self.attempts:
                    break
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            else:
                self.forwarded = True
                log.info("dial-in call %s forwarded to the room", self.call_id)
                return
        self._on_failure(f"could not forward the phone call into the room: {error}")

    async def aclose(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def dialout_settings(target: str) -> dict[str, str]:
    """``start_dialout`` settings for a ``+E.164`` number or a ``sip:`` URI (UsageError else)."""
    value = target.strip()
    if value.lower().startswith(("sip:", "sips:")):
        return {"sipUri": value}
    number = re.sub(r"[\s\-().]", "", value)
    if _E164.match(number):
        return {"phoneNumber": number}
    raise UsageError(
        f"--dial-out {target!r}: expected a phone number in E.164 form (+14155550123) "
        "or a SIP URI (sip:user@host)"
    )


class DialOut:
    """Runs ``start_dialout`` and retries it on errors, ``retries`` times at most.

    ``start(settings, done)`` is supplied by the transport: it calls the SDK and arranges for
    ``done(error | None)`` to run on the loop with the completion's error."""

    def __init__(
        self,
        target: str,
        start: Callable[[dict[str, str], Callable[[str | None], None]], None],
        *,
        on_failure: Callable[[str], None],
        retries: int = 3,
        backoff_s: float = 2.0,
    ) -> None:
        self.settings = dialout_settings(target)
        self._start = start
        self._on_failure = on_failure
        self.retries = retries
        self.backoff_s = backoff_s
        self.attempts = 0
        self.answered = False
        self.failed = False
        self._pending: asyncio.TimerHandle | None = None
        self._failed_attempt = 0  # the attempt whose failure is already being handled

    def start(self) -> None:
        self._pending = None
        self.attempts += 1
        log.info("dialing out (attempt %d)", self.attempts)
        attempt = self.attempts
        self._start(self.settings, lambda error: self._done(attempt, error))

    def _done(self, attempt: int, error: str | None) -> None:
        if error:
            self._attempt_failed(attempt, str(error))

    def on_event(self, kind: str, data: dict[str, Any]) -> None:
        """``on_dialout_*`` events (loop thread)."""
        if kind == "error":
            self._attempt_failed(self.attempts, str(data.get("errorMsg") or data or "error"))
        elif kind in ("answered", "connected"):
            self.answered = self.answered or kind == "answered"
            log.info("dial-out %s", kind)
        elif kind == "warning":
            log.warning("dial-out warning: %s", data)
        elif kind == "stopped":
            log.info("dial-out call ended")

    def _attempt_failed(self, attempt: int, error: str) -> None:
        if self.failed or attempt <= self._failed_attempt:
            return  # completion error and on_dialout_error for the same attempt: handle once
        self._failed_attempt = attempt
        log.warning("dial-out attempt %d failed: %s", attempt, redact(error))
        if attempt > self.retries:
            self.failed = True
            self._on_failure(f"dial-out failed after {attempt} attempt(s): {redact(error)}")
            return
        delay = self.backoff_s * 2 ** (attempt - 1)
        self._pending = asyncio.get_running_loop().call_later(delay, self.start)

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
