"""The one place daily-python is imported and initialised.

daily-python has process-level rules that each abort the process when broken (see
docs/daily.md): ``Daily.init`` exactly once, no ``CallClient`` before it, and no ``deinit``
while a call client or a ``CustomAudioSource`` is still alive. This module owns those rules:
:func:`ensure_init` initialises once (thread-safe), :func:`hold`/:func:`drop` count the native
objects botrun keeps alive, and the exit hook calls ``deinit`` only when that count is zero.
"""

from __future__ import annotations

import atexit
import logging
import threading
from types import ModuleType
from typing import Any

from botrun.core.errors import UsageError

log = logging.getLogger("botrun.daily")

INSTALL_HINT = "the Daily transport needs daily-python: pip install 'botrun[daily]'"

_lock = threading.Lock()
_initialised = False
_live = 0  # native objects (call clients, custom audio sources) not yet released/dropped
_kept: list[Any] = []  # objects that could not be released safely: kept until process exit
_mics: dict[str, Any] = {}  # virtual microphone devices are process-global: one per name


def load() -> ModuleType:
    """Import daily-python, or raise a :class:`UsageError` naming the extra to install."""
    try:
        import daily
    except ImportError as exc:
        raise UsageError(f"{INSTALL_HINT} ({exc})") from None
    return daily


def ensure_init(worker_threads: int = 2) -> ModuleType:
    """Initialise the SDK once per process (a second ``Daily.init`` aborts the process)."""
    global _initialised
    daily = load()
    with _lock:
        if not _initialised:
            daily.Daily.init(worker_threads=worker_threads, log_level=daily.LogLevel.Off)
            _initialised = True
            atexit.register(_deinit_at_exit)
    return daily


def is_initialised() -> bool:
    return _initialised


def hold() -> None:
    """Count one more live native object (blocks the exit-time ``deinit``)."""
    global _live
    with _lock:
        _live += 1


def drop() -> None:
    """One native object was released (or its last reference dropped)."""
    global _live
    with _lock:
        _live = max(0, _live - 1)


def keep_forever(obj: Any) -> None:
    """Never free ``obj``: for a client whose release would block (its join is still
    pending) or a source with a write still in flight, where freeing it blocks or deadlocks.

    A plain reference is not enough: at interpreter exit the module's objects are freed,
    and freeing a client mid-join blocks until Daily gives up (~20 s offline), after which
    its native thread calls into the finalised interpreter and aborts the process. An extra
    reference count makes the object outlive the interpreter; the OS reclaims it."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    with _lock:
        _kept.append(obj)


def live_objects() -> int:
    return _live + len(_kept)


def microphone(name: str, sample_rate: int) -> Any:
    """The process-global virtual microphone ``name`` (created once; at most one is active)."""
    daily = ensure_init()
    with _lock:
        mic = _mics.get(name)
        if mic is None:
            mic = daily.Daily.create_microphone_device(
                name, sample_rate=sample_rate, channels=1, non_blocking=False
            )
            _mics[name] = mic
        elif mic.sample_rate != sample_rate:
            raise UsageError(
                f"virtual microphone {name!r} already exists at {mic.sample_rate} Hz "
                f"(asked for {sample_rate} Hz)"
            )
    return mic


def _deinit_at_exit() -> None:
    """``Daily.deinit`` only when nothing native is alive; otherwise leave it to the OS
    (deinit with a live client or audio source aborts the process)."""
    if not _initialised or live_objects():
        return
    try:
        load().Daily.deinit()
    except Exception:  # exiting anyway; never turn a clean exit into a crash
        log.debug("Daily.deinit failed", exc_info=True)
