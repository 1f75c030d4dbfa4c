"""Keep the Agora SDK's ``print()`` lines off botrun's live console.

The published wrapper (agora-python-server-sdk 2.3.x/2.4.x) prints to stdout from its ctypes
callbacks, i.e. on the SDK's native threads: on capability changes after joining, in 2.4.x on
every remote audio subscription (``LocalUser _set_apm_filter_properties``), and while it
downloads its native library at first import. These are Python ``print()`` calls, so they
go through ``sys.stdout``: while an Agora call runs, ``sys.stdout`` is a :class:`SDKStdout`
router that turns writes made by code of the ``agora`` package into DEBUG lines of botrun's
log and passes every other write (the console, the end-of-call summary, user code) to the
original stream unchanged.

What this does not catch: native code writing with C stdio straight to file descriptor 1.
The native library writes its log to the file given at initialisation instead; redirecting
descriptor 1 would also swallow botrun's console, which writes to the same descriptor.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

log = logging.getLogger("botrun.transports.agora.sdk_output")

SDK_PACKAGE = "agora"


class SDKStdout:
    """A ``sys.stdout`` that logs what the SDK's modules print and forwards the rest."""

    def __init__(self, target: TextIO, package: str = SDK_PACKAGE) -> None:
        self.target = target
        self._package = package
        self._partial: dict[int, str] = {}  # per thread: text printed without a newline yet
        self._lock = threading.Lock()

    def _from_sdk(self, depth: int) -> bool:
        try:
            caller = sys._getframe(depth)  # print() is C code: the caller is the writer
        except ValueError:
            return False
        module = caller.f_globals.get("__name__", "")
        return module == self._package or module.startswith(self._package + ".")

    def write(self, text: str) -> int:
        if not self._from_sdk(2):
            return self.target.write(text)
        key = threading.get_ident()
        with self._lock:
            pending = self._partial.pop(key, "") + text
            *lines, rest = pending.replace("\r", "\n").split("\n")
            if rest:
                self._partial[key] = rest
        for line in lines:
            if line.strip():
                log.debug("agora SDK printed: %s", line.rstrip())
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.target.flush()

    def drain(self) -> None:
        """Log what the SDK printed without a final newline."""
        with self._lock:
            rest, self._partial = list(self._partial.values()), {}
        for line in rest:
            if line.strip():
                log.debug("agora SDK printed: %s", line.rstrip())

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer, ...
        return getattr(self.target, name)


def install() -> SDKStdout:
    """Route the SDK's prints to the log from now on (idempotent)."""
    current = sys.stdout
    if isinstance(current, SDKStdout):
        return current
    router = SDKStdout(current)
    sys.stdout = router
    return router


def uninstall(router: SDKStdout) -> None:
    """Put the original stream back, unless someone replaced ``sys.stdout`` since."""
    router.drain()
    if sys.stdout is router:
        sys.stdout = router.target
