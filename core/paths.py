"""Where botrun writes files: an output file's directory must already exist (botrun never
creates missing parent directories, e.g. ``/nonexist`` at the filesystem root when run as
root); a ``--record DIR`` folder itself may be created, its parent must exist."""

from __future__ import annotations

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
