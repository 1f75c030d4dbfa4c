"""The ``wav`` transport's lists given by position pair with its inputs, one value each.

A ``[wav]`` table (``input = ["a.wav", "b.wav"]``, ``participant = ["Ann", ""]``) and a fleet
job's JSON options pair the ``at``, ``participant`` and ``phone`` lists with ``input`` by
position, so one value missing would silently shift the rest or leave an input with its
defaults. One rule for both, refused before anything runs: ``botrun wav`` (a usage error,
exit 2) and the fleet front door (a 400) call :func:`unpaired`. Flags are not positional
(each ``--participant`` follows its ``--input``) and are not checked here. Light module:
the front door imports it through the transport's spec."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: The options paired with ``input`` by position, and what to give for an input that has
#: no value of its own.
PAIRED: dict[str, str] = {
    "at": "0 for one that starts at once",
    "participant": '"" for one named after its file',
    "phone": '"" for one that is not a phone caller',
}


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple) else 1  # (one value: a list of one)


def unpaired(options: Mapping[str, Any], label: Callable[[str], str]) -> str | None:
    """Why the lists in ``options`` (given by position) do not have one value per input,
    or None when they do (or no input is given: that error is someone else's). Only the
    keys of :data:`PAIRED` present in ``options`` are checked; ``label(name)`` names an
    option in the message (``bot.toml: [wav] participant``, ``option 'participant'``)."""
    inputs = options.get("input")
    if inputs is None:
        return None
    n = _count(inputs)
    for key, blank in PAIRED.items():
        if key in options and options[key] is not None:
            given = _count(options[key])
            if given != n:
                return (
                    f"{label(key)} has {given} value(s) for {n} inputs: give one per input, "
                    f"in the same order ({blank})"
                )
    return None
