"""Reading a call report (bots/report.py) back: the marks of its timeline, by kind."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any


class _Marks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, list[dict[str, Any]]] = {"problems": []}
        self._in_problem = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        kind = a.get("data-kind")
        if kind:
            mark: dict[str, Any] = {"text": a.get("data-text") or ""}
            for key in ("start", "end", "seconds"):
                if a.get(f"data-{key}") is not None:
                    mark[key] = float(a[f"data-{key}"] or 0)
            self.found.setdefault(kind, []).append(mark)
        if tag == "li" and a.get("class") == "problem":
            self._in_problem = True
            self.found["problems"].append({"text": ""})

    def handle_data(self, data: str) -> None:
        if self._in_problem:
            self.found["problems"][-1]["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "li":
            self._in_problem = False


def marks(html: str) -> dict[str, list[dict[str, Any]]]:
    """``{kind: [{"start", "end", "text"}, ...]}`` in document order, plus ``problems``."""
    p = _Marks()
    p.feed(html)
    out = p.found
    for key in ("user-speech", "agent-reply", "latency", "barge-in", "tool-call"):
        out.setdefault(key, [])
    return out


def recorded_events(call_dir: Path) -> list[dict[str, Any]]:
    lines = (call_dir / "events.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines if ln.strip()]
