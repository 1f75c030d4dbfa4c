"""Tools: Python callables the voice agent may call, with JSON-Schema descriptions.

A tool is a plain or async function its author marked with :func:`tool` (``from
botrun.core.tools import tool``). Its schema comes from its type hints and the ``Args:``
section of its docstring unless the author gives one (``@tool(parameters=...)``). Tools come
from the config (``tools = ["package.module:function"]``, which must name a marked function:
a config line cannot hand an arbitrary callable such as ``os:system`` to a language model)
and from plugins (the ``botrun_tools`` hook, whose functions the plugin author chose).

:meth:`ToolRegistry.run` never raises (but for its own cancellation) and never lets a tool
stop the process: an unknown tool, bad arguments, any exception (``SystemExit`` and
``KeyboardInterrupt`` included), a timeout or a value JSON cannot carry become an error result
the agent is told about; a result larger than ``max_result_bytes`` is cut with a note the
agent can read. Sync tools run in daemon threads, so one that never returns cannot keep the
process alive after the call.
"""

from __future__ import annotations

import asyncio
import collections.abc as abc
import contextlib
import copy
import dataclasses
import enum
import inspect
import json
import logging
import re
import sys
import threading
import time
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .defaults import DEFAULT_TOOL_RESULT_MAX_BYTES
from .errors import BotrunError, ConfigError
from .secrets import redact
from .userimport import import_failure, import_user_module

log = logging.getLogger("botrun.tools")

ExecutionMode = Literal["interactive", "hold"]
#: The attribute ``@tool`` sets on a function (also honoured for plugin tools).
TOOL_ATTR = "__botrun_tool__"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
DEFAULT_MAX_RESULT_BYTES = DEFAULT_TOOL_RESULT_MAX_BYTES
_MAX_ERROR_CHARS = 1000  # an exception's message is quoted up to this length


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
    #: The parameter annotated ``CallContext`` (filled in with the call; not in the schema).
    context_param: str | None = None


_CONTEXT_HINT = re.compile(
    r"^(?:(?:[\w.]+\.)?CallContext(?:\s*\|\s*None)?|(?:typing\.)?Optional\[(?:[\w.]+\.)?CallContext\])$"
)


def context_param(func: Callable[..., Any]) -> str | None:
    """The name of ``func``'s parameter annotated :class:`~botrun.core.call.CallContext`
    (``call: CallContext``, any name; ``CallContext | None`` too), or None. Read from the
    raw annotation, so a tool module may import ``CallContext`` only for type checking."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return None
    for param in params:
        ann = param.annotation
        if ann is param.empty:
            continue
        if isinstance(ann, str):
            if _CONTEXT_HINT.match(ann.strip()):
                return param.name
            continue
        hints = [ann, *typing.get_args(ann)]
        if any(getattr(h, "__name__", None) == "CallContext" for h in hints):
            from .call import CallContext

            if any(h is CallContext for h in hints):
                return param.name
    return None


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
    skip = context_param(func)
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # unresolvable forward references
        if skip is None:
            raise ValueError(f"cannot read its type hints: {exc}") from None
        # CallContext imported only for type checking: read the other hints one by one
        hints = _hints_without(func, skip)
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or pname == skip:
            continue
        prop = _param_schema(pname, hints[pname]) if pname in hints else {}
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


def _param_schema(pname: str, hint: Any) -> dict[str, Any]:
    """``type_schema(hint)``; a type with no JSON schema (pydantic cannot generate one) is a
    one-line ``ValueError`` naming the parameter."""
    try:
        return type_schema(hint)
    except Exception as exc:
        what = getattr(hint, "__qualname__", None) or repr(hint)
        why = ""  # pydantic's "Unable to generate pydantic-core schema" says no more than we do
        if type(exc).__name__ != "PydanticSchemaGenerationError":
            first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")
            why = f" ({type(exc).__name__}: {first})" if first else f" ({type(exc).__name__})"
        raise ValueError(
            f"parameter '{pname}': its type {what} has no JSON schema{why}; use str, int, "
            "float, bool, list, dict, Literal, an Enum, a dataclass or a pydantic model, or "
            "give the schema with @tool(parameters=...)"
        ) from None


def _hints_without(func: Callable[..., Any], skip: str) -> dict[str, Any]:
    """``func``'s type hints but ``skip``'s (which cannot be resolved at run time)."""
    ann = dict(getattr(func, "__annotations__", {}))
    ann.pop(skip, None)
    shim = types.SimpleNamespace(__annotations__=ann)
    globalns = getattr(func, "__globals__", {})
    try:
        return typing.get_type_hints(shim, globalns=globalns)
    except Exception as exc:
        raise ValueError(f"cannot read its type hints: {exc}") from None


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
        context_param=context_param(func),
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
    """Mark a function as a tool the agent may call. Use bare (``@tool``) or with overrides
    (``@tool(execution_mode="hold", timeout_s=30)``). The function stays callable as before;
    its spec is stored on it as ``__botrun_tool__``. Only marked functions can be named in a
    config's ``tools`` list."""

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        spec: ToolSpec | BrokenTool
        try:
            spec = make_spec(
                f,
                name=name,
                description=description,
                parameters=parameters,
                execution_mode=execution_mode,
                timeout_s=timeout_s,
            )
        except ValueError as exc:
            # not raised here: that would fail the whole module's import and so every other
            # tool in it; the config or plugin that names this tool gets a ConfigError
            spec = BrokenTool(name or str(getattr(f, "__name__", "")), str(exc))
        setattr(f, TOOL_ATTR, spec)
        return f

    return mark(func) if func is not None else mark


@dataclass(frozen=True)
class BrokenTool:
    """What ``@tool`` stores on a function whose spec cannot be made (a parameter type with
    no JSON schema, a bad name...): loading that tool is a :class:`ConfigError` saying
    ``error``."""

    name: str
    error: str


def _broken_error(obj: Any, where: str) -> ConfigError | None:
    try:
        mark = getattr(obj, TOOL_ATTR, None)
    except Exception:
        return None
    if isinstance(mark, BrokenTool):
        return ConfigError(f"tool {where}: @tool {mark.name}: {mark.error}")
    return None


def as_spec(obj: Any, where: str) -> ToolSpec:
    """A :class:`ToolSpec` from a spec, an ``@tool`` function or (from a plugin, whose author
    chose it) a plain callable; ``where`` names the origin in the :class:`ConfigError` raised
    for anything else."""
    spec = marked_spec(obj)
    if spec is not None:
        return spec
    if (broken := _broken_error(obj, where)) is not None:
        raise broken
    if not callable(obj):
        raise ConfigError(f"tool {where}: not a function (got {type(obj).__name__})")
    try:
        return make_spec(obj)
    except ValueError as exc:
        raise ConfigError(f"tool {where}: {exc}") from None


def marked_spec(obj: Any) -> ToolSpec | None:
    """The spec of a :class:`ToolSpec` or of a function marked with :func:`tool`, else None."""
    if isinstance(obj, ToolSpec):
        return obj
    try:
        spec = getattr(obj, TOOL_ATTR, None)
    except Exception:  # an object whose __getattr__ fails is not a tool
        return None
    return spec if isinstance(spec, ToolSpec) else None


def import_tool(path: str) -> ToolSpec:
    """Import ``"package.module:function"``; the function must be marked with :func:`tool`.
    A bad path, a standard-library module or an unmarked callable is a :class:`ConfigError`
    naming it."""
    mod_name, sep, attr = path.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"tool '{path}': expected 'package.module:function'")
    if mod_name.partition(".")[0] in sys.stdlib_module_names:
        raise ConfigError(
            f"tool '{path}': '{mod_name}' is a standard-library module; a tool must be a "
            "function of your own marked with @tool (from botrun.core.tools import tool)"
        )
    try:
        module = import_user_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"tool '{path}': cannot import module '{mod_name}': {exc}") from None
    except Exception as exc:  # the module itself failed while importing
        raise ConfigError(
            f"tool '{path}': importing '{mod_name}' failed: {import_failure(exc)}"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(f"tool '{path}': module '{mod_name}' has no '{attr}'") from None
    spec = marked_spec(obj)
    if spec is not None:
        return spec
    if (broken := _broken_error(obj, f"'{path}'")) is not None:
        raise broken
    if not callable(obj):
        raise ConfigError(f"tool '{path}': not a function (got {type(obj).__name__})")
    raise ConfigError(
        f"tool '{path}': '{attr}' is not marked as a tool; decorate it with @tool "
        "(from botrun.core.tools import tool) or offer it through the botrun_tools plugin hook"
    )


def load_tools(
    paths: Iterable[str] = (),
    extra: Iterable[Callable[..., Any] | ToolSpec] = (),
    timeout_s: float = 10.0,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    builtins: dict[str, ToolSpec] | None = None,
) -> ToolRegistry:
    """Build the registry the bridge hands to the agent client: config paths first, then
    plugin-provided tools. A bare name (no colon) is one of ``builtins`` (core/builtin_tools.py:
    ``end_call``, ``transfer_call``, ``send_dtmf``). Duplicate names are a :class:`ConfigError`."""
    specs = []
    for p in paths:
        builtin = (builtins or {}).get(p) if ":" not in p else None
        if builtin is not None:
            specs.append(builtin)
        elif ":" not in p and builtins:
            raise ConfigError(
                f"tool '{p}': not a built-in tool (built-ins: {', '.join(builtins)}); "
                "expected 'package.module:function' for your own"
            )
        else:
            specs.append(import_tool(p))
    specs += [as_spec(obj, f"{getattr(obj, '__name__', obj)!r} from a plugin") for obj in extra]
    return ToolRegistry(specs, timeout_s=timeout_s, max_result_bytes=max_result_bytes)


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
    anything else unknown falls back to ``str()``). ``NaN`` and infinities raise
    ``ValueError``: JSON has no such numbers."""
    return json.dumps(value, default=_default, ensure_ascii=False, allow_nan=False)


def error_result(message: str) -> str:
    """The result the agent gets when a tool could not produce one."""
    return json.dumps({"error": _short(redact(message))}, ensure_ascii=False)


def _short(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def cap_result(result: str, limit: int, name: str) -> str:
    """``result`` if it fits in ``limit`` UTF-8 bytes, else a JSON object (within the limit)
    holding a note the agent can read and as much of the result's JSON text as fits."""
    size = len(result.encode("utf-8"))
    if size <= limit:
        return result
    note = (
        f"The result of tool '{name}' was {size} bytes, more than the {limit} allowed; "
        "'partial' holds its beginning (cut, so it is not complete JSON)."
    )
    keep = limit
    while keep > 0:
        partial = result.encode("utf-8")[:keep].decode("utf-8", errors="ignore")
        out = json.dumps({"truncated": True, "note": note, "partial": partial}, ensure_ascii=False)
        over = len(out.encode("utf-8")) - limit
        if over <= 0:
            return out
        keep -= over
    return json.dumps({"truncated": True, "note": note}, ensure_ascii=False)


@dataclass(frozen=True)
class ToolOutcome:
    """One finished tool call: the ``result`` sent to the agent (a JSON string), ``error``
    (why there is no real result, or None) and how long it took."""

    name: str
    arguments: Any
    result: str
    error: str | None = None
    duration_ms: float = 0.0
    truncated: bool = False  # the result was cut to the size limit


@dataclass
class ToolStats:
    calls: int = 0
    errors: int = 0
    timeouts: int = 0
    truncated: int = 0
    abandoned_threads: int = 0  # sync tools still running after their timeout


_TIMED_OUT = TimeoutError("timed out")  # marks our own timeout apart from a tool's TimeoutError


class _Failed:
    """What a tool raised (any BaseException), carried out of its thread or task."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _start_in_thread(
    func: Callable[..., Any], arguments: dict[str, Any], name: str
) -> asyncio.Future[Any]:
    """Run ``func(**arguments)`` in a new daemon thread; the future gets its value or a
    :class:`_Failed`. A daemon thread never blocks interpreter exit, so a tool that hangs
    cannot keep the process alive after the call (the default executor's threads would)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any) -> None:
        if not fut.done():
            fut.set_result(value)

    def work() -> None:
        try:
            value: Any = func(**arguments)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... belong to the tool
            value = _Failed(exc)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, value)

    threading.Thread(target=work, name=f"tool-{name}", daemon=True).start()
    return fut


async def _guarded(awaitable: Any) -> Any:
    """Await a tool's coroutine; anything it raises (but cancellation) becomes a
    :class:`_Failed`, so SystemExit/KeyboardInterrupt never escape a task to the loop."""
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        return _Failed(exc)


class ToolRegistry:
    """The tools of one bot, by name; :meth:`run` runs one safely."""

    def __init__(
        self,
        specs: Iterable[ToolSpec] = (),
        timeout_s: float = 10.0,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_result_bytes = max_result_bytes
        self._by_name: dict[str, ToolSpec] = {}
        for spec in specs:
            if spec.name in self._by_name:
                raise ConfigError(f"two tools are named '{spec.name}': tool names must be unique")
            self._by_name[spec.name] = spec
        self.stats = ToolStats()
        self._context: Any = None
        self._traced: set[str] = set()  # tools whose traceback was logged (DEBUG)

    def bind(self, context: Any) -> ToolRegistry:
        """This registry for one call: the same tools and stats, with ``context`` (the
        call's :class:`~botrun.core.call.CallContext`) handed to tools that ask for it."""
        view = copy.copy(self)
        view._context = context
        view._traced = set()
        return view

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
        """Run tool ``name``; the JSON string for ``tool.result`` (see :meth:`run`)."""
        return (await self.run(name, arguments)).result

    def reject(self, name: str, arguments: Any, reason: str) -> ToolOutcome:
        """The outcome of a call that cannot run (e.g. its arguments are not an object)."""
        self.stats.calls += 1
        self.stats.errors += 1
        log.warning("tool call %s not run: %s", name, reason)
        message = f"tool '{name}': {reason}"
        return ToolOutcome(name, arguments, error_result(message), redact(message))

    async def run(self, name: str, arguments: Any) -> ToolOutcome:
        """Run tool ``name`` with ``arguments``.

        Sync tools run in a daemon thread (the event loop keeps serving audio); async tools
        are awaited. Never raises except for cancellation: failures become ``{"error": ...}``
        results so the agent can tell the user, and the outcome says what happened."""
        started = time.perf_counter()
        self.stats.calls += 1
        spec = self._by_name.get(name)

        def failed(message: str, timed_out: bool = False) -> ToolOutcome:
            if timed_out:
                self.stats.timeouts += 1
            else:
                self.stats.errors += 1
            ms = (time.perf_counter() - started) * 1000
            return ToolOutcome(name, arguments, error_result(message), _short(redact(message)), ms)

        if spec is None:
            known = ", ".join(self._by_name) or "none"
            log.warning("agent called unknown tool %r (known: %s)", name, known)
            return failed(f"unknown tool '{name}' (available: {known})")
        if not isinstance(arguments, dict):
            return failed(
                f"tool '{name}': arguments must be an object, got {type(arguments).__name__}"
            )
        if spec.context_param is not None:
            if spec.context_param in arguments:
                return failed(f"tool '{name}' got an unexpected argument '{spec.context_param}'")
            call_args = {**arguments, spec.context_param: self._context}
        else:
            call_args = arguments
        try:
            inspect.signature(spec.func).bind(**call_args)
        except TypeError as exc:
            log.warning("tool %s called with bad arguments %s: %s", name, arguments, exc)
            return failed(f"tool '{name}' got bad arguments: {exc}")
        except ValueError:  # no signature to check (some builtins): let the call decide
            pass
        timeout = spec.timeout_s or self.timeout_s
        value = await self._execute(spec, call_args, timeout)
        if isinstance(value, _Failed):
            raised = value.exc
            if raised is _TIMED_OUT:
                log.warning("tool %s timed out after %.1f s", name, timeout)
                return failed(f"tool '{name}' timed out after {timeout:g} s", timed_out=True)
            if isinstance(raised, BotrunError):  # a refused call action...: say just that
                log.warning("tool %s: %s", name, raised)
                return failed(f"tool '{name}': {raised}")
            # one line naming the tool and the error; the traceback at DEBUG, once per tool
            # per call (as a failing hook's: docs/bots.md)
            why = type(raised).__name__ + (f": {_short(str(raised))}" if str(raised) else "")
            log.warning("tool %s failed: %s", name, redact(why))
            if name not in self._traced:
                self._traced.add(name)
                log.debug(
                    "tool %s traceback", name, exc_info=(type(raised), raised, raised.__traceback__)
                )
            return failed(f"tool '{name}' failed: {type(raised).__name__}: {raised}")
        try:
            result = to_json(value)
        except ValueError as exc:
            if "Out of range float" in str(exc):
                return failed(
                    f"tool '{name}' returned a number JSON cannot carry (NaN or infinity)"
                )
            return failed(f"tool '{name}' returned a value that is not JSON: {exc}")
        except BaseException as exc:  # a __str__/model_dump of the tool's that fails
            return failed(
                f"tool '{name}' returned a value that is not JSON: {type(exc).__name__}: {exc}"
            )
        capped = cap_result(result, self.max_result_bytes, name)
        truncated = capped is not result
        if truncated:
            self.stats.truncated += 1
            log.warning(
                "tool %s returned %d bytes; sent the first part (limit %d bytes)",
                name,
                len(result.encode("utf-8")),
                self.max_result_bytes,
            )
        ms = (time.perf_counter() - started) * 1000
        log.debug("tool %s ok in %.0f ms", name, ms)
        return ToolOutcome(name, arguments, capped, None, ms, truncated)

    async def _execute(self, spec: ToolSpec, arguments: dict[str, Any], timeout: float) -> Any:
        """The tool's return value, or a :class:`_Failed` (``_TIMED_OUT`` on a timeout)."""
        deadline = time.monotonic() + timeout
        if inspect.iscoroutinefunction(spec.func):
            try:
                coro = spec.func(**arguments)
            except BaseException as exc:
                return _Failed(exc)
            return await self._await(coro, deadline, spec.name)
        fut = _start_in_thread(spec.func, arguments, spec.name)
        try:
            done, _ = await asyncio.wait({fut}, timeout=timeout)
        finally:
            if not fut.done():
                fut.cancel()
        if not done:
            self.stats.abandoned_threads += 1
            log.warning(
                "tool %s is still running after %g s; its thread is left behind (it cannot "
                "be stopped) and its result will be ignored",
                spec.name,
                timeout,
            )
            return _Failed(_TIMED_OUT)
        value = fut.result()
        if inspect.isawaitable(value):  # a sync wrapper that returned a coroutine
            return await self._await(value, deadline, spec.name)
        return value

    async def _await(self, awaitable: Any, deadline: float, name: str) -> Any:
        """Await a tool's coroutine in its own task until ``deadline``. On timeout the task is
        cancelled but not waited for: a tool that ignores cancellation cannot hold the call."""
        task = asyncio.ensure_future(_guarded(awaitable))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        finally:
            if not task.done():
                task.cancel()
        if not done:
            return _Failed(_TIMED_OUT)
        if task.cancelled():  # the tool itself raised CancelledError
            return _Failed(asyncio.CancelledError("the tool was cancelled"))
        return task.result()
