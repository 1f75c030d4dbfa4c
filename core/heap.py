"""The process's heap, settled once before the first call's audio flows.

CPython's full garbage collection walks every container object in the process while holding
the GIL. After NumPy, SciPy, websockets and pydantic are imported that is some 70,000
objects: 20-25 ms on a quiet core, 45-90 ms measured under 50 calls' load -- and for that
long no thread runs Python, so every call's pacer misses its writes and every bot's voice
has a gap at the same moment (``benchmarks/bridge.py``: up to 6 gaps of 75 ms in a 20 s
run). The objects the imports and the process's setup made live as long as the process;
:func:`settle` moves them out of the collector's sight (``gc.freeze()``) once, after a
collection, so a later full collection walks only what calls made since. They are still
freed by reference counting; only a reference cycle among them that becomes garbage
later is never reclaimed, which is why this is done once. ``Bridge.run`` settles
the heap before its call joins, if nothing did earlier; that call's own objects (its bridge,
transport, tools) are then frozen too, which costs nothing in a process made for one call
(the CLI, a worker's bot process). A process that hosts many calls (``botrun serve`` and
``botrun worker`` taking Twilio calls in-process) calls :func:`settle_before_calls` as it
starts, before any call exists: no call's state is kept for good.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_settled = False


def settle() -> bool:
    """Collect, then freeze what survives; the first call in a process only. True when
    this call did it."""
    global _settled
    with _lock:
        if _settled:
            return False
        _settled = True
    gc.collect()
    gc.freeze()
    return True


def settle_before_calls() -> bool:
    """Import what every call uses (the bridge, SciPy's filters), then :func:`settle`: for
    a process about to host calls, before the first one."""
    import scipy.signal  # noqa: F401  (the resampler's filter design)

    from . import bridge  # noqa: F401

    return settle()
