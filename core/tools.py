"""Tools: Python callables the voice agent may call, with JSON-Schema descriptions.

A tool is a plain or async function. Its schema comes from its type hints and the ``Args:``
section of its docstring unless the author gives one (``@tool(parameters=...)``). Tools come
from the config (``tools = ["package.module:function"]``) and from plugins (the
``botrun_tools`` hook). :meth:`ToolRegistry.call` never raises: an unknown tool, bad
arguments, an exception or a timeout become an error result the agent is told about, and every
result is serialised to the JSON string the protocol wants.
"""

from __future__ import annotations

import asyncio
import collections.abc as abc
import dataclasses
import enum
import importlib
import inspect
import json
import logging
import re
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigError
from .secrets import redact

log = logging.getLogger("botrun.tools")

ExecutionMode = Literal["interactive", "hold"]
#: The attribute ``@tool`` sets on a function (also honoured for plugin tools).
TOOL_ATTR = "__botrun_tool__"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what the agent is told (name, description, JSON-Schema ``parameters``,
    ``execution_mode``) and what runs (``func``, within ``timeout_s``; ``None`` = the
    registry's default)."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any] = dataclasses.field(repr=False, compare=False)
    execution_mode: ExecutionMode | None = None
    timeout_s: float | None = None


# -- schema derivation -------------------------------------------------------------------

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
    tuple: {"type": "array"},
    type(None): {"type": "null"},
    Any: {},
}


def type_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema of a type hint: builtins, ``list[X]``, ``dict[str, X]``, ``X | None``,
    ``Literal``, ``Enum``; anything else (pydantic models, TypedDicts, dataclasses) through
    pydantic's schema generator."""
    if hint in _SIMPLE:
        return dict(_SIMPLE[hint])
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return type_schema(rest[0])
        return {"anyOf": [type_schema(a) for a in rest]}
    if origin in (list, set, frozenset, tuple, abc.Sequence, abc.Set, abc.Iterable):
        item = args[0] if args and args[0] is not Ellipsis else Any
        return {"type": "array", "items": type_schema(item)}
    if origin in (dict, abc.Mapping):
        schema: dict[str, Any] = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = type_schema(args[1])
        return schema
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if typing.get_origin(hint) is typing.Annotated:
        return type_schema(args[0])
    from pydantic import TypeAdapter  # lazy: only for uncommon hints

    return TypeAdapter(hint).json_schema()


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:\s*$")
_SECTION = re.compile(r"^\s*[A-Z][A-Za-z ]*:\s*$")
_ARG_LINE = re.compile(r"^\s*\*{0,2}(\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google-style docstring: the text before
    the first section is the description; ``Args:`` lines are ``name (type): text`` with
    indented continuation lines."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(lines) and not _SECTION.match(lines[i]):
        desc.append(lines[i])
        i += 1
    current: str | None = None
    in_args = False
    base_indent = 0
    for line in lines[i:]:
        if _SECTION.match(line) and (len(line) - len(line.lstrip())) <= 0:
            in_args = bool(_ARGS_HEADER.match(line))
            current = None
            continue
        if not in_args or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        m = _ARG_LINE.match(line)
        if m and (current is None or indent <= base_indent):
            current, base_indent = m.group(1), indent
            params[current] = m.group(3).strip()
        elif current is not None:
            params[current] = (params[current] + " " + line.strip()).strip()
    text = " ".join(" ".join(desc).split())
    return text, params


def schema_for(func: Callable[..., Any]) -> tuple[str, dict[str, Any]]:
    """(description, parameters schema) derived from ``func``'s signature and docstring."""
    description, docs = parse_docstring(inspect.getdoc(func))
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # unresolvable forward references
        raise ValueError(f"cannot read its type hints: {exc}") from None
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = type_schema(hints[pname]) if pname in hints else {}
        if docs.get(pname):
            prop["description"] = docs[pname]
        if param.default is param.empty:
            required.append(pname)
        elif param.default is not None and _jsonable(param.default):
            prop["default"] = param.default
        props[pname] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return description, schema


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def make_spec(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    execution_mode: ExecutionMode | None = None,
    timeout_s: float | None = None,
) -> ToolSpec:
    """A :class:`ToolSpec` for ``func``; what is not given is derived from it."""
    tool_name = name or str(getattr(func, "__name__", ""))
    if not _NAME_RE.match(tool_name):
        raise ValueError(f"tool name {tool_name!r} must be 1-64 letters, digits, _ or -")
    if execution_mode not in (None, "interactive", "hold"):
        raise ValueError(f"execution_mode must be 'interactive' or 'hold', not {execution_mode!r}")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")
    derived_desc, derived_params = ("", {}) if (description and parameters) else schema_for(func)
    return ToolSpec(
        name=tool_name,
        description=description or derived_desc or tool_name.replace("_", " "),
        parameters=parameters if parameters is not None else derived_params,
        func=func,
        execution_mode=execution_mode,
        timeout_s=timeout_s,
    )


def tool(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    execution_mode: ExecutionMode | None = None,
    timeout_s: float | None = None,
) -> Any:
    """Mark a function as a tool (optional: any function is usable as one). Use bare
    (``@tool``) or with overrides (``@tool(execution_mode="hold", timeout_s=30)``). The
    function stays callable as before; its spec is stored on it as ``__botrun_tool__``."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        spec = make_spec(
            f,
            name=name,
            description=description,
            parameters=parameters,
            execution_mode=execution_mode,
            timeout_s=timeout_s,
        )
        setattr(f, TOOL_ATTR, spec)
        return f

    return mark(func) if func is not None else mark


def as_spec(obj: Any, where: str) -> ToolSpec:
    """A :class:`ToolSpec` from a spec, an ``@tool`` function or a plain callable;
    ``where`` names the origin in the :class:`ConfigError` raised for anything else."""
    if isinstance(obj, ToolSpec):
        return obj
    spec = getattr(obj, TOOL_ATTR, None)
    if isinstance(spec, ToolSpec):
        return spec
    if not callable(obj):
        raise ConfigError(f"tool {where}: not a function (got {type(obj).__name__})")
    try:
        return make_spec(obj)
    except ValueError as exc:
        raise ConfigError(f"tool {where}: {exc}") from None


def import_tool(path: str) -> ToolSpec:
    """Import ``"package.module:function"``; a bad path is a :class:`ConfigError` naming it."""
    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"tool '{path}': expected 'package.module:function'")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"tool '{path}': cannot import module '{mod_name}': {exc}") from None
    except Exception as exc:  # the module itself failed while importing
        raise ConfigError(
            f"tool '{path}': importing '{mod_name}' failed: {type(exc).__name__}: {exc}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"tool '{path}': module '{mod_name}' has no '{attr}'") from None
    return as_spec(obj, f"'{path}'")


def load_tools(
    paths: Iterable[str] = (),
    extra: Iterable[Callable[..., Any] | ToolSpec] = (),
    timeout_s: float = 10.0,
) -> ToolRegistry:
    """Build the registry the bridge hands to the agent client: config paths first, then
    plugin-provided tools. Duplicate names are a :class:`ConfigError`."""
    specs = [import_tool(p) for p in paths]
    specs += [as_spec(obj, f"{getattr(obj, '__name__', obj)!r} from a plugin") for obj in extra]
    return ToolRegistry(specs, timeout_s=timeout_s)


# -- running tools ---------------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def to_json(value: Any) -> str:
    """A tool's return value as the JSON string ``tool.result`` carries (a returned ``str``
    becomes a JSON string literal; dataclasses, pydantic models and enums are converted;
    anything else unknown falls back to ``str()``)."""
    return json.dumps(value, default=_default, ensure_ascii=False)


def error_result(message: str) -> str:
    """The result the agent gets when a tool could not produce one."""
    return json.dumps({"error": redact(message)}, ensure_ascii=False)


@dataclass
class ToolStats:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0


class ToolRegistry:
    """The tools of one bot, by name; :meth:`call` runs one safely."""

    def __init__(self, specs: Iterable[ToolSpec] = (), timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._by_name: dict[str, ToolSpec] = {}
        for spec in specs:
            if spec.name in self._by_name:
                raise ConfigError(f"two tools are named '{spec.name}': tool names must be unique")
            self._by_name[spec.name] = spec
        self.stats = ToolStats()

    @property
    def specs(self) -> list[ToolSpec]:
        return list(self._by_name.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> ToolSpec | None:
        return self._by_name.get(name)

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run tool ``name`` with ``arguments``; returns the JSON string for ``tool.result``.

        Sync tools run in a worker thread (the event loop keeps serving audio); async tools
        are awaited. Never raises except for cancellation: failures become
        ``{"error": "..."}`` results so the agent can tell the user."""
        self.stats.calls += 1
        spec = self._by_name.get(name)
        if spec is None:
            self.stats.errors += 1
            known = ", ".join(self._by_name) or "none"
            log.warning("agent called unknown tool %r (known: %s)", name, known)
            return error_result(f"unknown tool '{name}' (available: {known})")
        if not isinstance(arguments, dict):
            self.stats.errors += 1
            return error_result(f"tool '{name}': arguments must be an object")
        try:
            inspect.signature(spec.func).bind(**arguments)
        except TypeError as exc:
            self.stats.errors += 1
            log.warning("tool %s called with bad arguments %s: %s", name, arguments, exc)
            return error_result(f"tool '{name}' got bad arguments: {exc}")
        timeout = spec.timeout_s or self.timeout_s
        started = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(spec.func):
                value = await asyncio.wait_for(spec.func(**arguments), timeout)
            else:
                value = await asyncio.wait_for(asyncio.to_thread(spec.func, **arguments), timeout)
                if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
                    value = await asyncio.wait_for(value, timeout)
        except TimeoutError:
            self.stats.timeouts += 1
            log.warning("tool %s timed out after %.1f s", name, timeout)
            return error_result(f"tool '{name}' timed out after {timeout:g} s")
        except Exception as exc:
            self.stats.errors += 1
            log.warning("tool %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=True)
            return error_result(f"tool '{name}' failed: {type(exc).__name__}: {exc}")
        try:
            result = to_json(value)
        except (TypeError, ValueError) as exc:
            self.stats.errors += 1
            return error_result(f"tool '{name}' returned a value that is not JSON: {exc}")
        log.debug("tool %s ok in %.0f ms", name, (time.perf_counter() - started) * 1000)
        return result
