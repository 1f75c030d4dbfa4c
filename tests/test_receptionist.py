"""The receptionist example bot (issue 16 item 8): `botrun demo --config receptionist` with no
account, and its keypad menu and transfers through the real bridge and the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from call_support import ActionWav, run_call, silence
from helpers_cli import run_botrun
from speech import speak

from botrun.bots.examples import receptionist
from botrun.bots.runner import bot_hooks, bot_tools
from botrun.core import events as ev
from botrun.core.config import apply_overrides, load_config
from botrun.core.sim.scenario import load_scenario, scenario_from_dict
from botrun.transports.wav.transport import WavInput


def test_faq_answers_by_topic() -> None:
    assert receptionist.faq("When are you open?") == receptionist.FAQ["hours"]
    assert receptionist.faq("Can I get a refund?") == receptionist.FAQ["returns"]
    assert "transfer" in receptionist.faq("Do you sell boats?")


def test_the_scenario_calls_tools_the_bot_declares() -> None:
    cfg = load_config("receptionist")
    declared = set(bot_tools(cfg).names)
    called = {t.tool.name for t in load_scenario("receptionist").turns if t.tool is not None}
    assert called == {"faq", "end_call"} and called <= declared
    assert {t.name for t in cfg.transfer} == {"sales", "support"}


def test_demo_runs_with_no_account_and_hangs_up_after_the_goodbye(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    res = run_botrun(
        "demo",
        "--config",
        "receptionist",
        "--output",
        str(tmp_path / "o.wav"),
        "--transcript",
        str(transcript),
        cwd=tmp_path,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "call action: hang_up (done)" in res.stdout
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    tools = [x for x in lines if x["role"] == "tool"]
    assert [t["name"] for t in tools] == ["faq", "end_call"]
    assert json.loads(tools[0]["result"]) == receptionist.FAQ["hours"]
    agent = [x["text"] for x in lines if x["role"] == "agent"]
    assert agent[0].startswith("Thanks for calling Harbour Electronics. Press 1")  # greeting
    assert f"Sorry, 9 is not an option. {receptionist.MENU}" in agent  # the keypad (--dtmf)
    assert receptionist.CHECK_IN in agent  # the on_idle hook checked in
    # the faq answer is spoken as text, not as its JSON (no quotes)
    assert receptionist.FAQ["hours"] in agent
    assert agent[-1] == "Thanks for calling Harbour Electronics. Goodbye!"
    user = [x["text"] for x in lines if x["role"] == "user"]
    assert user == [
        "Hi. What are your opening hours?",
        "Yes, sorry. That's all, thank you. Goodbye.",
    ]


@pytest.fixture(scope="module")
def sales_request(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    d = tmp_path_factory.mktemp("reception")
    return speak("Can you put me through to sales?", d / "sales.wav").tobytes()


async def test_transfer_on_request_and_by_keypad(tmp_path: Path, sales_request: bytes) -> None:
    cfg = apply_overrides(load_config("receptionist"), {"agent.greeting": ""})
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 20, "delay_ms": 100},
            "turns": [
                {
                    "user": "Can you put me through to sales?",
                    "reply": "Sure, transferring you to sales.",
                    "tool": {"name": "transfer_call", "arguments": {"target": "sales"}},
                    "result": "",
                }
            ],
        }
    )
    # the caller asks for sales, then presses 9 (not on the menu) and 2 (support)
    pcm = sales_request + silence(12)
    transport = ActionWav(
        [WavInput(tmp_path / "c.wav", pcm, 0.0, "Caller")],
        tmp_path / "bot.wav",
        presses=[(6.0, "9"), (9.0, "2")],
        phone="+14155550123",
    )
    summary, rec, _sim, _ = await run_call(
        transport, cfg, scenario, tools=bot_tools(cfg), hooks=bot_hooks(cfg)
    )
    assert summary.error is None
    assert [a for a in transport.asked if a[0] == "transfer"] == [
        ("transfer", "sip:sales@example.com"),
        ("transfer", "sip:support@example.com"),
    ]
    transfers = [(a.detail, a.error) for a in summary.actions if a.action == "transfer"]
    assert transfers == [
        ("sales (sip:sales@example.com)", None),
        ("support (sip:support@example.com)", None),
    ]
    said = rec.agent_lines()
    assert "Sure, transferring you to sales." in said
    assert f"Sorry, 9 is not an option. {receptionist.MENU}" in said
    # the hand-over line was said (its reply over) before the transfer went out
    events = rec.events
    line = next(
        i
        for i, e in enumerate(events)
        if isinstance(e, ev.AgentTranscript) and e.final and e.text.startswith("Connecting you")
    )
    support = next(
        i
        for i, e in enumerate(events)
        if isinstance(e, ev.CallAction) and e.detail.startswith("support")
    )
    assert events[line].text == "Connecting you to support now." and line < support


async def test_botrun_wav_keypad_press_transfers_and_the_summary_says_so(tmp_path: Path) -> None:
    """The real `botrun wav` with the receptionist: a phone caller (--phone) presses 2
    (--dtmf), the on_dtmf hook has the agent say so and transfers to support; the WAV
    transport hands the caller over (they leave) and the summary lists the transfer."""
    import asyncio
    import os
    import sys

    from speech import write_wav

    from botrun.core.sim import Simulator

    wav = tmp_path / "caller.wav"
    write_wav(wav, silence(30), 16000)
    async with Simulator(scenario_from_dict({"reply": {"ms_per_char": 20}})) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "wav",
            "--input",
            str(wav),
            "--participant",
            "Caller",
            "--phone",
            "+14155550123",
            "--dtmf",
            "2.0:2",
            "--output",
            str(tmp_path / "o.wav"),
            "--config",
            "receptionist",
            "--agent-url",
            sim.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        )
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    stdout = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "bot: Connecting you to support now." in stdout
    assert "call action: transfer support (sip:support@example.com) (done)" in stdout
    assert "- Caller left" in stdout  # handed over: the caller left the bot's call


def _speech_starts(path: Path) -> list[float]:
    """Seconds into a 16-bit mono WAV where speech starts after at least 1 s of silence."""
    import array

    from botrun.transports.wav.wavio import read_wav_mono16

    rate = 16000
    pcm = array.array("h", read_wav_mono16(path, rate))
    win = rate // 50  # 20 ms windows
    starts, quiet = [], 1.0
    for i in range(0, len(pcm) - win, win):
        loud = max(abs(x) for x in pcm[i : i + win]) > 1000
        if loud and quiet >= 1.0:
            starts.append(i / rate)
        quiet = 0.0 if loud else quiet + 0.02
    return starts


def test_the_demo_caller_answers_the_check_in_well_before_the_idle_hang_up() -> None:
    """Issue 16 follow-up #2: the bundled caller's second line must start well inside
    idle_hangup_s after the check-in, or under load the idle goodbye races it. The earliest
    the idle hang-up can come: the key press, the bot's answer to it (the simulator speaks
    25 ms a character), idle_reminder_s, the check-in, idle_hangup_s."""
    from botrun.bots.demo import CALLERS, sample_path

    cfg = load_config("receptionist")
    per_char = load_scenario("receptionist").reply.ms_per_char / 1000
    ((key_at, key),) = CALLERS["receptionist"][1]
    answer = f"Sorry, {key} is not an option. {receptionist.MENU}"
    check_in_ends = key_at + len(answer) * per_char + cfg.bot.idle_reminder_s
    check_in_ends += len(receptionist.CHECK_IN) * per_char
    assert cfg.bot.idle_hangup_s is not None
    earliest_hang_up = check_in_ends + cfg.bot.idle_hangup_s
    starts = _speech_starts(sample_path("receptionist"))
    assert len(starts) == 2, starts
    second = starts[1]
    assert second > check_in_ends + 1.0  # the check-in has played when they answer
    assert second + 4.0 <= earliest_hang_up, (second, earliest_hang_up)
