"""Importing the user's own modules (``[agent] tools``, ``[bot] hooks``).

Every command imports them the same way: with the working directory importable, as
``python -m`` makes it, so ``mybot/tools.py`` next to ``bot.toml`` loads as
``mybot.tools`` without ``PYTHONPATH=.``.

A module that fails while importing (it raises, or calls ``sys.exit``) is told in one line
(:func:`import_failure`): the loaders turn it into a config error naming the module.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


class ModuleExited(Exception):
    """A user module called ``sys.exit`` (raised ``SystemExit``) while being imported."""

    def __init__(self, code: object) -> None:
        super().__init__(f"it called sys.exit({code!r}) while being imported")
        self.code = code


def import_user_module(name: str) -> ModuleType:
    """Import ``name`` with the working directory on ``sys.path`` (appended, so it never
    shadows an installed package; it stays there, as the module may import its siblings
    later). Raises what :func:`importlib.import_module` raises, but a ``SystemExit`` from
    the module's own code becomes :class:`ModuleExited` (a module cannot end the process by
    being imported)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except SystemExit as exc:
        raise ModuleExited(exc.code) from None


def import_failure(exc: BaseException) -> str:
    """One line saying why a module failed to import: ``ValueError: bad`` (the first line
    of a message that has several, such as pydantic's), or what :class:`ModuleExited` says."""
    if isinstance(exc, ModuleExited):
        return str(exc)
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(lines) > 1:
        text += " …"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
