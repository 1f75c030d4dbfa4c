"""Keypad presses reach the agent (issue 16 follow-up 1): with ``[bot] dtmf = "forward"``
(the default) each press-sequence -- keys until ``#`` or until ``dtmf_gap_s`` passes without
one -- is told to the agent as one message (``reply.create`` instructions, which each
backend's wire translates); an ``on_dtmf`` hook still runs and keeps a key from the agent by
returning True; ``dtmf = "ignore"`` leaves keys to the hook alone. Through the real bridge,
the simulator (speaking each backend's protocol) and the WAV transport."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import call_hooks
import pytest
from call_support import ActionWav, run_call, silence

from botrun.bots.runner import bot_hooks
from botrun.core import events as ev
from botrun.core.config import config_from_dict
from botrun.core.keypad import keypad_message
from botrun.core.sim.wire import PROTOCOLS
from botrun.transports.wav.transport import WavInput

PREFIX = "The caller pressed these keys on the phone keypad: "


def caller(tmp_path: Path, seconds: float) -> list[WavInput]:
    return [WavInput(tmp_path / "caller.wav", silence(seconds), 0.0, "Caller")]


def told(lines: list[str]) -> list[str]:
    """The keypad messages the simulator spoke back (it speaks reply.create instructions)."""
    return [x for x in lines if x.startswith(PREFIX)]


def cfg(**bot: Any) -> Any:
    return config_from_dict({"agent": {"greeting": ""}, "bot": bot})


def test_the_message_spaces_the_keys() -> None:
    assert keypad_message("123#") == PREFIX + "1 2 3 #"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_key_sequence_is_one_message_to_the_agent(tmp_path: Path, protocol: str) -> None:
    # "1 2 3 #" ends at "#"; "5" (alone) ends after the gap. The gap is long, so the keys of
    # the first sequence cannot drift apart on a loaded machine.
    transport = ActionWav(
        caller(tmp_path, 14),
        tmp_path / "bot.wav",
        presses=[(1.0, "1"), (1.2, "2"), (1.4, "3"), (1.6, "#"), (3.0, "5")],
        phone="+14155550123",
    )
    transcript = tmp_path / "t.jsonl"
    summary, rec, _sim, _ = await run_call(
        transport, cfg(dtmf_gap_s=4.0), None, transcript=transcript, protocol=protocol
    )
    assert summary.error is None
    assert [e.digit for e in rec.of(ev.DtmfReceived)] == ["1", "2", "3", "#", "5"]
    assert told(rec.agent_lines()) == [PREFIX + "1 2 3 #", PREFIX + "5"]
    assert summary.actions == []  # the caller's input, not an action of the bot
    # each press is a line of the transcript
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    keys = [(x["digit"], x["participant_id"]) for x in lines if x["role"] == "dtmf"]
    assert keys == [(d, "wav-1") for d in "123#5"]


async def test_a_hook_keeps_a_key_from_the_agent_by_returning_true(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg(hooks="call_hooks:KeepsOne", dtmf_gap_s=4.0)
    transport = ActionWav(
        caller(tmp_path, 8),
        tmp_path / "bot.wav",
        presses=[(1.0, "1"), (1.2, "2"), (1.4, "1"), (1.6, "#")],
    )
    summary, rec, _sim, _ = await run_call(transport, config, None, hooks=bot_hooks(config))
    assert summary.error is None
    seen = list(call_hooks.SEEN)
    assert seen == [("dtmf", d) for d in "121#"]  # the hook saw every key
    assert told(rec.agent_lines()) == [PREFIX + "2 #"]


async def test_a_hook_that_answers_the_key_itself_keeps_it(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg(hooks="call_hooks:Keypad")
    transport = ActionWav(caller(tmp_path, 6), tmp_path / "bot.wav", presses=[(1.0, "7")])
    summary, rec, _sim, _ = await run_call(transport, config, None, hooks=bot_hooks(config))
    assert summary.error is None
    assert "You pressed 7." in rec.agent_lines()
    assert told(rec.agent_lines()) == []


async def test_dtmf_ignore_leaves_keys_to_the_hook(tmp_path: Path) -> None:
    call_hooks.SEEN.clear()
    config = cfg(hooks="call_hooks:KeepsOne", dtmf="ignore")
    transport = ActionWav(
        caller(tmp_path, 5), tmp_path / "bot.wav", presses=[(1.0, "2"), (1.2, "#")]
    )
    summary, rec, sim, _ = await run_call(transport, config, None, hooks=bot_hooks(config))
    assert summary.error is None
    assert call_hooks.SEEN == [("dtmf", "2"), ("dtmf", "#")]
    assert "reply.create" not in sim.session().events
    assert told(rec.agent_lines()) == []


async def test_a_failing_on_dtmf_hook_does_not_swallow_the_key(tmp_path: Path) -> None:
    config = cfg(hooks="call_hooks:Broken", hook_timeout_s=0.5, dtmf_gap_s=4.0)
    transport = ActionWav(
        caller(tmp_path, 4), tmp_path / "bot.wav", presses=[(0.5, "5"), (0.7, "#")]
    )
    summary, rec, _sim, _ = await run_call(transport, config, None, hooks=bot_hooks(config))
    assert summary.error is None
    assert told(rec.agent_lines()) == [PREFIX + "5 #"]  # on_dtmf raised KeyError for each


async def test_a_sequence_ends_at_hash_at_the_limit_or_when_flushed() -> None:
    from botrun.core.keypad import MAX_KEYS, KeySequence

    sent: list[str] = []
    keys = KeySequence(3600.0, sent.append)
    for k in "12#":
        keys.add(k)
    assert sent == ["12#"]
    for _ in range(MAX_KEYS):
        keys.add("9")
    assert sent == ["12#", "9" * MAX_KEYS]
    keys.add("4")
    assert keys.pending == "4"
    keys.cancel()  # the call ended: nobody to tell
    keys.flush()
    assert sent == ["12#", "9" * MAX_KEYS] and keys.pending == ""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_message_while_the_agent_answers_waits_its_turn(
    tmp_path: Path, protocol: str
) -> None:
    """The second sequence comes while the agent still speaks the first: on OpenAI its
    response.create was refused (conversation_already_has_active_response) and never
    spoken (second new-user probe #1; the same path as call.say() from a tool). Every
    backend now speaks both, in order, and no error reaches the call."""
    transport = ActionWav(
        caller(tmp_path, 14),
        tmp_path / "bot.wav",
        presses=[(1.0, "1"), (1.1, "#"), (1.6, "2"), (1.7, "#")],
        phone="+14155550123",
    )
    summary, rec, _sim, _ = await run_call(transport, cfg(), None, protocol=protocol)
    assert summary.error is None
    assert told(rec.agent_lines()) == [PREFIX + "1 #", PREFIX + "2 #"]
    assert not rec.of(ev.ErrorOccurred), [e.message for e in rec.of(ev.ErrorOccurred)]
