"""The distribution: one `botrun` wheel whose modules all live under `botrun.`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {
    "core": "botrun/core",
    "transports": "botrun/transports",
    "bots": "botrun/bots",
    "configs": "botrun/configs",
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a clean copy of this checkout (once per module): setuptools
    builds in the source tree's build/, whose leftovers from earlier builds would otherwise
    end up in the wheel and hide a missing file."""
    out_dir = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "botrun"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (built,) = out_dir.glob("botrun-*.whl")
    return built


def test_wheel_contains_every_module_under_botrun(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())

    expected = set()
    for src, dst in MAPPED.items():
        for f in (ROOT / src).rglob("*"):
            if "__pycache__" in f.parts or not f.is_file():
                continue
            if f.suffix in (".py", ".toml", ".wav", ".json", ".html", ".js", ".css"):
                expected.add(f"{dst}/{f.relative_to(ROOT / src).as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"files missing from the wheel: {missing}"
    assert "botrun/configs/default.toml" in names
    assert "botrun/bots/assets/demo-hello.wav" in names
    assert "botrun/transports/browser/static/worklet.js" in names  # the page (botrun web)
    top_level = {n.split("/", 1)[0] for n in names}
    assert top_level <= {
        "botrun",
        wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
    }, top_level
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "botrun = botrun.bots.cli:main" in text
    for plugin in ("wav", "daily", "agora", "browser"):
        assert f"{plugin} = botrun.transports.{plugin}.plugin" in text


def test_wheel_ships_py_typed_in_every_package(wheel: Path) -> None:
    # PEP 561 (issue 12 item 9): `botrun` is a namespace package, so each package under it
    # carries its own marker
    names = set(zipfile.ZipFile(wheel).namelist())
    for dst in MAPPED.values():
        assert f"{dst}/py.typed" in names, dst


def test_type_checkers_use_the_installed_packages_types(wheel: Path, tmp_path: Path) -> None:
    """What py.typed is for: a user's mypy checks their code against botrun's annotations
    (without the marker mypy refuses to analyse the installed package: import-untyped)."""
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), wheel],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    (tmp_path / "user.py").write_text(
        "from botrun.core.tools import make_spec\n\nspec: int = make_spec(print)\n"
    )
    check = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "user.py"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "import-untyped" not in check.stdout, check.stdout
    assert 'expression has type "ToolSpec", variable has type "int"' in check.stdout, check.stdout
    assert "Found 1 error" in check.stdout, check.stdout
