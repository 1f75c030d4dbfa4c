"""What the fleet knows about its calls and workers, kept in Redis next to arq's queue.

* ``botrun:call:<session id>`` a hash per call: its transport, source, call id, state
  (``queued`` -> ``starting`` -> ``running`` -> ``ended`` | ``failed`` | ``stopped``), the
  worker running it, its bot's pid, times and outcome. Kept :data:`ENDED_KEEP_S` once over.
* ``botrun:calls`` the ids of calls not over yet (what ``GET /sessions`` lists).
* ``botrun:running`` the ids of calls a worker has taken (queue depth: arq's queue minus
  these, since arq keeps running jobs in its queue).
* ``botrun:worker:<worker id>`` a worker's heartbeat: its description (JSON), written with
  a time to live on every arq health check; a worker that stops beating disappears.

A dead worker (SIGKILL, a lost machine) is noticed by the others on their own health check
(:func:`reap_lost_calls`): each call of a worker whose heartbeat has expired is reported
failed once (``SREM`` decides who reports it), and its arq job is finished as failed so
that it frees its id and is never re-run hours later by arq's in-progress timeout.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from . import jobs

if TYPE_CHECKING:
    from arq.connections import ArqRedis

CALL_PREFIX = "botrun:call:"
ACTIVE_CALLS = "botrun:calls"
#: The ids of calls a worker has taken and not finished (queue depth = queue - these).
RUNNING_CALLS = "botrun:running"
WORKER_PREFIX = "botrun:worker:"
#: The ids of workers that have beaten (dead ones are removed by the reaper).
WORKERS = "botrun:workers"
#: A finished call's record stays this long (seconds) for ``GET /sessions/ID`` and dedupe.
ENDED_KEEP_S = jobs.KEEP_RESULT_S
#: States of a call that is not over.
ACTIVE_STATES = ("queued", "starting", "running", "stopping")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
    for key in ("created_at", "started_at", "ready_at", "ended_at", "expires_at"):
        if key in record:
            try:
                record[key] = float(record[key])
            except ValueError:
                record.pop(key)
    for key in ("pid", "exit_code"):
        if key in record:
            try:
                record[key] = int(record[key])
            except ValueError:
                record.pop(key)
    return record


async def queue_call(redis: ArqRedis, job: jobs.CallJob, *, expires_at: float) -> None:
    """The front door's record of a call it just queued. Written only where no worker has
    written yet (a fast worker may start the job before this runs)."""
    key = CALL_PREFIX + job.session_id
    static = {
        "id": job.session_id,
        "transport": job.transport,
        "source": job.source,
        "created_at": repr(job.received_at),
        "expires_at": repr(expires_at),
    }
    if job.call_id:
        static["call_id"] = job.call_id
    if job.caller:
        static["caller"] = job.caller
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(key, "state", "queued")
        pipe.hset(key, mapping=static)
        pipe.sadd(ACTIVE_CALLS, job.session_id)
        await pipe.execute()


async def update_call(redis: ArqRedis, session_id: str, **fields: Any) -> None:
    """A worker's change to a call record (state, pid, times...). A final state takes the
    call off the active list and gives its record a time to live."""
    key = CALL_PREFIX + session_id
    mapping = {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in fields.items()}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=mapping)
        if fields.get("state") in ACTIVE_STATES:
            pipe.sadd(ACTIVE_CALLS, session_id)
            pipe.persist(key)
            if fields["state"] != "queued":
                pipe.sadd(RUNNING_CALLS, session_id)
        elif "state" in fields:
            pipe.srem(ACTIVE_CALLS, session_id)
            pipe.srem(RUNNING_CALLS, session_id)
            pipe.expire(key, ENDED_KEEP_S)
        await pipe.execute()


async def get_call(redis: ArqRedis, session_id: str) -> dict[str, Any] | None:
    raw = await redis.hgetall(CALL_PREFIX + session_id)  # type: ignore[misc]
    return _decode(raw) if raw else None


async def active_calls(redis: ArqRedis) -> list[dict[str, Any]]:
    """Every call not over yet, each with ``worker_alive`` (False: its worker has stopped
    beating and the call is about to be reported failed)."""
    ids = sorted(_text(i) for i in await redis.smembers(ACTIVE_CALLS))  # type: ignore[misc]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for sid in ids:
            pipe.hgetall(CALL_PREFIX + sid)
        raws = await pipe.execute()
    records = [_decode(r) for r in raws if r]
    workers = await live_workers(redis)
    for record in records:
        worker = record.get("worker")
        if worker:
            record["worker_alive"] = worker in workers
    return sorted(records, key=lambda r: r.get("created_at", 0.0))


async def beat(redis: ArqRedis, worker_id: str, info: dict[str, Any], ttl_s: float) -> None:
    """A worker's heartbeat: its description, alive for ``ttl_s``."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(WORKER_PREFIX + worker_id, json.dumps(info), px=int(ttl_s * 1000))
        pipe.sadd(WORKERS, worker_id)
        await pipe.execute()


async def forget_worker(redis: ArqRedis, worker_id: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(WORKER_PREFIX + worker_id)
        pipe.srem(WORKERS, worker_id)
        await pipe.execute()


async def live_workers(redis: ArqRedis) -> dict[str, dict[str, Any]]:
    """Every worker whose heartbeat has not expired, by id."""
    ids = sorted(_text(i) for i in await redis.smembers(WORKERS))  # type: ignore[misc]
    if not ids:
        return {}
    values = await redis.mget([WORKER_PREFIX + i for i in ids])
    out: dict[str, dict[str, Any]] = {}
    for wid, value in zip(ids, values, strict=True):
        if value is None:
            continue
        try:
            info = json.loads(value)
        except ValueError:
            continue
        if isinstance(info, dict):
            out[wid] = info
    return out


async def reap_lost_calls(redis: ArqRedis, *, grace_s: float = 2.0) -> list[dict[str, Any]]:
    """Report failed every active call whose worker stopped beating, and every queued call
    that expired unstarted (a full fleet past the queue wait). Returns the records reported
    here (another worker reaping at the same time reports the others)."""
    from arq.constants import (
        in_progress_key_prefix,
        job_key_prefix,
        result_key_prefix,
        retry_key_prefix,
    )
    from arq.jobs import serialize_result

    now = time.time()
    reported: list[dict[str, Any]] = []
    calls = await active_calls(redis)
    alive = {r.get("worker") for r in calls if r.get("worker_alive")}
    known = {_text(i) for i in await redis.smembers(WORKERS)}  # type: ignore[misc]
    gone = known - set(await live_workers(redis)) - alive
    if gone:  # workers whose heartbeat expired: off the list
        await redis.srem(WORKERS, *gone)  # type: ignore[misc]
    for record in calls:
        sid = record.get("id")
        state = record.get("state")
        if not sid:
            continue
        if record.get("worker") and record.get("worker_alive") is False and state != "queued":
            error = f"worker {record['worker']} was lost (no heartbeat) during the call"
        elif (
            state == "queued"
            and now > record.get("expires_at", now) + grace_s
            and not await redis.exists(job_key_prefix + sid)
        ):
            error = "not started within the queue wait: every worker was busy"
        else:
            continue
        if not await redis.srem(ACTIVE_CALLS, sid):  # type: ignore[misc]
            continue  # another worker reported it
        await update_call(redis, sid, state="failed", error=error, ended_at=now)
        result = serialize_result(
            jobs.RUN_CALL,
            (),
            {},
            1,
            int(record.get("created_at", now) * 1000),
            False,
            error,
            int(record.get("started_at", now) * 1000),
            int(now * 1000),
            f"{sid}:{jobs.RUN_CALL}",
            jobs.QUEUE_NAME,
            sid,
            serializer=jobs.dumps,
        )
        async with redis.pipeline(transaction=True) as pipe:
            # arq's own finish of a failed job (Worker.finish_failed_job), for a worker that
            # can no longer do it: the id stays taken (dedupe) through the kept result.
            pipe.delete(retry_key_prefix + sid, in_progress_key_prefix + sid, job_key_prefix + sid)
            pipe.zrem(jobs.QUEUE_NAME, sid)
            if result is not None:
                pipe.set(result_key_prefix + sid, result, ex=jobs.KEEP_RESULT_S)
            await pipe.execute()
        record.update(state="failed", error=error)
        reported.append(record)
    return reported


async def queue_depth(redis: ArqRedis) -> int:
    """Jobs waiting in the queue (arq's sorted set holds running jobs too: minus those)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(jobs.QUEUE_NAME)
        pipe.scard(RUNNING_CALLS)
        queued, running = await pipe.execute()
    return max(0, int(queued) - int(running))
