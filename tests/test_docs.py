"""The docs stay true to the repository (issue 12 item 8): files they name exist, and the
keep-alive figure is the bridge's (core/routing.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from botrun.core import routing

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# a path with at least one folder and a file extension, anywhere (prose or code blocks)
PATH = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)+[\w.-]+\.(?:md|py|toml|wav|json|sh))\b")
EXAMPLES = {"replies/umbrella.wav"}  # relative to a user's scenario file, not to the repo


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_name_only_files_that_are_in_the_repo(doc: Path) -> None:
    named = {m.group(1) for m in PATH.finditer(doc.read_text())}
    missing = sorted(p for p in named - EXAMPLES if not (ROOT / p).exists())
    assert not missing, f"{doc.name} names files that are not in the repository: {missing}"


def test_keep_alive_delay_in_architecture_doc_is_the_routers() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert f"{round(routing._SILENT_AFTER_S * 1000)} ms (`_SILENT_AFTER_S`" in text
    assert "two chunk periods" not in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_point_at_no_protocol_notes_outside_the_repo(doc: Path) -> None:
    """ "The protocol notes" were a file outside the repository (polish item 8): the docs
    point at core/protocol.py and docs/simulator.md instead."""
    assert "protocol notes" not in doc.read_text().lower()
