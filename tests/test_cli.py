"""The `botrun` command line: help, version, usage errors, lazy imports."""

from __future__ import annotations

import subprocess
import sys

from helpers_cli import run_botrun


def test_help_lists_builtin_transports() -> None:
    res = run_botrun("--help")
    assert res.returncode == 0, res.stderr
    for name in ("wav", "daily", "agora"):
        assert f"\n  {name} " in res.stdout, res.stdout
    assert "Traceback" not in res.stderr


def test_version() -> None:
    from importlib.metadata import version

    res = run_botrun("--version")
    assert res.returncode == 0
    assert version("botrun") in res.stdout


def test_unknown_subcommand_is_usage_error() -> None:
    res = run_botrun("teleport")
    assert res.returncode == 2
    assert "No such command 'teleport'" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_option_is_usage_error() -> None:
    res = run_botrun("wav", "--bogus-flag")
    assert res.returncode == 2
    assert "No such option '--bogus-flag'" in res.stderr


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from botrun.bots.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('scipy', 'numpy', 'daily', 'agora', 'pydantic', 'websockets',"
        " 'aiohttp') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY=\n" in out.stdout, out.stdout + out.stderr


def test_transport_help_shows_shared_options() -> None:
    res = run_botrun("wav", "--help")
    assert res.returncode == 0, res.stderr
    for flag in ("--config", "--agent-url", "--transcript", "--log-level", "--name"):
        assert flag in res.stdout
