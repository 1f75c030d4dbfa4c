""".ci/run (issue 12 items 1 and 9): installs what is missing, runs the gates (formatting,
lint, types) before the tests, and ends with exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = (ROOT / ".ci" / "run").read_text().splitlines()


def readme_test_command() -> str:
    section = (ROOT / "README.md").read_text().split("## Run the tests", 1)[1]
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0]


def test_ci_ends_with_the_readme_test_command_verbatim() -> None:
    command = readme_test_command()
    assert command.endswith("&& .venv/bin/python -m pytest -q")
    assert CI[-1] == command


def test_ci_installs_system_tools_then_gates_then_tests() -> None:
    steps = [
        "bash .ci/install-system-tools",
        # the gates need the dev tools: the README command's first two parts
        readme_test_command().rsplit(" && ", 1)[0],
        ".venv/bin/ruff format --check .",
        ".venv/bin/ruff check .",
        "bash .ci/typecheck",
        readme_test_command(),
    ]
    assert [line for line in CI if line in steps] == steps


def test_the_gate_tools_come_with_the_dev_extra() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    dev = pyproject.split("\ndev = [", 1)[1].split("\n]", 1)[0]
    for tool in ("ruff", "mypy"):
        assert f'"{tool}>=' in dev, tool
