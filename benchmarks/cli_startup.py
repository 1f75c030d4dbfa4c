"""Wall time of `botrun --help` (target <= 0.3 s): heavy imports must stay lazy.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "botrun.bots.cli", "--help"]
    bare = [sys.executable, "-c", "pass"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the file cache
    times, base = [], []
    for _ in range(args.runs):
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run(bare, capture_output=True, check=True)
        base.append(time.perf_counter() - t)
    med, med0 = statistics.median(times), statistics.median(base)
    print(
        f"botrun --help: median {med * 1000:.0f} ms, min {min(times) * 1000:.0f} ms "
        f"over {args.runs} runs (bare python: {med0 * 1000:.0f} ms)"
    )
    print(f"target 300 ms: {'met' if med <= 0.3 else 'NOT met'} ({med / 0.3:.2f}x of budget)")


if __name__ == "__main__":
    main()
