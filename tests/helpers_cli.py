"""Run the real `botrun` command in a subprocess (what a user types)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_botrun(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "botrun.bots.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )
