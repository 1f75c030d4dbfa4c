"""The distribution: one `botrun` wheel whose modules all live under `botrun.`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {
    "core": "botrun/core",
    "transports": "botrun/transports",
    "bots": "botrun/bots",
    "configs": "botrun/configs",
}


def test_wheel_contains_every_module_under_botrun(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("botrun-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = set()
    for src, dst in MAPPED.items():
        for f in (ROOT / src).rglob("*"):
            if "__pycache__" in f.parts or not f.is_file():
                continue
            if f.suffix in (".py", ".toml", ".wav", ".json"):
                expected.add(f"{dst}/{f.relative_to(ROOT / src).as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"files missing from the wheel: {missing}"
    assert "botrun/configs/default.toml" in names
    assert "botrun/bots/assets/demo-hello.wav" in names
    top_level = {n.split("/", 1)[0] for n in names}
    assert top_level <= {
        "botrun",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }, top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "botrun = botrun.bots.cli:main" in text
    for plugin in ("wav", "daily", "agora"):
        assert f"{plugin} = botrun.transports.{plugin}.plugin" in text
