"""Every call action is accounted for (issue 16 follow-ups 3 and 4): refused ones (an
undeclared transfer target, bad digits, a transport that cannot do it) are listed in the
call summary and its console lines like the ones done, and every action -- done, failed or
refused -- is a ``"role": "action"`` line of the ``--transcript`` JSONL, secrets masked.
Through the real bridge, the simulator and the WAV transport; the console summary through
the real ``botrun wav`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import call_hooks
from call_support import ActionWav, run_call, silence
from test_wav_call_flows import botrun_wav, config

from botrun.bots.runner import action_lines, bot_hooks
from botrun.core.config import config_from_dict
from botrun.core.secrets import register_secret
from botrun.core.sim import Simulator
from botrun.transports.wav.transport import WavInput

SECRET = "tok_Sekrit0123456789"
UNKNOWN = "unknown transfer target 'billing' (declared: sales)"
BAD_DIGITS = "not DTMF digits: 'X' (allowed: 0-9 * # A B C D)"
BAD_NUMBER = "expected an E.164 number ('+14155550123') or a SIP URI ('sip:user@host')"
NO_DIAL = "the wav transport cannot dial out"


def action_records(path: Path) -> list[tuple[Any, ...]]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [(x["action"], x["detail"], x["error"]) for x in lines if x["role"] == "action"]


async def test_refused_actions_are_in_the_summary_and_the_transcript(tmp_path: Path) -> None:
    register_secret(SECRET)
    call_hooks.SEEN.clear()
    cfg = config_from_dict(
        {
            "agent": {"greeting": ""},
            "bot": {"hooks": "call_hooks:Refusals"},
            "transfer": [{"name": "sales", "to": "sip:sales@example.com"}],
        }
    )
    transport = ActionWav(
        [WavInput(tmp_path / "caller.wav", silence(3), 0.0, "Caller")], tmp_path / "bot.wav"
    )
    transcript = tmp_path / "t.jsonl"
    summary, _rec, _sim, _ = await run_call(
        transport, cfg, None, hooks=bot_hooks(cfg), transcript=transcript
    )
    assert summary.error is None
    refused = [s[1] for s in call_hooks.SEEN if s[0] == "refused"]
    assert refused[:3] == [UNKNOWN, BAD_DIGITS, BAD_NUMBER]
    assert refused[3].startswith(NO_DIAL)
    listed = [(a.action, a.detail, a.error) for a in summary.actions]
    masked = "sip:***@pbx.example.com"
    assert listed[:4] == [
        ("transfer", "billing", UNKNOWN),
        ("send_dtmf", "12x", BAD_DIGITS),
        ("dial_out", "12345", BAD_NUMBER),
        ("dial_out", masked, refused[3]),
    ]
    # the WAV transport of the tests refuses DTMF out (the Transport default)
    assert listed[4][:2] == ("send_dtmf", "1#") and listed[4][2] is not None
    assert len(listed) == 5
    # the summary's console lines list them with why they failed
    lines = action_lines(summary.actions)
    assert f"call action: transfer billing (failed: {UNKNOWN})" in lines
    assert f"call action: send_dtmf 12x (failed: {BAD_DIGITS})" in lines
    assert len(lines) == 5
    # the transcript has one action line for each, in order, the secret masked
    assert action_records(transcript) == listed
    assert SECRET not in transcript.read_text()


async def test_botrun_wav_lists_refused_and_done_actions(tmp_path: Path) -> None:
    """The real command: its summary lines and its transcript (the real WAV transport
    records DTMF tones, so ``1#`` is done)."""
    call_hooks.SEEN.clear()
    caller = tmp_path / "caller.wav"
    import wave

    with wave.open(str(caller), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(silence(3))
    cfg = config(
        tmp_path,
        '[agent]\ngreeting = ""\n[bot]\nhooks = "call_hooks:Refusals"\n'
        '[[transfer]]\nname = "sales"\nto = "sip:sales@example.com"\n',
    )
    async with Simulator() as sim:
        rc, out, err = await botrun_wav(tmp_path, sim.url, "--config", cfg, "--input", str(caller))
    assert rc == 0, err[-3000:]
    assert f"call action: transfer billing (failed: {UNKNOWN})" in out
    assert f"call action: send_dtmf 12x (failed: {BAD_DIGITS})" in out
    assert f"call action: dial_out 12345 (failed: {BAD_NUMBER})" in out
    assert "call action: send_dtmf 1# (done)" in out
    records = action_records(tmp_path / "t.jsonl")
    assert records[0] == ("transfer", "billing", UNKNOWN)
    assert records[-1] == ("send_dtmf", "1#", None)
    assert len(records) == 5
