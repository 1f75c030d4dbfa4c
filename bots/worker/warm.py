"""One bot process of a worker: imports everything a call needs, waits for its one call on
stdin, runs it (the same code as ``botrun <transport> ...``), then exits.

Protocol with the worker (:mod:`.pool`):

* stdout carries the bot's own output (logged by the worker, tagged with the session id)
  and this module's status lines, which start with :data:`MARK`: ``warm`` once the heavy
  imports are done, ``ready <unix time>`` when the agent session is ready (the bot has
  joined and can talk);
* stdin carries one JSON line: ``{"argv": [...], "env": {...}}``. The worker keeps stdin
  open for the whole call: end of file means the worker is gone, and the bot leaves the
  call (SIGTERM to itself: the runner's clean leave). End of file before a call: exit 0.
  A later line ``{"stop": "<why>"}`` is the worker asking the bot to leave (``DELETE
  /sessions/ID``, the end of its drain): the same clean leave, with ``<why>`` as the call
  summary's reason (what the bot's ``on_call_end`` hook sees) instead of ``SIGTERM``.

One call per process (daily-python may be initialised once per process, and no call
inherits another's memory): a new warm process replaces each one used.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from botrun.core import heap
from botrun.core.hookspecs import hookimpl

MARK = "@@botrun-worker "
MAX_LINE = 4096  # a stop line is short: more without a newline is dropped
MAX_JOB_LINE = 1 << 20
#: Loaded before the call arrives: the runner, the bridge and what they import (NumPy,
#: SciPy, pydantic, websockets), and the plugin entry points.
PRELOAD = (
    "botrun.bots.cli",
    "botrun.bots.runner",
    "botrun.core.bridge",
    "botrun.core.console",
    "botrun.core.config",
    # imported inside functions by the resampler and the WAV reader: 1.5 s on its own
    "scipy.signal",
    "scipy.io.wavfile",
)


def status(line: str) -> None:
    sys.stdout.write(MARK + line + "\n")
    sys.stdout.flush()


def preload(transports: list[str]) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    from botrun.core.plugins import transports as installed

    specs = installed()
    for name in transports:
        if name in specs:
            # the transport's own heavy module, when it follows the usual layout
            with contextlib.suppress(ImportError):
                importlib.import_module(f"botrun.transports.{name}.transport")


class ReadyReporter:
    """A botrun plugin (observer) telling the worker when the agent session is ready."""

    def __init__(self) -> None:
        self.sent = False

    @hookimpl
    def botrun_observe(self, event: Any) -> None:
        kind, state = getattr(event, "kind", ""), getattr(event, "state", "")
        if not self.sent and kind == "session.state" and state == "ready":
            self.sent = True
            status(f"ready {time.time():.6f}")


def stop_reason(line: bytes) -> str | None:
    """The reason of a ``{"stop": "<why>"}`` line from the worker (None: not one)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    why = data.get("stop") if isinstance(data, dict) else None
    if not isinstance(why, str) or not why.strip():
        return None
    return why.strip()


def leave(reason: str) -> None:
    """Leave the call cleanly (the runner's SIGTERM), with ``reason`` as its summary reason."""
    from botrun.bots.runner import set_signal_reason

    set_signal_reason(signal.SIGTERM, reason)
    os.kill(os.getpid(), signal.SIGTERM)


def watch_parent() -> None:
    """A stop line: leave the call cleanly, saying why. Stdin closing means the worker
    died: leave too (once: a second SIGTERM would exit at once)."""
    pending = b""
    try:  # the raw descriptor: a buffered reader's lock would block interpreter shutdown
        while chunk := os.read(0, 4096):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                reason = stop_reason(line)
                if reason is not None:
                    leave(reason)
                    return
            pending = pending[-MAX_LINE:]
    except OSError:
        pass
    leave("the worker is gone (its stdin closed)")


def read_line(fd: int = 0) -> bytes:
    """One line from ``fd``, read unbuffered: what follows it stays for :func:`watch_parent`."""
    out = bytearray()
    while len(out) < MAX_JOB_LINE:
        byte = os.read(fd, 1)
        if not byte or byte == b"\n":
            break
        out += byte
    return bytes(out)


def main() -> None:
    transports = [t for t in os.environ.get("BOTRUN_WORKER_PRELOAD", "").split(",") if t]
    preload(transports)
    heap.settle()  # before the call's objects exist (core/heap.py)
    status("warm")
    line = read_line()
    if not line.strip():
        sys.exit(0)  # the worker let this process go without a call
    try:
        job = json.loads(line)
        argv = [str(a) for a in job["argv"]]
        env = dict(job.get("env") or {})
    except (ValueError, KeyError, TypeError) as exc:
        print(f"botrun worker: unreadable call from the worker: {exc}", flush=True)
        sys.exit(2)
    for key, value in env.items():
        if value is None:
            os.environ.pop(str(key), None)
        else:
            os.environ[str(key)] = str(value)
    if job.get("cwd"):
        os.chdir(str(job["cwd"]))
    threading.Thread(target=watch_parent, name="worker-watch", daemon=True).start()

    from botrun.bots.cli import main as cli_main
    from botrun.core.plugins import get_plugin_manager

    get_plugin_manager().register(ReadyReporter(), name="botrun-worker-ready")
    cli_main(argv)
    sys.exit(0)


if __name__ == "__main__":
    main()
