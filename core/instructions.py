"""How :meth:`CallContext.say` asks the agent to speak given words: ``reply.create``
instructions in one fixed form, which the simulator recognises and speaks verbatim."""

from __future__ import annotations

import re

_PREFIX = "Say exactly the following to the caller, word for word, and nothing else: "
_SAID = re.compile(r"^" + re.escape(_PREFIX) + r'"(?P<text>.*)"$', re.DOTALL)


def say_instructions(text: str) -> str:
    """The ``reply.create`` instructions that make the agent say ``text``."""
    return f'{_PREFIX}"{text.strip()}"'


def said_text(instructions: str) -> str | None:
    """The words of :func:`say_instructions`, or None for other instructions."""
    m = _SAID.match(instructions)
    return m.group("text") if m else None
