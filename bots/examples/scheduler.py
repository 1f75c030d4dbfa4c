"""Example bot: an appointment scheduler (check free slots, book one).

Run it with any transport, e.g. ``botrun agora --channel NAME --config configs/scheduler.toml``.
Opening hours come from a small bundled file (``data/schedule.json``); bookings are kept in
memory for the life of the process (a real bot would write to its calendar here). The tools
are plain functions marked with ``@tool``, so the runner calls them in a worker thread; a lock
keeps two bookings from taking the same slot.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from botrun.core.tools import tool

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def load_schedule() -> dict[str, Any]:
    text = resources.files("botrun.bots.examples").joinpath("data/schedule.json").read_text()
    return json.loads(text)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class Scheduler:
    """Free slots and bookings for one business. ``today`` is injectable for tests."""

    def __init__(
        self,
        schedule: dict[str, Any] | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.schedule = schedule or load_schedule()
        self._today = today
        self._lock = threading.Lock()
        self._booked: dict[tuple[str, str], dict[str, str]] = {}
        self._numbers = itertools.count(1001)

    def parse_date(self, text: str) -> dt.date:
        """``YYYY-MM-DD``, ``today`` or ``tomorrow``; ValueError (told to the agent) else."""
        word = text.strip().lower()
        today = self._today()
        if word == "today":
            return today
        if word == "tomorrow":
            return today + dt.timedelta(days=1)
        try:
            day = dt.date.fromisoformat(word)
        except ValueError:
            raise ValueError(f"date {text!r} is not YYYY-MM-DD (or 'today'/'tomorrow')") from None
        if day < today:
            raise ValueError(f"{day.isoformat()} is in the past (today is {today.isoformat()})")
        ahead = int(self.schedule.get("max_days_ahead", 60))
        if (day - today).days > ahead:
            raise ValueError(f"bookings open at most {ahead} days ahead")
        return day

    def all_slots(self, day: dt.date) -> list[str]:
        hours = self.schedule["hours"].get(_WEEKDAYS[day.weekday()])
        if not hours:
            return []
        step = int(self.schedule.get("slot_minutes", 30))
        lunch = self.schedule.get("lunch")
        out = []
        for start in range(_minutes(hours[0]), _minutes(hours[1]) - step + 1, step):
            if lunch and _minutes(lunch[0]) <= start < _minutes(lunch[1]):
                continue
            out.append(_hhmm(start))
        return out

    def free_slots(self, day: dt.date) -> list[str]:
        key = day.isoformat()
        with self._lock:
            return [t for t in self.all_slots(day) if (key, t) not in self._booked]

    def check_slots(self, date: str) -> dict[str, Any]:
        day = self.parse_date(date)
        free = self.free_slots(day)
        result: dict[str, Any] = {
            "date": day.isoformat(),
            "weekday": _WEEKDAYS[day.weekday()],
            "free": free,
        }
        if not self.all_slots(day):
            result["note"] = f"{self.schedule.get('business', 'We')} is closed that day."
        return result

    def book(self, date: str, time: str, name: str) -> dict[str, Any]:
        day = self.parse_date(date)
        if not name.strip():
            raise ValueError("a name is needed for the booking")
        slot = time.strip()
        if len(slot) == 4 and slot[1] == ":":
            slot = "0" + slot  # "9:30" -> "09:30"
        key = (day.isoformat(), slot)
        with self._lock:
            if slot not in self.all_slots(day):
                return {
                    "booked": False,
                    "reason": f"{slot} is not a bookable time that day",
                    "free": [t for t in self.all_slots(day) if (key[0], t) not in self._booked],
                }
            if key in self._booked:
                return {
                    "booked": False,
                    "reason": f"{slot} was just taken",
                    "free": [t for t in self.all_slots(day) if (key[0], t) not in self._booked],
                }
            booking = {
                "confirmation": f"BK-{next(self._numbers)}",
                "date": key[0],
                "time": slot,
                "name": name.strip(),
            }
            self._booked[key] = booking
        return {"booked": True, **booking}


_default = Scheduler()


@tool
def check_slots(date: str) -> dict[str, Any]:
    """List the free appointment times on a day.

    Args:
        date: The day as YYYY-MM-DD, or "today" / "tomorrow".
    """
    return _default.check_slots(date)


@tool
def book(date: str, time: str, name: str) -> dict[str, Any]:
    """Book an appointment. Check the free times first and confirm them with the caller.

    Args:
        date: The day as YYYY-MM-DD, or "today" / "tomorrow".
        time: A free start time from check_slots, as HH:MM (24-hour clock).
        name: The caller's full name for the booking.
    """
    return _default.book(date, time, name)
