"""The system tools the tests run (real speech: espeak-ng speaks, sox converts).

The list lives in ``.ci/system-tools`` (``<executable> <package>`` per line), which
``.ci/run`` also reads to install what is missing. A test that needs a tool calls
:func:`require`: a missing tool fails the test with a message naming the tool and how to
install it. Never a skip: the suite is offline, not optional."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

LIST = Path(__file__).resolve().parent.parent / ".ci" / "system-tools"


def packages() -> dict[str, str]:
    """Executable -> Debian/Ubuntu package, as listed in ``.ci/system-tools``."""
    out: dict[str, str] = {}
    for line in LIST.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            exe, package = line.split()
            out[exe] = package
    return out


def missing_message(exe: str) -> str:
    package = packages()[exe]
    return (
        f"the tests need the system tool `{exe}`, which is not on PATH: install it with "
        f"`sudo apt-get install {package}` (Debian/Ubuntu), or run `bash .ci/run`, "
        f"which installs every tool listed in .ci/system-tools"
    )


def require(exe: str) -> str:
    """The path of ``exe``; fails the calling test (or fixture) if it is not installed."""
    known = packages()
    if exe not in known:  # a new tool goes into .ci/system-tools, so .ci/run installs it
        raise ValueError(f"{exe!r} is not listed in {LIST} (listed: {', '.join(known)})")
    path = shutil.which(exe)
    if path is None:
        pytest.fail(missing_message(exe), pytrace=False)
    return path
