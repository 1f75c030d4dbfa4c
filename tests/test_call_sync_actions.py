"""Sync hooks and sync tools act on the call (issue 16 follow-up 2). They run in threads of
their own; a call action they call (without ``await``) is handed to the call's event loop and
has run when it returns, its failure raised in the hook or tool. An async hook that forgets
``await`` gets a warning naming the fix. Through the real bridge, the simulator and the WAV
transport."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import call_hooks
import pytest
from call_support import ActionWav, run_call, silence
from speech import speak

from botrun.bots.runner import bot_hooks, bot_tools
from botrun.core import events as ev
from botrun.core.config import config_from_dict
from botrun.core.sim.scenario import scenario_from_dict
from botrun.transports.wav.transport import WavInput


def caller(tmp_path: Path, pcm: bytes) -> list[WavInput]:
    return [WavInput(tmp_path / "caller.wav", pcm, 0.0, "Caller")]


async def test_a_sync_hook_says_and_transfers(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    cfg = config_from_dict(
        {
            "agent": {"greeting": ""},
            "bot": {"hooks": "call_hooks:SyncActs", "hook_timeout_s": 20.0},
            "transfer": [{"name": "sales", "to": "sip:sales@example.com"}],
        }
    )
    transport = ActionWav(
        caller(tmp_path, silence(8)), tmp_path / "bot.wav", presses=[(1.0, "2"), (2.0, "1")]
    )
    summary, rec, sim, _ = await run_call(transport, cfg, None, hooks=bot_hooks(cfg))
    assert summary.error is None
    seen = call_hooks.SEEN
    # key 2: refused and unsupported actions raised in the sync hook, as in async code
    assert ("sync refused", "unknown transfer target 'billing' (declared: sales)") in seen
    assert ("sync dial_out", "the wav transport cannot dial out") in [s[:2] for s in seen]
    # key 1: the line was said (reply.create, the simulator speaks it) and then the transfer
    assert "You pressed 1. Connecting you to sales." in rec.agent_lines()
    assert "reply.create" in sim.session().events
    assert transport.asked == [
        ("dial_out", "+14155550123"),  # (key 2: reached the transport, which cannot)
        ("transfer", "sip:sales@example.com"),
    ]
    assert ("sync transferred", False) in seen
    done = [(a.action, a.error) for a in summary.actions if a.error is None]
    assert done == [("say", None), ("transfer", None)]
    # on_call_end: the keys seen; an action after the end does nothing (its value: None)
    assert seen[-1] == ("end", ["2", "1"], None)


async def test_a_sync_tool_acts_on_the_call(tmp_path: Path) -> None:
    cfg = config_from_dict({"agent": {"greeting": "", "tools": ["call_tools_mod:sync_send_tones"]}})
    scenario = scenario_from_dict(
        {
            "turns": [
                {
                    "user": "tones",
                    "tool": {"name": "sync_send_tones", "arguments": {"digits": "1#"}},
                }
            ]
        }
    )
    pcm = speak("Send the tones please.", tmp_path / "said.wav").tobytes() + silence(5)
    transport = ActionWav(caller(tmp_path, pcm), tmp_path / "bot.wav")
    summary, _rec, sim, _ = await run_call(transport, cfg, scenario, tools=bot_tools(cfg))
    assert summary.error is None
    # the action reached the transport from the tool's thread, and its failure (ActionWav
    # cannot send tones) is the tool's error result
    assert transport.asked == [("send_dtmf", "1#")]
    (result,) = sim.session().tool_results
    assert json.loads(result["result"])["error"] == (
        "tool 'sync_send_tones': the wav transport cannot send DTMF tones"
    )


async def test_an_action_not_awaited_is_a_warning_naming_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "botrun.call")
    cfg = config_from_dict({"agent": {"greeting": ""}, "bot": {"hooks": "call_hooks:ForgetsAwait"}})
    transport = ActionWav(caller(tmp_path, silence(3)), tmp_path / "bot.wav", presses=[(1.0, "5")])
    summary, rec, sim, _ = await run_call(transport, cfg, None, hooks=bot_hooks(cfg))
    assert summary.error is None
    assert rec.of(ev.DtmfReceived)
    assert "reply.create" not in sim.session().events
    assert (
        "call.say() was not awaited, so it did nothing: write 'await call.say(...)' "
        "in an async hook or tool"
    ) in caplog.text


async def test_a_sync_hook_hangs_up_after_its_goodbye(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    cfg = config_from_dict(
        {
            "agent": {"greeting": ""},
            "bot": {"hooks": "call_hooks:SyncHangsUp", "hook_timeout_s": 20.0},
        }
    )
    transport = ActionWav(caller(tmp_path, silence(30)), tmp_path / "bot.wav", presses=[(1.0, "9")])
    summary, rec, _sim, _ = await run_call(transport, cfg, None, hooks=bot_hooks(cfg))
    assert summary.error is None
    assert summary.reason == "caller pressed 9"
    assert not transport.input_ended(rec)  # cut short, long before the caller's 30 s
    assert transport.asked == [("hang_up", "caller pressed 9")]
    assert rec.agent_lines() == ["Goodbye."]
    assert call_hooks.SEEN == [("hung up", True)]
