"""The WAV transport's keypad schedule: ``--dtmf "2.5:1,4.0:#"`` (issue 16).

Each entry is ``SECONDS:DIGITS``: at that call time (seconds since the call started, in
meeting time, so ``--speed`` scales it like the inputs' ``--at``) the first phone caller in
the call, else its first participant, presses the digits (nobody in the call: skipped).
Bad input is a :class:`UsageError` (exit 2) naming the entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from botrun.core.errors import UsageError

DIGITS = frozenset("0123456789*#ABCD")
EXAMPLE = '--dtmf "2.5:1,4.0:#"'


@dataclass(frozen=True)
class KeyPress:
    at_s: float
    digits: str


def parse_dtmf_schedule(text: str | None) -> list[KeyPress]:
    """``"2.5:1,4.0:#"`` → key presses in time order (an empty or missing value: none)."""
    if text is None or not str(text).strip():
        return []
    presses = []
    for raw in str(text).split(","):
        entry = raw.strip()
        at, sep, digits = entry.partition(":")
        if not sep or not at.strip() or not digits.strip():
            raise UsageError(
                f"--dtmf {entry!r}: expected SECONDS:DIGITS entries separated by commas, "
                f"e.g. {EXAMPLE}"
            )
        try:
            at_s = float(at)
        except ValueError:
            at_s = math.nan
        if not math.isfinite(at_s) or at_s < 0:
            raise UsageError(
                f"--dtmf {entry!r}: {at.strip()!r} is not a time in seconds (a number >= 0), "
                f"e.g. {EXAMPLE}"
            )
        keys = digits.strip().upper()
        bad = sorted({d for d in digits.strip() if d.upper() not in DIGITS})
        if bad:
            raise UsageError(
                f"--dtmf {entry!r}: {''.join(bad)!r} is not a keypad digit (0-9, *, #, A-D)"
            )
        presses.append(KeyPress(at_s, keys))
    return sorted(presses, key=lambda p: p.at_s)
