"""Issue 16 through the real bridge, the simulator and the WAV transport: tools and hooks
that act on the call (hang-up, transfer, keypad), the idle check-in, failures survived."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import call_hooks
import pytest
from call_support import RATE, ActionWav, run_call, silence
from speech import speak

from botrun.bots.runner import bot_hooks, bot_tools
from botrun.core import events as ev
from botrun.core.config import config_from_dict
from botrun.core.sim.scenario import scenario_from_dict
from botrun.transports.wav.transport import WavInput


@pytest.fixture(scope="module")
def said(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("said")
    texts = {
        "bye": "That's all, thank you.",
        "one": "Please press some keys.",
        "two": "Put me through to billing.",
        "three": "Send the tones one and hash.",
    }
    return {k: speak(t, d / f"{k}.wav").tobytes() for k, t in texts.items()}


def caller(tmp_path: Path, pcm: bytes) -> list[WavInput]:
    return [WavInput(tmp_path / "caller.wav", pcm, 0.0, "Caller")]


def cfg(data: dict[str, Any] | None = None) -> Any:
    base: dict[str, Any] = {"agent": {"greeting": ""}}
    for key, value in (data or {}).items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(base)


async def test_end_call_hangs_up_after_the_goodbye_with_a_complete_transcript(
    tmp_path: Path, said: dict[str, bytes]
) -> None:
    # The caller's file lasts 30 s; the agent says goodbye and calls end_call after the
    # first turn, so the call must end long before the file does.
    config = cfg({"agent": {"greeting": "", "tools": ["end_call"]}})
    scenario = scenario_from_dict(
        {
            "turns": [
                {
                    "user": "That's all, thank you.",
                    "reply": "Goodbye, have a nice day!",
                    "tool": {"name": "end_call"},
                }
            ]
        }
    )
    transport = ActionWav(caller(tmp_path, said["bye"] + silence(30)), tmp_path / "bot.wav")
    transcript = tmp_path / "t.jsonl"
    summary, rec, sim, _ = await run_call(
        transport, config, scenario, tools=bot_tools(config), transcript=transcript
    )
    assert summary.error is None and summary.exit_code == 0
    assert summary.reason == "hang_up"
    assert not transport.input_ended(rec)  # ended early, not by the caller's file ending
    assert transport.asked == [("hang_up", "hang_up")]
    assert [(a.action, a.detail, a.error) for a in summary.actions] == [
        ("hang_up", "hang_up", None)
    ]
    assert [e.action for e in rec.of(ev.CallAction)] == ["hang_up"]
    assert [c["name"] for c in sim.session().tool_calls] == ["end_call"]
    # the whole goodbye reached the meeting: the simulator's tone for it, resampled to 16 kHz
    (goodbye,) = [r for r in sim.session().replies if r.text == "Goodbye, have a nice day!"]
    goodbye_bytes = len(goodbye.audio) * RATE // 24000
    assert len(transport.sent) >= goodbye_bytes * 0.95
    # transcript complete: the caller's words and the goodbye, nothing after it
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    spoken = [(x["role"], x.get("text")) for x in lines if x["role"] in ("user", "agent")]
    assert spoken == [("user", "That's all, thank you."), ("agent", "Goodbye, have a nice day!")]


async def test_keypad_press_reaches_the_hook_and_the_agent_says_it(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg({"bot": {"hooks": "call_hooks:Keypad"}})
    transport = ActionWav(
        caller(tmp_path, silence(6)),
        tmp_path / "bot.wav",
        presses=[(1.5, "1")],
        phone="+14155550123",
    )
    summary, rec, sim, _ = await run_call(transport, config, None, hooks=bot_hooks(config))
    assert summary.error is None
    assert rec.of(ev.DtmfReceived)[0].digit == "1"
    seen = call_hooks.SEEN
    assert seen[0] == ("start", "wav")
    assert ("joined", "wav-1", True, "+14155550123") in seen
    assert ("dtmf", "1", "wav-1", True) in seen
    # the hook's say() went out as reply.create and the agent said exactly those words
    assert "reply.create" in sim.session().events
    assert "You pressed 1." in rec.agent_lines()
    assert seen[-1] == ("end", summary.reason, ["agent"])
    assert [a.action for a in summary.actions] == ["say"]


async def test_idle_reminder_then_goodbye_and_hang_up(tmp_path: Path) -> None:
    config = cfg(
        {
            "bot": {
                "idle_reminder_s": 1.0,
                "idle_hangup_s": 1.0,
                "idle_reminder": "Are you still there?",
                "idle_goodbye": "Goodbye for now.",
            }
        }
    )
    transport = ActionWav(caller(tmp_path, silence(30)), tmp_path / "bot.wav")
    summary, rec, _sim, _ = await run_call(transport, config, None)
    assert summary.error is None
    assert summary.reason == "idle"
    assert not transport.input_ended(rec)
    # the reminder's instructions spoken (the simulator speaks reply.create instructions),
    # then the goodbye, then the hang-up
    assert rec.agent_lines() == ["Are you still there?", "Goodbye for now."]
    assert [a.action for a in summary.actions] == ["reply", "say", "hang_up"]
    assert transport.asked == [("hang_up", "idle")]


async def test_caller_speech_as_the_idle_goodbye_starts_calls_the_hang_up_off(
    tmp_path: Path,
) -> None:
    call_hooks.SEEN.clear()
    config = cfg(
        {
            "bot": {
                "hooks": "call_hooks:SpeaksDuringGoodbye",
                "idle_reminder_s": 1.0,
                "idle_hangup_s": 1.0,
                "idle_reminder": "Are you still there?",
                "idle_goodbye": "Goodbye for now.",
            }
        }
    )
    transport = ActionWav(caller(tmp_path, silence(30)), tmp_path / "bot.wav")
    summary, _rec, _sim, _ = await run_call(transport, config, None)
    assert summary.error is None
    # no idle hang-up: the idle clock started again and the third quiet spell came
    assert call_hooks.SEEN == [("idle", 1), ("idle", 2), ("idle", 3)]
    assert summary.reason == "still there"
    assert transport.asked == [("hang_up", "still there")]


async def test_on_idle_tells_the_check_in_from_the_hang_up(tmp_path: Path) -> None:
    """docs/bots.md section 5: ``call.idle_step`` names the step on_idle runs in (with both
    thresholds equal, ``seconds`` alone cannot); caller speech starts the steps again."""
    call_hooks.SEEN.clear()
    config = cfg(
        {
            "bot": {
                "hooks": "call_hooks:IdleSteps",
                "idle_reminder_s": 1.0,
                "idle_hangup_s": 1.0,
                "idle_reminder": "Are you still there?",
                "idle_goodbye": "Goodbye for now.",
            }
        }
    )
    transport = ActionWav(caller(tmp_path, silence(30)), tmp_path / "bot.wav")
    summary, _rec, _sim, _ = await run_call(transport, config, None)
    assert summary.error is None
    steps = [s[1:] for s in call_hooks.SEEN if s[0] == "step"]
    assert steps == [("check-in", True), ("hang-up", True), ("check-in", True)]
    assert summary.reason == "still there"


async def test_on_idle_can_take_over(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg(
        {"bot": {"hooks": "call_hooks:TakesOverIdle", "idle_reminder_s": 1.0, "idle_hangup_s": 1.0}}
    )
    transport = ActionWav(caller(tmp_path, silence(30)), tmp_path / "bot.wav")
    summary, rec, _sim, _ = await run_call(transport, config, None)
    assert summary.reason == "caller went quiet"
    assert call_hooks.SEEN == [("idle", True)]
    assert rec.agent_lines() == []  # no default reminder
    assert transport.asked == [("hang_up", "caller went quiet")]


async def test_every_hook_failure_is_survived(
    tmp_path: Path, said: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    call_hooks.SEEN.clear()
    caplog.set_level(logging.WARNING, "botrun.hooks")
    # (dtmf "ignore": the key is for the hook alone; a failed on_dtmf forwarding the key to
    # the agent is tests/test_call_keypad.py)
    config = cfg({"bot": {"hooks": "call_hooks:Broken", "hook_timeout_s": 0.5, "dtmf": "ignore"}})
    transport = ActionWav(
        caller(tmp_path, said["one"] + silence(3)), tmp_path / "bot.wav", presses=[(0.5, "5")]
    )
    scenario = scenario_from_dict(
        {"turns": [{"user": "Please press some keys.", "reply": "Sure."}]}
    )
    summary, rec, _sim, _ = await run_call(transport, config, scenario)
    # the call went on as if there were no hooks: the agent answered, the call ended when
    # the caller's file did, without an error
    assert summary.error is None and summary.exit_code == 0
    assert transport.input_ended(rec)
    assert rec.agent_lines() == ["Sure."]
    assert ("agent", "Sure.") in call_hooks.SEEN
    assert call_hooks.SEEN[-1] == ("end", summary.reason)
    text = caplog.text
    for name in (
        "on_call_start",
        "on_participant_joined",
        "on_participant_left",
        "on_user_transcript",
        "on_agent_transcript",
        "on_dtmf",
        "on_call_end",
    ):
        assert f"hook {name} (call_hooks:Broken)" in text, name
    assert "RuntimeError: on_call_start exploded" in text
    assert "SystemExit" in text and "did not finish within 0.5 s" in text
    assert "hooks call_hooks:Broken: 5 of 7 runs failed, 2 timed out in this call" in text


async def test_refused_and_unsupported_actions_become_tool_errors_the_agent_hears(
    tmp_path: Path, said: dict[str, bytes]
) -> None:
    config = cfg(
        {
            "agent": {"greeting": "", "tools": ["send_dtmf", "transfer_call"]},
            "transfer": [{"name": "sales", "to": "sip:sales@example.com"}],
        }
    )
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 10, "delay_ms": 100},
            "turns": [
                {"user": "keys", "tool": {"name": "send_dtmf", "arguments": {"digits": "12x"}}},
                {
                    "user": "billing",
                    "tool": {"name": "transfer_call", "arguments": {"target": "billing"}},
                },
                {"user": "tones", "tool": {"name": "send_dtmf", "arguments": {"digits": "1#"}}},
            ],
        }
    )
    pcm = b"".join(said[k] + silence(5) for k in ("one", "two", "three"))
    transport = ActionWav(caller(tmp_path, pcm), tmp_path / "bot.wav")
    summary, rec, sim, _ = await run_call(transport, config, scenario, tools=bot_tools(config))
    assert summary.error is None
    errors = [json.loads(r["result"])["error"] for r in sim.session().tool_results]
    assert errors[0] == "tool 'send_dtmf': not DTMF digits: 'X' (allowed: 0-9 * # A B C D)"
    assert errors[1].startswith("tool 'transfer_call': unknown transfer target 'billing'")
    assert "declared: sales" in errors[1]
    assert errors[2] == "tool 'send_dtmf': the wav transport cannot send DTMF tones"
    # refused before the transport was asked; the unsupported one reached it and failed
    assert transport.asked == [("send_dtmf", "1#")]
    # every one is listed in the summary, the refused ones too (issue 16 follow-up 3)
    assert [(a.action, a.error) for a in summary.actions] == [
        ("send_dtmf", "not DTMF digits: 'X' (allowed: 0-9 * # A B C D)"),
        ("transfer", errors[1].removeprefix("tool 'transfer_call': ")),
        ("send_dtmf", "the wav transport cannot send DTMF tones"),
    ]
    # the agent heard each error (the simulator reads tool results out)
    heard = " ".join(rec.agent_lines())
    assert "not DTMF digits" in heard and "unknown transfer target" in heard
    assert "cannot send DTMF tones" in heard


async def test_actions_after_the_call_ended_are_no_ops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    call_hooks.SEEN.clear()
    caplog.set_level(logging.INFO, "botrun.call")
    config = cfg(
        {
            "bot": {"hooks": "call_hooks:AfterEnd"},
            "transfer": [{"name": "sales", "to": "+14155550123"}],
        }
    )
    transport = ActionWav(caller(tmp_path, silence(1)), tmp_path / "bot.wav")
    summary, _rec, sim, _ = await run_call(transport, config, None)
    assert summary.error is None
    assert call_hooks.SEEN == [("after-end", True)]
    assert transport.asked == [] and summary.actions == []
    assert "reply.create" not in sim.session().events
    for action in ("say", "transfer", "hang_up"):
        assert f"{action} ignored, the call has ended" in caplog.text


async def test_botrun_wav_exits_once_the_goodbye_has_played(
    tmp_path: Path, said: dict[str, bytes]
) -> None:
    import asyncio
    import os
    import sys

    from speech import write_wav

    from botrun.core.sim import Simulator

    wav = tmp_path / "caller.wav"
    write_wav(wav, said["bye"] + silence(120), RATE)  # two minutes, if nobody hangs up
    config = tmp_path / "bot.toml"
    config.write_text('[agent]\ngreeting = ""\ntools = ["end_call"]\n')
    scenario = scenario_from_dict(
        {"turns": [{"user": "bye", "reply": "Goodbye then!", "tool": {"name": "end_call"}}]}
    )
    transcript = tmp_path / "t.jsonl"
    async with Simulator(scenario) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "wav",
            "--input",
            str(wav),
            "--participant",
            "Caller",
            "--output",
            str(tmp_path / "o.wav"),
            "--config",
            str(config),
            "--agent-url",
            sim.url,
            "--transcript",
            str(transcript),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)  # far less than 2 minutes
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "call action: hang_up (done)" in stdout
    assert "+ Caller joined" in stdout
    assert "- Caller left" not in stdout  # the call ended before the caller's file did
    assert "bot voice recorded to" in stdout
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    assert [x.get("text") for x in lines if x["role"] == "agent"] == ["Goodbye then!"]


async def test_a_hang_up_outlives_the_tool_that_asked_for_it(
    tmp_path: Path, said: dict[str, bytes]
) -> None:
    # The tool may run 0.5 s; the goodbye lasts ~4 s. The tool times out, the hang-up
    # still happens once the goodbye has played, with the tool's reason.
    goodbye = "Okay, I will hang up now. Goodbye and take care of yourself."
    config = cfg({"agent": {"greeting": "", "tools": ["call_tools_mod:hang_up_now"]}})
    scenario = scenario_from_dict(
        {"turns": [{"user": "bye", "reply": goodbye, "tool": {"name": "hang_up_now"}}]}
    )
    transport = ActionWav(caller(tmp_path, said["bye"] + silence(30)), tmp_path / "bot.wav")
    summary, rec, sim, _ = await run_call(transport, config, scenario, tools=bot_tools(config))
    assert summary.reason == "caller asked" and summary.error is None
    assert not transport.input_ended(rec)
    (called,) = rec.of(ev.ToolCalled)
    assert called.error == "tool 'hang_up_now' timed out after 0.5 s"
    (reply,) = [r for r in sim.session().replies if r.text == goodbye]
    assert len(transport.sent) >= len(reply.audio) * RATE // 24000 * 0.95
    assert rec.agent_lines() == [goodbye]


async def test_a_reply_that_never_ends_delays_the_hang_up_a_few_seconds_at_most(
    tmp_path: Path, said: dict[str, bytes]
) -> None:
    # The agent never sends reply.done (and the bridge would wait 60 s before calling the
    # reply stalled): the hang-up waits its few seconds, then ends the call anyway.
    config = cfg(
        {
            "agent": {"greeting": "", "tools": ["end_call"]},
            "bridge": {"reply_timeout_s": 60.0},
        }
    )
    scenario = scenario_from_dict(
        {
            "faults": {"reply_never_done": True},
            "turns": [{"user": "bye", "reply": "Bye.", "tool": {"name": "end_call"}}],
        }
    )
    transport = ActionWav(caller(tmp_path, said["bye"] + silence(40)), tmp_path / "bot.wav")
    summary, rec, _sim, _ = await run_call(transport, config, scenario, tools=bot_tools(config))
    assert summary.reason == "hang_up" and summary.error is None
    assert not transport.input_ended(rec)
    assert transport.asked == [("hang_up", "hang_up")]


async def test_update_changes_the_session_mid_call(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg({"bot": {"hooks": "call_hooks:Updater"}})
    transport = ActionWav(caller(tmp_path, silence(3)), tmp_path / "bot.wav")
    summary, _rec, sim, _ = await run_call(transport, config, None)
    assert summary.error is None and call_hooks.SEEN == [("updated",)]
    session = sim.session()
    assert session.config["system_prompt"] == "You are now a pirate."
    assert session.config["input"]["turn_detection"]["min_silence"] == 600
    assert [(a.action, a.detail) for a in summary.actions] == [("update", "input, system_prompt")]


async def test_a_transfer_outlives_the_hook_that_asked_for_it(tmp_path: Path) -> None:
    config = cfg(
        {
            # (a hook cut off never returned True, so its key would go to the agent too)
            "bot": {
                "hooks": "call_hooks:ImpatientTransfer",
                "hook_timeout_s": 0.5,
                "dtmf": "ignore",
            },
            "transfer": [{"name": "sales", "to": "+14155550100"}],
        }
    )
    transport = ActionWav(caller(tmp_path, silence(10)), tmp_path / "bot.wav", presses=[(1.0, "1")])
    summary, rec, _sim, _ = await run_call(transport, config, None)
    assert summary.error is None
    assert ("transfer", "+14155550100") in transport.asked
    line = "Please hold on while I connect you to our sales team right now."
    assert rec.agent_lines() == [line]
    # the line was over before the transfer went out, though the hook was long cut off
    kinds = [
        "line" if isinstance(e, ev.AgentTranscript) and e.final else "transfer"
        for e in rec.events
        if (isinstance(e, ev.AgentTranscript) and e.final)
        or (isinstance(e, ev.CallAction) and e.action == "transfer")
    ]
    assert kinds == ["line", "transfer"]
