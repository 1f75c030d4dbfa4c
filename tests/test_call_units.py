"""Issue 16 pieces on their own: tool context injection and schema, hook loading, config
of transfer targets / built-in tools / hooks, DTMF digit and number checks."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
from helpers_cli import run_botrun

from botrun.core.builtin_tools import builtin_tools
from botrun.core.call import CallContext, check_digits, check_number
from botrun.core.config import config_from_dict
from botrun.core.errors import CallActionError, ConfigError
from botrun.core.hooks import load_hooks
from botrun.core.tools import ToolRegistry, import_tool, load_tools, make_spec, tool


@tool
def with_context(order_id: str, call: CallContext) -> str:
    """Look up an order.

    Args:
        order_id: The order.
    """
    return f"{order_id} in {call.call_id}"


class FakeCall:
    call_id = "call_test"


def test_context_parameter_is_left_out_of_the_schema_and_filled_in() -> None:
    spec = with_context.__botrun_tool__  # type: ignore[attr-defined]
    assert spec.context_param == "call"
    assert spec.parameters == {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order."}},
        "required": ["order_id"],
    }


def test_context_imported_only_for_type_checking_works_too() -> None:
    spec = import_tool("call_tools_mod:where")
    assert spec.context_param == "ctx"
    assert set(spec.parameters["properties"]) == {"city", "units"}
    assert spec.parameters["required"] == ["city"]


async def test_a_bound_registry_hands_the_call_to_the_tool() -> None:
    registry = ToolRegistry([with_context.__botrun_tool__])  # type: ignore[attr-defined]
    out = await registry.bind(FakeCall()).run("with_context", {"order_id": "A1"})
    assert out.error is None and out.result == '"A1 in call_test"'
    assert registry.stats.calls == 1  # one set of stats for the bot, bound or not
    # the agent cannot pass the context itself
    bad = await registry.bind(FakeCall()).run("with_context", {"order_id": "A1", "call": "x"})
    assert bad.error == "tool 'with_context' got an unexpected argument 'call'"


async def test_a_refused_call_action_is_the_tools_error_result() -> None:
    async def act(call: CallContext) -> str:
        raise CallActionError("the wav transport cannot transfer calls")

    registry = ToolRegistry([make_spec(act)])
    out = await registry.bind(FakeCall()).run("act", {})
    assert out.error == "tool 'act': the wav transport cannot transfer calls"
    assert '"error"' in out.result


def test_builtin_tools_offer_only_declared_transfer_targets() -> None:
    cfg = config_from_dict(
        {
            "agent": {"tools": ["end_call", "transfer_call", "send_dtmf"]},
            "transfer": [
                {"name": "sales", "to": "sip:sales@example.com", "description": "new orders"},
                {"name": "support", "to": "+14155550123"},
            ],
        }
    )
    reg = load_tools(cfg.agent.tools, builtins=builtin_tools(cfg))
    assert reg.names == ["end_call", "transfer_call", "send_dtmf"]
    spec = reg.get("transfer_call")
    assert spec is not None and spec.context_param == "call"
    target = spec.parameters["properties"]["target"]
    assert target["enum"] == ["sales", "support"]
    assert "sales: new orders" in target["description"]
    assert reg.get("end_call").parameters == {"type": "object", "properties": {}}  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="not a built-in tool"):
        load_tools(["hang_up"], builtins=builtin_tools(cfg))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"agent": {"tools": ["hangup"]}}, "built-in tool (end_call, transfer_call, send_dtmf)"),
        ({"agent": {"tools": ["transfer_call"]}}, "no [[transfer]] target is declared"),
        ({"transfer": [{"name": "sales", "to": "555-1234"}]}, "'transfer.0.to': value error"),
        ({"transfer": [{"name": "sales"}]}, "'transfer.0.to': field required"),
        (
            {"transfer": [{"name": "a", "to": "+14155550123"}, {"name": "a", "to": "sip:a@b"}]},
            "transfer target names must be unique (a)",
        ),
        ({"transfer": [{"name": "a b", "to": "+14155550123"}]}, "'transfer.0.name'"),
        ({"bot": {"hooks": "my bot.hooks"}}, "expected 'package.module' or"),
        ({"bot": {"idle_reminder_s": 0}}, "'bot.idle_reminder_s'"),
    ],
)
def test_config_errors_name_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "bot.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("bot.toml: ")


@pytest.fixture
def hooks_mod(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("botrun_test_hooks")
    exec(  # a module the test controls, importable by name
        "def on_dtmf(call, digit, p): pass\n"
        "def on_something_else(x): pass\n"
        "class Good:\n    async def on_call_start(self, call): pass\n"
        "class Typo:\n    def on_dtfm(self, call, digit, p): pass\n"
        "class Empty:\n    pass\n"
        "not_a_class = 3\n",
        mod.__dict__,
    )
    monkeypatch.setitem(sys.modules, "botrun_test_hooks", mod)
    return mod


def test_hooks_load_from_a_module_or_a_class(hooks_mod: types.ModuleType) -> None:
    funcs = load_hooks("botrun_test_hooks")
    assert funcs is not None and funcs.for_call().has("on_dtmf")
    per_call = load_hooks("botrun_test_hooks:Good")
    assert per_call is not None and per_call.for_call().has("on_call_start")
    assert load_hooks(None) is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("botrun_no_such_module", "cannot import module 'botrun_no_such_module'"),
        ("botrun_test_hooks:Missing", "module 'botrun_test_hooks' has no 'Missing'"),
        ("botrun_test_hooks:not_a_class", "'not_a_class' is not a class (got int)"),
        ("botrun_test_hooks:Typo", "'on_dtfm' is not a hook (did you mean 'on_dtmf'?)"),
        ("botrun_test_hooks:Empty", "defines none of the hooks"),
        ("os.path", "standard-library module"),
    ],
)
def test_bad_hooks_are_config_errors(hooks_mod: types.ModuleType, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_hooks(path)
    assert message in str(info.value)
    assert f"[bot] hooks = '{path}'" in str(info.value)


def test_a_missing_hooks_module_stops_the_command_with_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text('[bot]\nhooks = "nowhere_to_be_found.hooks:Bot"\n')
    wav = tmp_path / "in.wav"
    from speech import write_wav

    write_wav(wav, bytes(3200), 16000)
    local = "ws://127.0.0.1:9"  # (no key needed; nothing connects)
    res = run_botrun(
        "wav", "--input", str(wav), "--config", str(cfg), "--agent-url", local, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot import module 'nowhere_to_be_found.hooks'" in lines[0]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("digits", ["1", "0123456789", "*#", "ABCD", "abcd", "1#*9"])
def test_keypad_digits_are_accepted(digits: str) -> None:
    assert check_digits(digits) == digits.upper()


@pytest.mark.parametrize(
    ("digits", "message"),
    [
        ("12x", "not DTMF digits: 'X'"),
        ("1 2", "not DTMF digits: ' '"),
        ("", "no DTMF digits given"),
        ("1" * 65, "too many DTMF digits (65; at most 64)"),
        ("½", "not DTMF digits"),
    ],
)
def test_other_digits_are_refused(digits: str, message: str) -> None:
    with pytest.raises(CallActionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_digits(digits)


def test_numbers_are_e164_or_sip() -> None:
    assert check_number("+14155550123") == "+14155550123"
    assert check_number("sip:bob@example.com") == "sip:bob@example.com"
    for bad in ("4155550123", "+1 415 555", "sip:nobody", "tel:+14155550123", ""):
        with pytest.raises(CallActionError):
            check_number(bad)
