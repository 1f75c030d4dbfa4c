"""botrun's observer overrides checked by name against every supported SDK version's source.

The behavioural tests (test_agora_transport.py) run the published wrapper, but only fire the
callbacks a scenario reaches; this test covers every ``on_*`` override: each must be a
callback of the real interface (a misspelt name would silently never be called), with the
same positional parameters. The sdists come from tests/agora_double/sdist.py (downloaded
once per session) and are parsed with ``ast``, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from agora_double.sdist import VERSIONS, source

OBSERVERS_PY = Path(__file__).resolve().parents[1] / "transports" / "agora" / "observers.py"
#: botrun handler class -> (real module, interface class) it overrides callbacks of.
HANDLERS = {
    "ConnectionHandler": ("rtc_connection_observer", "IRTCConnectionObserver"),
    "AudioFrameHandler": ("audio_frame_observer", "IAudioFrameObserver"),
    "LocalUserHandler": ("local_user_observer", "IRTCLocalUserObserver"),
}


def methods(path: Path, cls: str) -> dict[str, tuple[str, ...]]:
    """Positional parameter names of each method of class ``cls`` (a later definition wins,
    as at runtime)."""
    found: dict[str, tuple[str, ...]] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            found = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    a = item.args
                    found[item.name] = tuple(p.arg for p in (*a.posonlyargs, *a.args))
    return found


def check(rtc: Path, observers_py: Path) -> list[str]:
    problems: list[str] = []
    for handler, (module, iface) in HANDLERS.items():
        real = methods(rtc / f"{module}.py", iface)
        assert real, f"{iface} not found in {rtc / module}.py"
        ours = {n: p for n, p in methods(observers_py, handler).items() if n.startswith("on_")}
        assert ours, handler
        for name, params in ours.items():
            if name not in real:
                problems.append(f"{iface}.{name} does not exist: the SDK would never call it")
            elif real[name] != params:
                problems.append(f"{iface}.{name}: ours {params} != real {real[name]}")
    return problems


@pytest.mark.parametrize("version", VERSIONS)
def test_botrun_observer_callbacks_exist_in_the_real_interfaces(version: str) -> None:
    assert check(source(version) / "agora" / "rtc", OBSERVERS_PY) == []


def test_a_misspelt_callback_is_caught(tmp_path: Path) -> None:
    """The check can fail: a renamed handler method is reported."""
    text = OBSERVERS_PY.read_text(encoding="utf-8")
    assert "def on_user_joined(" in text
    misspelt = tmp_path / "observers.py"
    misspelt.write_text(text.replace("def on_user_joined(", "def on_user_joinned("))
    problems = check(source(VERSIONS[-1]) / "agora" / "rtc", misspelt)
    assert problems == [
        "IRTCConnectionObserver.on_user_joinned does not exist: the SDK would never call it"
    ]
