"""A new user's own tools and hooks (issue 16 follow-up, items 1 and 4): ``mybot/tools.py``
and ``mybot/hooks.py`` in the working directory load from every command without
PYTHONPATH, and a module that does not load is one line naming the config file and key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = '''
from botrun.core.tools import tool


@tool
def faq(question: str) -> str:
    """Answer a common question.

    Args:
        question: what the caller asked
    """
    return "We open at nine."
'''

HOOKS = """
class Receptionist:
    def on_call_start(self, call):
        call.state["started"] = True
"""


def _mybot(tmp_path: Path, tools: str, hooks: str) -> Path:
    pkg = tmp_path / "mybot"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tools.py").write_text(TOOLS)
    (pkg / "hooks.py").write_text(HOOKS)
    cfg = tmp_path / "bot.toml"
    cfg.write_text(f'[bot]\nhooks = "{hooks}"\n\n[agent]\ntools = {json.dumps([tools])}\n')
    return cfg


def _demo(tmp_path: Path, cfg: Path) -> subprocess.CompletedProcess[str]:
    # The installed `botrun` script, as a user runs it: `python -m` would put the working
    # directory on sys.path by itself and hide the bug.
    script = Path(sys.executable).parent / "botrun"
    assert script.exists(), script
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [
            str(script),
            "demo",
            "--config",
            cfg.name,
            "--scenario",
            "support",  # (any bundled scenario: what matters is that the bot starts)
            "--output",
            str(tmp_path / "o.wav"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_demo_imports_tools_and_hooks_from_the_working_directory(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.tools:faq", "mybot.hooks:Receptionist")
    res = _demo(tmp_path, cfg)
    assert res.returncode == 0, res.stderr
    assert "No module named 'mybot'" not in res.stderr


def test_a_hooks_module_that_does_not_import_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.tools:faq", "nope.module")
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "bot.toml: [bot] hooks = 'nope.module': cannot import module 'nope.module'" in lines[0]


def test_a_tool_that_does_not_import_names_the_file_and_key(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "nope.mod:fn", "mybot.hooks:Receptionist")
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert (
        "bot.toml: [agent] tools: tool 'nope.mod:fn': cannot import module 'nope.mod'" in (lines[0])
    )


# -- new-user probe item 2: tool modules that fail oddly are one-line config errors ---------------

WEIRD = '''
from botrun.core.tools import tool


class Foo:
    def __init__(self, x):
        self.x = x


@tool
def custom(f: Foo) -> str:
    """A parameter type pydantic has no schema for."""
    return "x"


@tool
def fine(question: str) -> str:
    """A good tool in the same module."""
    return "ok"
'''


def test_a_tool_parameter_with_no_json_schema_is_one_line_naming_tool_and_parameter(
    tmp_path: Path,
) -> None:
    cfg = _mybot(tmp_path, "mybot.weird:custom", "mybot.hooks:Receptionist")
    (tmp_path / "mybot" / "weird.py").write_text(WEIRD)
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert (
        "bot.toml: [agent] tools: tool 'mybot.weird:custom': @tool custom: parameter 'f'"
        in (lines[0])
    )
    assert "has no JSON schema" in lines[0] and "errors.pydantic.dev" not in lines[0]


def test_the_other_tools_of_a_module_with_a_bad_tool_still_load(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.weird:fine", "mybot.hooks:Receptionist")
    (tmp_path / "mybot" / "weird.py").write_text(WEIRD)
    res = _demo(tmp_path, cfg)
    assert res.returncode == 0, res.stderr


def test_a_tool_module_that_calls_sys_exit_is_one_line_naming_the_module(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.exiting:fn", "mybot.hooks:Receptionist")
    (tmp_path / "mybot" / "exiting.py").write_text("import sys\n\nsys.exit(5)\n")
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert (
        "bot.toml: [agent] tools: tool 'mybot.exiting:fn': importing 'mybot.exiting' failed: "
        "it called sys.exit(5) while being imported" in lines[0]
    )


def test_a_hooks_module_that_calls_sys_exit_is_one_line_naming_the_module(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.tools:faq", "mybot.exiting")
    (tmp_path / "mybot" / "exiting.py").write_text("import sys\n\nsys.exit(5)\n")
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert (
        "bot.toml: [bot] hooks = 'mybot.exiting': importing 'mybot.exiting' failed: " in (lines[0])
    )


def test_a_multi_line_import_error_is_one_line(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.noisy:fn", "mybot.hooks:Receptionist")
    (tmp_path / "mybot" / "noisy.py").write_text('raise ValueError("first\\nsecond\\nthird")\n')
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "importing 'mybot.noisy' failed: ValueError: first …" in lines[0]


# -- new-user probe item 3: a hooks class that cannot be created without arguments ---------------

NEEDS_ARGS = """
CREATED = []


class NeedsArgs:
    def __init__(self, x):
        CREATED.append(x)

    def on_call_start(self, call):
        pass


class Defaults:
    def __init__(self, x=1, *args, **kwargs):
        self.x = x

    def on_call_start(self, call):
        pass
"""


def test_a_hooks_class_that_needs_arguments_is_a_config_error_at_start(tmp_path: Path) -> None:
    cfg = _mybot(tmp_path, "mybot.tools:faq", "mybot.h2:NeedsArgs")
    (tmp_path / "mybot" / "h2.py").write_text(NEEDS_ARGS)
    res = _demo(tmp_path, cfg)
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "bot.toml: [bot] hooks = 'mybot.h2:NeedsArgs': class 'NeedsArgs'" in lines[0]
    assert "without arguments, but its __init__ needs x" in lines[0]


def test_hooks_classes_are_checked_without_being_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.errors import ConfigError
    from botrun.core.hooks import load_hooks

    (tmp_path / "h2_probe.py").write_text(NEEDS_ARGS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="needs x"):
        load_hooks("h2_probe:NeedsArgs")
    hooks = load_hooks("h2_probe:Defaults")
    assert hooks is not None
    import h2_probe  # type: ignore[import-not-found]

    assert h2_probe.CREATED == []  # not instantiated at load
