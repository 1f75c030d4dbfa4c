"""Where botrun writes files: an output file's directory must already exist (botrun never
creates missing parent directories, e.g. ``/nonexist`` at the filesystem root when run as
root); a ``--record DIR`` folder itself may be created, its parent must exist."""

from __future__ import annotations

import os
from pathlib import Path

from botrun.core.errors import UsageError


def check_output_file(path: Path, what: str) -> None:
    """A :class:`UsageError` naming ``what`` (e.g. ``--output``) and the directory when
    ``path``'s parent directory does not exist."""
    _check_parent(path, what)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory")


def check_output_dir(path: Path, what: str) -> None:
    """``path`` may be created, its parent must exist."""
    _check_parent(path, what)


def _check_parent(path: Path, what: str) -> None:
    parent = path.parent
    # (a parent that is a file is left to the writer's own "Not a directory" error)
    if not parent.exists():
        raise UsageError(f"{what} {path}: directory {parent} does not exist (create it first)")


def same_path(a: Path, b: Path) -> bool:
    """``a`` and ``b`` name one file: the same path once resolved (a file that does not
    exist yet included), or the same file on disk (a hard link). Devices and pipes
    (``/dev/null``) never collide: writing one twice overwrites nothing."""
    if _special(a) or _special(b):
        return False
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, RuntimeError):
        return False


def _special(p: Path) -> bool:
    try:
        return p.exists() and not p.is_file() and not p.is_dir()
    except OSError:
        return False


def refuse_collisions(outputs: dict[str, Path]) -> None:
    """A :class:`UsageError` when two of the files a command writes (keyed by what to call
    them, e.g. ``--output``, ``--record's bot.wav``) are one file: one would overwrite the
    other."""
    items = list(outputs.items())
    for i, (name_a, a) in enumerate(items):
        for name_b, b in items[i + 1 :]:
            if same_path(a, b):
                raise UsageError(
                    f"{name_a} {a} and {name_b} {b} are the same file: one would overwrite "
                    "the other (write them to different files)"
                )
