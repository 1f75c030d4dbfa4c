"""The fleet's Redis connection: arq's pool, opened with a clear one-line error.

Redis is the one shared piece: the queue (arq), each worker's heartbeat and the call
records (:mod:`.store`). A Redis URL may carry a password: only :func:`describe` (host,
port, database) ever reaches a log line or an error.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from botrun.core.errors import BotrunError, UsageError

if TYPE_CHECKING:
    from arq.connections import ArqRedis, RedisSettings

#: What a lost or absent Redis raises (redis-py's connection errors, a socket's, a timeout).
REDIS_DOWN: tuple[type[BaseException], ...] = (OSError, TimeoutError, asyncio.TimeoutError)


def redis_errors() -> tuple[type[BaseException], ...]:
    """The exceptions meaning "Redis cannot be reached now" (redis-py imported lazily)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (*REDIS_DOWN, RedisConnectionError, RedisTimeoutError)


class RedisUnavailable(BotrunError):
    """Redis cannot be reached (exit code 1)."""


def describe(url: str) -> str:
    """``redis://host:port/db`` without user or password, for logs and errors."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "redis (unparsable URL)"
    db = parts.path.lstrip("/") or "0"
    return f"{parts.scheme}://{host}:{port}/{db}"


def as_given(url: str) -> str:
    """``url`` as the user typed it, for an error about it, with a password (if any) masked:
    ``redis://:***@host/0``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def settings_for(url: str, *, timeout_s: float = 2.0) -> RedisSettings:
    """arq's connection settings for ``url``; :class:`UsageError` for a bad URL."""
    from arq.connections import RedisSettings

    try:
        settings = RedisSettings.from_dsn(url)
    except (RuntimeError, ValueError):
        raise UsageError(
            f"--queue {as_given(url)} is not a Redis URL (redis://host:port/db, "
            "rediss:// for TLS, unix:///path.sock)"
        ) from None
    settings.conn_timeout = max(1, round(timeout_s))
    settings.conn_retries = 0
    return settings


async def connect(url: str, *, timeout_s: float = 2.0) -> ArqRedis:
    """An arq pool on ``url`` that answered a PING, or :class:`RedisUnavailable` naming the
    server (never its password). Commands on it fail fast (``timeout_s``) while Redis is
    away and reconnect by themselves when it is back."""
    from arq.connections import create_pool

    from . import jobs

    settings = settings_for(url, timeout_s=timeout_s)
    try:
        pool = await create_pool(
            settings,
            job_serializer=jobs.dumps,
            job_deserializer=jobs.loads,
            default_queue_name=jobs.QUEUE_NAME,
        )
    except redis_errors() as exc:
        raise RedisUnavailable(f"cannot reach Redis at {describe(url)}: {reason(exc)}") from None
    # Fail fast on a lost server instead of hanging a request (redis-py's default: none).
    pool.connection_pool.connection_kwargs["socket_timeout"] = timeout_s
    return pool


def reason(exc: BaseException) -> str:
    """A short reason for a Redis failure, without anything from the URL."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
