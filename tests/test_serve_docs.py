"""docs/dialin.md stays true to the repository (issue 12 item 8: it named a config file that
does not exist)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_file_the_dialin_guide_names_exists() -> None:
    text = (ROOT / "docs" / "dialin.md").read_text()
    named = set(re.findall(r"configs/[\w./-]+\.toml", text))
    assert named, "the guide shows which --config to pass"
    missing = sorted(n for n in named if not (ROOT / n).is_file())
    assert missing == []


def test_the_dialin_guide_documents_every_serve_option() -> None:
    from botrun.bots.serve.cli import command

    text = (ROOT / "docs" / "dialin.md").read_text()
    options = [opt for p in command.params for opt in p.opts if opt.startswith("--")]
    assert [o for o in options if o not in text] == []
