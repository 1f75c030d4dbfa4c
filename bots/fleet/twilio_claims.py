"""Who answers a queued Twilio call: the worker that took its job, or "busy".

A Twilio voice webhook must be answered with TwiML naming the Media Streams URL, so the
front door has to learn which worker took the call's job before it answers. The worker
that takes a ``twilio`` job *claims* the call (``SET NX`` of its public URL) and announces
it (``PUBLISH``); the front door waits for that announcement up to the queue wait, and if
none came it claims the call itself as :data:`BUSY` (the caller is told the lines are
busy). ``SET NX`` decides who wins when both happen at once: a worker that loses ends its
job at once (its slot is free), a front door that loses answers with the worker's URL.
Every front door answering a retried webhook for the same call reads the same claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arq.connections import ArqRedis

CLAIM_PREFIX = "botrun:twilio:claim:"
TAKEN_CHANNEL_PREFIX = "botrun:twilio:taken:"
#: Early status callbacks of an outbound call (before its voice webhook), by CallSid.
EARLY_PREFIX = "botrun:twilio:early:"
#: The claim of a call the front door gave up on (the caller heard "busy").
BUSY = "busy"
#: Claims are kept as long as a job's result (the dedupe window).
CLAIM_TTL_S = 3600
EARLY_TTL_S = 600


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def claim(redis: ArqRedis, session_id: str, value: str) -> str:
    """Claim the call for ``value`` (a worker's public URL, or :data:`BUSY`); returns the
    value that holds the claim now (``value`` when this call won)."""
    key = CLAIM_PREFIX + session_id
    if await redis.set(key, value, nx=True, ex=CLAIM_TTL_S):
        if value != BUSY:
            await redis.publish(TAKEN_CHANNEL_PREFIX + session_id, value)
        return value
    held = await redis.get(key)
    return _text(held) if held is not None else value


async def current(redis: ArqRedis, session_id: str) -> str | None:
    held = await redis.get(CLAIM_PREFIX + session_id)
    return None if held is None else _text(held)


async def wait_claimed(redis: ArqRedis, session_id: str, timeout_s: float) -> str | None:
    """The claim's value once someone claims the call, or None after ``timeout_s``.
    Subscribes before reading the key, so a claim made in between is not missed."""
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(TAKEN_CHANNEL_PREFIX + session_id)
        held = await current(redis, session_id)
        if held is not None:
            return held
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if msg is not None and msg.get("type") == "message":
                return _text(msg["data"])
        return await current(redis, session_id)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(pubsub.aclose())


async def note_early_status(redis: ArqRedis, call_sid: str, status: str) -> None:
    key = EARLY_PREFIX + call_sid
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, status)
        pipe.expire(key, EARLY_TTL_S)
        await pipe.execute()


async def early_statuses(redis: ArqRedis, call_sid: str) -> list[str]:
    raw = await redis.lrange(EARLY_PREFIX + call_sid, 0, -1)  # type: ignore[misc]
    return [_text(v) for v in raw]
