"""Server-side validation of ``session.update``: the rules the real service enforces.

:func:`apply_update` merges an update into the current session configuration, or returns the
error the service would send (``invalid_value``, ``invalid_config``, ``immutable_field``) with
the offending parameter path. Nothing is applied when any field is bad. Unknown keys are
ignored, as the service ignores them, and reported back so the simulator can log them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from .codec import DEFAULT_RATE, ENCODINGS, G711_RATE, PCM, AudioFormat

MAX_KEYTERMS = 100
MAX_TRANSCRIPTION_PROMPT = 1750
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_config() -> dict[str, Any]:
    """The configuration a session starts from (the service's documented defaults)."""
    fmt = {"encoding": PCM, "sample_rate": DEFAULT_RATE}
    return {
        "system_prompt": "",
        "greeting": "",
        "input": {
            "format": dict(fmt),
            "turn_detection": {
                "vad_threshold": 0.5,
                "min_silence": 1000,
                "max_silence": 3000,
                "interrupt_response": True,
            },
            "keyterms": [],
        },
        "output": {"voice": "ivy", "format": dict(fmt), "volume": 100},
        "tools": [],
    }


@dataclass
class UpdateError(Exception):
    """A rejected update: the ``session.error`` code, message and parameter."""

    code: str
    message: str
    param: str | None = None


@dataclass
class UpdateResult:
    config: dict[str, Any]
    ignored: list[str] = field(default_factory=list)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


def _obj(v: Any, param: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise UpdateError("invalid_value", f"{param} must be an object", param)
    return v


def _known(obj: dict[str, Any], keys: set[str], prefix: str, ignored: list[str]) -> None:
    ignored.extend(f"{prefix}.{k}" for k in obj if k not in keys)


def _number(v: Any, param: str, lo: float, hi: float, *, integer: bool = False) -> float | int:
    ok = _is_int(v) if integer else _is_number(v)
    if not ok or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise UpdateError("invalid_value", f"{param} must be {kind} in {lo:g}..{hi:g}", param)
    return int(v) if integer else float(v)


def _format(v: Any, param: str, ignored: list[str]) -> dict[str, Any]:
    fmt = _obj(v, param)
    _known(fmt, {"encoding", "sample_rate"}, param, ignored)
    enc = fmt.get("encoding", PCM)
    if enc not in ENCODINGS:
        raise UpdateError(
            "invalid_value",
            f"{param}.encoding must be one of {', '.join(ENCODINGS)}",
            f"{param}.encoding",
        )
    default_rate = DEFAULT_RATE if enc == PCM else G711_RATE
    rate = fmt.get("sample_rate", default_rate)
    rate = _number(rate, f"{param}.sample_rate", 8000, 48000, integer=True)
    if enc != PCM and rate != G711_RATE:
        raise UpdateError(
            "invalid_value", f"{param}.sample_rate must be 8000 for {enc}", f"{param}.sample_rate"
        )
    return {"encoding": enc, "sample_rate": rate}


def _strings(v: Any, param: str, max_items: int) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise UpdateError("invalid_value", f"{param} must be a list of strings", param)
    if len(v) > max_items:
        raise UpdateError("invalid_value", f"{param} allows at most {max_items} items", param)
    return list(v)


def _turn_detection(v: Any, cur: dict[str, Any], ignored: list[str]) -> dict[str, Any]:
    p = "session.input.turn_detection"
    td = _obj(v, p)
    _known(td, {"vad_threshold", "min_silence", "max_silence", "interrupt_response"}, p, ignored)
    out = dict(cur)
    if "vad_threshold" in td:
        out["vad_threshold"] = _number(td["vad_threshold"], f"{p}.vad_threshold", 0, 1)
    for key in ("min_silence", "max_silence"):
        if key in td:
            out[key] = _number(td[key], f"{p}.{key}", 0, 60000, integer=True)
    if out["max_silence"] < out["min_silence"]:
        raise UpdateError(
            "invalid_value", f"{p}.max_silence must be >= min_silence", f"{p}.max_silence"
        )
    if "interrupt_response" in td:
        if not isinstance(td["interrupt_response"], bool):
            raise UpdateError(
                "invalid_value",
                f"{p}.interrupt_response must be a boolean",
                f"{p}.interrupt_response",
            )
        out["interrupt_response"] = td["interrupt_response"]
    return out


def _tools(v: Any) -> list[dict[str, Any]]:
    p = "session.tools"
    if not isinstance(v, list):
        raise UpdateError("invalid_config", f"{p} must be a list of tool objects", p)
    out = []
    for i, tool in enumerate(v):
        q = f"{p}[{i}]"
        if not isinstance(tool, dict):
            raise UpdateError("invalid_config", f"{q} must be an object", q)
        if "function" in tool and "name" not in tool:
            raise UpdateError(
                "invalid_config",
                f"{q}: tools are flat ({{type, name, ...}}), not OpenAI's nested 'function'",
                q,
            )
        if tool.get("type", "function") != "function":
            raise UpdateError("invalid_value", f"{q}.type must be 'function'", f"{q}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise UpdateError(
                "invalid_value", f"{q}.name must be 1-64 letters, digits, '_' or '-'", f"{q}.name"
            )
        if not isinstance(tool.get("description", ""), str):
            raise UpdateError(
                "invalid_value", f"{q}.description must be a string", f"{q}.description"
            )
        if not isinstance(tool.get("parameters", {}), dict):
            raise UpdateError(
                "invalid_value", f"{q}.parameters must be a JSON Schema object", f"{q}.parameters"
            )
        mode = tool.get("execution_mode", "interactive")
        if mode not in ("interactive", "hold"):
            raise UpdateError(
                "invalid_value",
                f"{q}.execution_mode must be interactive or hold",
                f"{q}.execution_mode",
            )
        timeout = _number(tool.get("timeout_seconds", 120), f"{q}.timeout_seconds", 1, 300)
        out.append({**tool, "type": "function", "execution_mode": mode, "timeout_seconds": timeout})
    return out


def apply_update(
    current: dict[str, Any], session: Any, *, ready: bool, voices: tuple[str, ...]
) -> UpdateResult:
    """Validate ``session`` (the update's ``session`` object) against ``current`` and return the
    merged configuration. Raises :class:`UpdateError` and applies nothing on any bad field."""
    if not isinstance(session, dict):
        raise UpdateError("invalid_value", "session must be an object", "session")
    ignored: list[str] = []
    new = copy.deepcopy(current)
    top = {"system_prompt", "greeting", "input", "output", "tools", "agent_id"}
    _known(session, top, "session", ignored)
    if "agent_id" in session:
        if not isinstance(session["agent_id"], str) or not session["agent_id"]:
            raise UpdateError(
                "invalid_value", "session.agent_id must be a string", "session.agent_id"
            )
        if ready or len(session) > 1:
            raise UpdateError(
                "invalid_config",
                "agent_id must be the only field of the first session.update",
                "session.agent_id",
            )
        new["agent_id"] = session["agent_id"]
    for key in ("system_prompt", "greeting"):
        if key in session:
            if not isinstance(session[key], str):
                raise UpdateError(
                    "invalid_value", f"session.{key} must be a string", f"session.{key}"
                )
            if key == "greeting" and ready and session[key] != current["greeting"]:
                raise UpdateError(
                    "immutable_field",
                    "greeting cannot change after session.ready",
                    "session.greeting",
                )
            new[key] = session[key]
    if "input" in session:
        inp = _obj(session["input"], "session.input")
        _known(
            inp,
            {"format", "turn_detection", "keyterms", "language_codes", "transcription_prompt"},
            "session.input",
            ignored,
        )
        if "format" in inp:
            new["input"]["format"] = _format(inp["format"], "session.input.format", ignored)
        if "turn_detection" in inp:
            new["input"]["turn_detection"] = _turn_detection(
                inp["turn_detection"], current["input"]["turn_detection"], ignored
            )
        if "keyterms" in inp:
            new["input"]["keyterms"] = _strings(
                inp["keyterms"], "session.input.keyterms", MAX_KEYTERMS
            )
        if "language_codes" in inp:
            new["input"]["language_codes"] = _strings(
                inp["language_codes"], "session.input.language_codes", 20
            )
        if "transcription_prompt" in inp:
            tp = inp["transcription_prompt"]
            if not isinstance(tp, str) or len(tp) > MAX_TRANSCRIPTION_PROMPT:
                raise UpdateError(
                    "invalid_value",
                    "session.input.transcription_prompt must be "
                    f"a string of at most {MAX_TRANSCRIPTION_PROMPT} characters",
                    "session.input.transcription_prompt",
                )
            new["input"]["transcription_prompt"] = tp
    if "output" in session:
        out = _obj(session["output"], "session.output")
        _known(out, {"voice", "format", "volume"}, "session.output", ignored)
        if "voice" in out:
            if out["voice"] not in voices:
                raise UpdateError(
                    "invalid_value",
                    f"session.output.voice must be one of {', '.join(voices)}",
                    "session.output.voice",
                )
            if ready and out["voice"] != current["output"]["voice"]:
                raise UpdateError(
                    "immutable_field",
                    "output.voice cannot change after session.ready",
                    "session.output.voice",
                )
            new["output"]["voice"] = out["voice"]
        if "format" in out:
            fmt = _format(out["format"], "session.output.format", ignored)
            if ready and fmt != current["output"]["format"]:
                raise UpdateError(
                    "immutable_field",
                    "output.format cannot change after session.ready",
                    "session.output.format",
                )
            new["output"]["format"] = fmt
        if "volume" in out:
            new["output"]["volume"] = _number(out["volume"], "session.output.volume", 0, 100)
    if "tools" in session:
        new["tools"] = _tools(session["tools"])
    return UpdateResult(new, ignored)


def input_format(config: dict[str, Any]) -> AudioFormat:
    f = config["input"]["format"]
    return AudioFormat(f["encoding"], f["sample_rate"])


def output_format(config: dict[str, Any]) -> AudioFormat:
    f = config["output"]["format"]
    return AudioFormat(f["encoding"], f["sample_rate"])


def tool_mode(config: dict[str, Any], name: str) -> tuple[str, float] | None:
    """``(execution_mode, timeout_seconds)`` of a declared tool, or None when not declared."""
    for tool in config.get("tools", []):
        if tool.get("name") == name:
            return tool["execution_mode"], float(tool["timeout_seconds"])
    return None
