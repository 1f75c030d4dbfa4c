"""The system tools the tests need (issue 12 item 1): one list (.ci/system-tools), installed
by .ci/run when missing, named by README.md, and a clear failure (never a skip) in a test that
needs a missing one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from system_tools import missing_message, packages, require

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / ".ci" / "install-system-tools"
BASH = shutil.which("bash") or "/bin/bash"


def test_the_list_names_the_speech_tools() -> None:
    assert packages() == {
        "espeak-ng": "espeak-ng",
        "sox": "sox",
        "chromium": "chromium",
        "chromedriver": "chromium-driver",
        "redis-server": "redis-server",
    }


@pytest.mark.parametrize("exe", ["espeak-ng", "sox"])
def test_a_missing_tool_fails_naming_it_and_how_to_install_it(
    exe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: nothing is installed
    with pytest.raises(pytest.fail.Exception) as failed:
        require(exe)
    message = str(failed.value)
    assert message == missing_message(exe)
    assert f"`{exe}`" in message
    assert f"apt-get install {packages()[exe]}" in message
    assert ".ci/run" in message


def test_a_present_tool_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "sox"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert require("sox") == str(fake)


def test_an_unlisted_tool_is_refused() -> None:
    # a new tool must go into .ci/system-tools, or .ci/run would not install it
    with pytest.raises(ValueError, match=r"'ffmpeg' is not listed in .*system-tools"):
        require("ffmpeg")


def test_speech_helpers_fail_not_skip_without_the_tools(tmp_path: Path) -> None:
    """The real helpers, in a real pytest run, on a PATH where no tool is installed."""
    tests = Path(__file__).resolve().parent
    (tmp_path / "test_inner.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests)!r})\n"
        "from agora_double.harness import speech_pcm16k\n"
        "from sim_support import espeak_24k\n"
        "from speech import speak\n\n"
        "def test_speak(tmp_path):\n    speak('hello', tmp_path / 'a.wav')\n\n"
        "def test_espeak_24k(tmp_path):\n    espeak_24k('hello', tmp_path)\n\n"
        "def test_speech_pcm16k(tmp_path):\n    speech_pcm16k('hello', tmp_path)\n"
    )
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--junitxml=report.xml",
            "test_inner.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "3 failed" in out, out
    assert "skipped" not in out, out
    # Judge each test from the JUnit report, not by counting lines in the console: how
    # often pytest repeats a message there depends on the terminal's width.
    cases = ElementTree.parse(tmp_path / "report.xml").getroot().iter("testcase")
    failures = {case.get("name"): case.find("failure") for case in cases}
    assert set(failures) == {"test_speak", "test_espeak_24k", "test_speech_pcm16k"}, out
    for name, failure in failures.items():
        assert failure is not None, f"{name} did not fail:\n{out}"
        assert failure.get("message") == f"Failed: {missing_message('espeak-ng')}", out


def _dry_run(path: Path) -> list[str]:
    proc = subprocess.run(
        [BASH, str(INSTALL), "--dry-run"],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def _stub(folder: Path, name: str) -> None:
    exe = folder / name
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)


def test_ci_installs_every_listed_tool_on_a_fresh_machine(tmp_path: Path) -> None:
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert _dry_run(tmp_path) == [  # an empty PATH: nothing installed, not even python3
        f"{sudo}apt-get update -qq",
        f"{sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
        "--no-install-recommends espeak-ng sox chromium chromium-driver redis-server python3-venv",
    ]


def test_ci_installs_only_what_is_missing(tmp_path: Path) -> None:
    # python3 whose `import ensurepip` works
    for name in ("espeak-ng", "python3", "chromium", "chromedriver", "redis-server"):
        _stub(tmp_path, name)
    assert _dry_run(tmp_path)[-1].endswith("apt-get install -y -qq --no-install-recommends sox")
    _stub(tmp_path, "sox")
    assert _dry_run(tmp_path) == []  # everything there: no apt-get at all


def test_readme_names_the_tools_in_its_test_section() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1].split("\n## ", 1)[0]
    for exe, package in packages().items():
        assert f"`{exe}`" in section, exe
        assert package in section, package
    assert ".ci/run" in section


def test_ci_run_names_every_listed_tool() -> None:
    # a reader of .ci/run (and a fresh machine's operator) sees what it installs
    line = next(
        ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if "Installed today:" in ln
    )
    assert set(line.split("Installed today:")[1].split("(")[0].split()) == set(packages())
