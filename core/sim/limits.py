"""The ranges the simulator's numeric settings must fall in (``agent-sim`` options,
``Simulator(...)`` arguments, scenario numbers). A plain module with no imports, so the CLI can
check its options without loading the server. Every bound is finite: ``inf`` and ``nan`` are
refused everywhere (``--speed inf`` used to make the simulator wait forever)."""

from __future__ import annotations

import math

#: --speed / Simulator(speed=): the time factor.
SPEED = (0.01, 100.0)
#: The longest wait a setting may ask for, in seconds (a day): resume window, drop-after,
#: goAway delay, session limit.
MAX_WAIT_S = 86400.0
#: --resume-window / Simulator(resume_window_s=).
RESUME_WINDOW_S = (0.0, MAX_WAIT_S)
#: --go-away-after / Simulator(go_away_after_s=).
GO_AWAY_AFTER_S = (0.1, MAX_WAIT_S)
#: --drop-after / [faults] drop_after_s.
DROP_AFTER_S = (0.0, MAX_WAIT_S)
#: --ready-delay / [faults] ready_delay_s.
READY_DELAY_S = (0.0, 600.0)
#: --port.
PORT = (0, 65535)
#: Counts (--fail-first, --drop-at-audio): any whole number from 0.
COUNT = (0, math.inf)


def problem(value: float, bounds: tuple[float, float]) -> str | None:
    """Why ``value`` is not a finite number within ``bounds`` (inclusive), or None."""
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    lo, hi = bounds
    if not lo <= value <= hi:
        return f"{value:g} is not in {lo:g}..{hi:g}" if hi < math.inf else f"{value:g} is < {lo:g}"
    return None
