"""Importing the user's own modules (``[agent] tools``, ``[bot] hooks``).

Every command imports them the same way: with the working directory importable, as
``python -m`` makes it, so ``mybot/tools.py`` next to ``bot.toml`` loads as
``mybot.tools`` without ``PYTHONPATH=.``.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


def import_user_module(name: str) -> ModuleType:
    """Import ``name`` with the working directory on ``sys.path`` (appended, so it never
    shadows an installed package; it stays there, as the module may import its siblings
    later). Raises what :func:`importlib.import_module` raises."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    return importlib.import_module(name)
