"""Tools: schema derivation, loading from config paths and plugins, and safe execution."""

from __future__ import annotations

import asyncio
import enum
import json
import sys
import threading
import types
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from botrun.core.errors import ConfigError
from botrun.core.secrets import register_secret
from botrun.core.tools import (
    TOOL_ATTR,
    ToolRegistry,
    ToolSpec,
    load_tools,
    make_spec,
    parse_docstring,
    to_json,
    tool,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    zip: str


def everything(
    name: str,
    count: int,
    ratio: float,
    urgent: bool,
    tags: list[str],
    mode: Literal["fast", "slow"],
    color: Color,
    note: str | None = None,
    limit: int = 5,
    where: Address | None = None,
    *args: Any,
    **kwargs: Any,
) -> dict:
    """Do everything at once.

    A second paragraph that is also part of the description.

    Args:
        name: Who it is for.
        count (int): How many, counted
            carefully over two lines.
        ratio: A fraction.
        tags: Labels.

    Returns:
        Nothing useful.
    """
    return {}


def test_schema_from_hints_and_docstring() -> None:
    spec = make_spec(everything)
    assert spec.name == "everything"
    assert spec.description == (
        "Do everything at once. A second paragraph that is also part of the description."
    )
    props = spec.parameters["properties"]
    assert props["name"] == {"type": "string", "description": "Who it is for."}
    assert props["count"] == {
        "type": "integer",
        "description": "How many, counted carefully over two lines.",
    }
    assert props["ratio"] == {"type": "number", "description": "A fraction."}
    assert props["urgent"] == {"type": "boolean"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "description": "Labels."}
    assert props["mode"] == {"enum": ["fast", "slow"]}
    assert props["color"] == {"enum": ["red", "blue"]}
    assert props["note"] == {"type": "string"}
    assert props["limit"] == {"type": "integer", "default": 5}
    assert props["where"]["properties"]["zip"]["type"] == "string"  # via pydantic
    assert set(props) == {
        "name",
        "count",
        "ratio",
        "urgent",
        "tags",
        "mode",
        "color",
        "note",
        "limit",
        "where",
    }
    assert spec.parameters["required"] == [
        "name",
        "count",
        "ratio",
        "urgent",
        "tags",
        "mode",
        "color",
    ]


def test_docstring_parsing_edge_cases() -> None:
    assert parse_docstring(None) == ("", {})
    assert parse_docstring("Just a line.") == ("Just a line.", {})
    desc, params = parse_docstring("Title.\n\nParameters:\n    a: first\n    b: second\n")
    assert desc == "Title." and params == {"a": "first", "b": "second"}


def test_function_without_hints_or_docs() -> None:
    def raw(a, b=2):  # type: ignore[no-untyped-def]
        return a

    spec = make_spec(raw)
    assert spec.description == "raw"
    assert spec.parameters == {
        "type": "object",
        "properties": {"a": {}, "b": {"default": 2}},
        "required": ["a"],
    }


def test_tool_decorator_bare_and_with_overrides() -> None:
    @tool
    def plain(x: int) -> int:
        """Double x."""
        return x * 2

    @tool(
        name="hold_me",
        execution_mode="hold",
        timeout_s=3,
        parameters={"type": "object", "properties": {}},
        description="Held.",
    )
    async def held() -> str:
        return "ok"

    assert plain(2) == 4  # still an ordinary function
    spec = getattr(plain, TOOL_ATTR)
    assert spec.name == "plain" and spec.description == "Double x."
    spec2 = getattr(held, TOOL_ATTR)
    assert (spec2.name, spec2.execution_mode, spec2.timeout_s, spec2.description) == (
        "hold_me",
        "hold",
        3,
        "Held.",
    )


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"name": "bad name!"}, "tool name"),
        ({"execution_mode": "later"}, "execution_mode"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_make_spec_validates(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        make_spec(everything, **kw)


# -- loading ---------------------------------------------------------------------------------


@pytest.fixture
def tool_module() -> Any:
    mod = types.ModuleType("botrun_test_toolmod")

    @tool
    def greet(name: str) -> str:
        """Say hello."""
        return f"hello {name}"

    mod.greet = greet  # type: ignore[attr-defined]
    mod.not_callable = 42  # type: ignore[attr-defined]
    mod.ns = types.SimpleNamespace(inner=greet)  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_load_tools_from_paths_and_plugins(tool_module: Any) -> None:
    async def plugin_tool(q: str) -> str:
        """Search."""
        return q

    spec = ToolSpec("custom", "A custom one.", {"type": "object", "properties": {}}, lambda: 1)
    reg = load_tools(["botrun_test_toolmod:greet"], [plugin_tool, spec], timeout_s=3.0)
    assert reg.names == ["greet", "plugin_tool", "custom"]
    assert reg.timeout_s == 3.0 and len(reg) == 3 and "greet" in reg
    assert reg.get("custom") is spec
    assert load_tools(["botrun_test_toolmod:ns.inner"]).names == ["greet"]


@pytest.mark.parametrize(
    ("path", "msg"),
    [
        ("no_such_module_xyz:f", "tool 'no_such_module_xyz:f': cannot import module"),
        (
            "botrun_test_toolmod:missing",
            "tool 'botrun_test_toolmod:missing': module 'botrun_test_toolmod' has no 'missing'",
        ),
        ("botrun_test_toolmod:not_callable", "not a function"),
        ("botrun_test_toolmod", "expected 'package.module:function'"),
    ],
)
def test_bad_tool_paths_are_config_errors(tool_module: Any, path: str, msg: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_tools([path])
    assert msg in str(info.value)


def test_module_failing_on_import_is_a_config_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "botrun_broken_tools.py").write_text("raise RuntimeError('no db configured')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_tools(["botrun_broken_tools:f"])
    assert str(info.value) == (
        "tool 'botrun_broken_tools:f': importing 'botrun_broken_tools' "
        "failed: RuntimeError: no db configured"
    )


def test_duplicate_tool_names_refused(tool_module: Any) -> None:
    with pytest.raises(ConfigError, match="two tools are named 'greet'"):
        load_tools(["botrun_test_toolmod:greet", "botrun_test_toolmod:greet"])


# -- running -----------------------------------------------------------------------------------


@dataclass
class Point:
    x: int
    y: int


async def test_sync_tool_runs_in_a_thread_async_is_awaited() -> None:
    threads: list[int] = []

    def sync_tool(n: int) -> dict:
        threads.append(threading.get_ident())
        return {"n": n, "items": (1, 2)}

    async def async_tool(text: str) -> Point:
        await asyncio.sleep(0)
        return Point(len(text), 0)

    reg = ToolRegistry([make_spec(sync_tool), make_spec(async_tool)])
    assert json.loads(await reg.call("sync_tool", {"n": 3})) == {"n": 3, "items": [1, 2]}
    assert threads and threads[0] != threading.get_ident()
    assert json.loads(await reg.call("async_tool", {"text": "abc"})) == {"x": 3, "y": 0}
    assert reg.stats.calls == 2 and reg.stats.errors == 0


async def test_failures_become_error_results() -> None:
    secret = "sk-secret-value-987"
    register_secret(secret)

    def broken(x: int) -> int:
        raise RuntimeError(f"database down (key {secret})")

    def type_bug(x: int) -> int:
        return len(x)  # type: ignore[arg-type]

    reg = ToolRegistry([make_spec(broken), make_spec(type_bug)])
    out = json.loads(await reg.call("broken", {"x": 1}))
    assert out["error"].startswith("tool 'broken' failed: RuntimeError: database down")
    assert secret not in out["error"]
    out = json.loads(await reg.call("broken", {"y": 1}))
    assert "got bad arguments" in out["error"]
    out = json.loads(await reg.call("type_bug", {"x": 1}))
    assert "failed: TypeError" in out["error"]
    out = json.loads(await reg.call("missing", {}))
    assert out["error"] == "unknown tool 'missing' (available: broken, type_bug)"
    out = json.loads(await reg.call("broken", ["not", "an", "object"]))  # type: ignore[arg-type]
    assert "arguments must be an object" in out["error"]
    assert reg.stats.errors == 5


async def test_timeouts_sync_and_async() -> None:
    release = threading.Event()

    def slow_sync() -> str:
        release.wait(5)
        return "late"

    async def slow_async() -> str:
        await asyncio.sleep(5)
        return "late"

    reg = ToolRegistry(
        [make_spec(slow_sync, timeout_s=0.05), make_spec(slow_async)], timeout_s=0.05
    )
    try:
        assert json.loads(await reg.call("slow_sync", {})) == {
            "error": "tool 'slow_sync' timed out after 0.05 s"
        }
        assert json.loads(await reg.call("slow_async", {})) == {
            "error": "tool 'slow_async' timed out after 0.05 s"
        }
    finally:
        release.set()
    assert reg.stats.timeouts == 2


def test_to_json_serialises_common_values() -> None:
    class Model(BaseModel):
        a: int

    assert to_json("plain text") == '"plain text"'
    assert json.loads(to_json({"c": Color.RED, "m": Model(a=1), "s": {3}, "o": object})) == {
        "c": "red",
        "m": {"a": 1},
        "s": [3],
        "o": "<class 'object'>",
    }
