"""Call actions on a Twilio call, end to end (serve's real app, the fake Twilio, the
simulator playing a scripted agent): ``end_call`` hangs up through REST after the goodbye
has played, ``transfer_call`` redirects the live call to ``<Dial>``, and a keypad press
reaches the bot's ``on_dtmf`` hook as the phone caller's."""

from __future__ import annotations

from pathlib import Path

import call_hooks
import pytest
from twilio_support import serve_with_twilio, ulaw_speech, wait_for

from botrun.core.sim.scenario import scenario_from_dict

pytest.importorskip("twilio")


async def test_end_call_hangs_up_through_rest_after_the_goodbye(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.sim import Simulator

    voice = ulaw_speech("That is all, thank you very much.", tmp_path / "v.wav")
    scenario = scenario_from_dict(
        {
            "turns": [
                {"user": "bye", "reply": "Goodbye, have a nice day!", "tool": {"name": "end_call"}}
            ]
        }
    )
    async with (
        Simulator(scenario) as sim,
        serve_with_twilio(
            monkeypatch, tmp_path, sim.url, agent_extra='greeting = ""\ntools = ["end_call"]\n'
        ) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await stream.speak(voice)
        await wait_for(lambda: call.sid in serve.calls.finished, "the hang-up", 30)
        record = serve.calls.finished[call.sid]
        (goodbye,) = [r for r in sim.session().replies if r.text == "Goodbye, have a nice day!"]
        await stream.closed.wait()

    assert [r for r in tw.requests if r[0] == "update"] == [
        ("update", call.sid, {"Status": "completed"})
    ]
    assert record.summary is not None and record.summary.reason == "hang_up"
    assert [c["name"] for c in sim.session().tool_calls] == ["end_call"]
    # The goodbye was heard to its end before the REST hang-up: every mark came back played.
    st = record.stats
    assert st is not None
    goodbye_ms = len(goodbye.audio) / 2 / 24000 * 1000  # the simulator's record is PCM16
    assert st.heard_ms >= goodbye_ms * 0.95 and st.unconfirmed_ms == 0


async def test_transfer_redirects_the_call_to_dial_and_dtmf_reaches_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.core.sim import Simulator

    call_hooks.SEEN.clear()
    voice = ulaw_speech("Put me through to sales please.", tmp_path / "v.wav")
    scenario = scenario_from_dict(
        {
            "turns": [
                {
                    "user": "sales",
                    "reply": "Putting you through now.",
                    "tool": {"name": "transfer_call", "arguments": {"target": "sales"}},
                }
            ]
        }
    )
    extra = (
        '[[transfer]]\nname = "sales"\nto = "+14155550123"\n[bot]\nhooks = "call_hooks:Keypad"\n'
    )
    async with (
        Simulator(scenario) as sim,
        serve_with_twilio(
            monkeypatch,
            tmp_path,
            sim.url,
            config_extra=extra,
            agent_extra='greeting = ""\ntools = ["transfer_call"]\n',
        ) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call(from_="+15557654321")
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: call.sid in serve.calls.active, "the call")
        await stream.dtmf("7")
        await wait_for(lambda: any(s[0] == "dtmf" for s in call_hooks.SEEN), "the on_dtmf hook")
        await stream.speak(voice)
        await wait_for(lambda: [r for r in tw.requests if r[0] == "update"], "the transfer", 30)
        await wait_for(lambda: call.sid in serve.calls.finished, "the stream's end", 30)
        record = serve.calls.finished[call.sid]

    ((_, sid, form),) = [r for r in tw.requests if r[0] == "update"]
    assert record.summary is not None and record.summary.reason == "transferred"
    assert sid == call.sid
    assert "<Dial><Number>+14155550123</Number></Dial>" in form["Twiml"]
    assert ("dtmf", "7", "caller", True) in call_hooks.SEEN
    assert ("joined", "caller", True, "+15557654321") in call_hooks.SEEN


async def test_an_answering_machine_gets_a_voicemail_and_a_hang_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.bots.call import place
    from botrun.core.sim import Simulator

    call_hooks.SEEN.clear()
    async with (
        Simulator() as sim,
        serve_with_twilio(
            monkeypatch,
            tmp_path,
            sim.url,
            config_extra='[bot]\nhooks = "call_hooks:Voicemail"\n',
            agent_extra='greeting = ""\n',
        ) as serve,
    ):
        tw = serve.twilio
        tw.answered_by = "machine_end_beep"
        code = await place("+15557770001", None, None, True, "DetectMessageEnd", None)
        (call,) = [c for c in tw.calls.values() if c.direction == "outbound-api"]
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 30)
        record = serve.calls.finished[call.sid]
        replies = [r.text for r in sim.session().replies]

    assert code == 0
    assert ("status", "answered-by", "machine_end_beep") in call_hooks.SEEN
    assert any("Please call us back" in t for t in replies)
    assert [r[2] for r in tw.requests if r[0] == "update"] == [{"Status": "completed"}]
    assert record.summary is not None and record.summary.reason == "voicemail"
    assert record.stats is not None and record.stats.heard_ms > 0
