"""The WAV transport's keypad schedule: ``--dtmf "2.5:1,4.0:#"`` (issue 16).

Each entry is ``SECONDS:DIGITS``: at that call time (seconds since the call started, in
meeting time, so ``--speed`` scales it like the inputs' ``--at``) the first phone caller in
the call, else its first participant, presses the digits (nobody in the call: skipped).
Bad input is a :class:`UsageError` (exit 2) naming the entry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from botrun.core.errors import UsageError

DIGITS = frozenset("0123456789*#ABCD")
EXAMPLE = '--dtmf "2.5:1,4.0:#"'


@dataclass(frozen=True)
class KeyPress:
    at_s: float
    digits: str


def dtmf_problem(text: Any) -> str | None:
    """What is wrong with a ``--dtmf`` schedule (None: nothing), for checks before a call."""
    try:
        parse_dtmf_schedule(text)
    except UsageError as exc:
        return str(exc).removeprefix("--dtmf ")
    return None


PHONE = re.compile(r"^(\+[1-9]\d{6,14}|sips?:\S+)$")
PHONE_EXPECTED = (
    'expected a phone number in E.164 form (+14155550123), a SIP URI (sip:user@host) or "" '
    "for no phone"
)


def phone_problem(number: Any) -> str | None:
    """What is wrong with a ``--phone`` value ("" : not a phone caller), or None."""
    text = "" if number is None else str(number).strip()
    if text and not PHONE.match(text):
        return f"{str(number)!r}: {PHONE_EXPECTED}"
    return None


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
