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

from botrun.core.hookspecs import hookimpl

MARK = "@@botrun-worker "
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


def watch_parent() -> None:
    """Stdin closing means the worker died: leave the call cleanly."""
    try:  # the raw descriptor: a buffered reader's lock would block interpreter shutdown
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    transports = [t for t in os.environ.get("BOTRUN_WORKER_PRELOAD", "").split(",") if t]
    preload(transports)
    status("warm")
    line = sys.stdin.buffer.readline()
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
