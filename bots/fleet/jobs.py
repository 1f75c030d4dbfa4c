"""A call job: what the front door puts on the queue and a worker runs.

A job is *which transport* + *its options* + *where it came from*, nothing else: the worker
turns it into one bot process (``botrun <transport> <options>``) with its own config and
secrets. No secret ever travels through Redis (a Daily meeting token is made by the worker
that runs the call). A new kind of call (a Twilio media stream, say) is a new ``transport``
name plus a :class:`JobKind` on the worker, with no change to the queue.

The job id *is* the session id. A dial-in call's id is derived from Daily's call id, so the
same webhook delivered twice, to any front door of the fleet, names the same job and arq's
``_job_id`` refuses the second one (while the job is queued, running, or its result kept).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

#: The arq queue (a Redis sorted set) every front door writes and every worker reads.
QUEUE_NAME = "botrun:queue"
#: The arq function name of a call job.
RUN_CALL = "run_call"
#: Shared options (besides ``name``) a transport's jobs may set because its workers confine
#: them: a ``wav`` job's transcript and recording are paths relative to the worker's
#: ``--files`` folder, like its input and output (:mod:`botrun.bots.worker.wav_kind`).
FILE_OPTIONS: dict[str, tuple[str, ...]] = {"wav": ("transcript", "record")}
#: How long a finished call's job result (and so its dedupe) is kept, seconds: longer than
#: the replay window of a signed webhook (serve.webhook.REMEMBER_S).
KEEP_RESULT_S = 3600


@dataclass(frozen=True)
class CallJob:
    """One call to run. ``options`` are the transport command's options by name (a string,
    number or bool, or a list of them for a repeatable option)."""

    session_id: str
    transport: str
    options: dict[str, Any] = field(default_factory=dict)
    #: Where it came from: ``dialin`` (a webhook), ``start`` (POST /start), ...
    source: str = "start"
    #: The provider's call id (dial-in), used for dedupe.
    call_id: str | None = None
    caller: str | None = None
    #: Wall-clock time the front door received the request (start-latency metric).
    received_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> CallJob:
        """A job read back from Redis; ``ValueError`` when it is not one of ours."""
        if not isinstance(data, dict):
            raise ValueError("a call job is an object")
        try:
            job = cls(**data)
        except TypeError as exc:
            raise ValueError(f"not a call job: {exc}") from None
        if not isinstance(job.session_id, str) or not isinstance(job.transport, str):
            raise ValueError("a call job needs a session id and a transport")
        if not isinstance(job.options, dict):
            raise ValueError("a call job's options are an object")
        return job


def new_session_id() -> str:
    return uuid.uuid4().hex[:20]


def session_id_for_call(call_id: str) -> str:
    """The session (and job) id of a provider's call id: the same call, the same job, on
    every front door (hashed: a call id is whatever the provider sends)."""
    return "c" + hashlib.sha256(call_id.encode()).hexdigest()[:19]


def dumps(data: dict[str, Any]) -> bytes:
    """arq's job serializer: JSON, never pickle (nobody who can write to Redis gets to run
    code in a worker). What JSON cannot hold (an exception in a result) becomes its repr."""
    return json.dumps(data, default=repr, separators=(",", ":")).encode()


def loads(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a job")
    return data


def option_argv(options: dict[str, Any]) -> list[str]:
    """Transport options as command-line flags (``{"input": ["a.wav"], "speed": 2}`` ->
    ``--input=a.wav --speed=2``; ``True`` -> ``--flag``, ``False`` -> ``--no-flag``; ``None``
    -> nothing). Lists pair by position, as in a config table: their values are given
    round by round in the options' order, so ``{"input": ["a", "b"], "at": [0, 2.5]}`` is
    ``--input=a --at=0 --input=b --at=2.5`` (an ``--at`` belongs to the ``--input`` before
    it)."""
    argv: list[str] = []
    lists = {k: v for k, v in options.items() if isinstance(v, list)}
    for i in range(max((len(v) for v in lists.values()), default=0)):
        for name, values in lists.items():
            if i < len(values):
                argv += _flag(name, values[i])
    for name, value in options.items():
        if not isinstance(value, list):
            argv += _flag(name, value)
    return argv


def _flag(name: str, v: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if v is True:
        return [flag]
    if v is False:
        return ["--no-" + name.replace("_", "-")]
    if v is None:
        return []
    return [f"{flag}={v}"]  # one token: a value starting with "-" stays a value
