"""``botrun call``: an outbound call placed through the fake Twilio REST API, answered,
streamed to ``botrun serve`` (the real app) and the simulator, followed with ``--wait``;
its status callbacks reach serve, the call's events and summary, and end the call."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import numpy as np
import pytest
from fake_twilio import BUSY, FROM_NUMBER, FakeCall
from speech import assert_found_in_order
from twilio_support import as_pcm, serve_with_twilio, ulaw_speech, wait_for

from botrun.core import events as ev
from botrun.core.errors import BotrunError

pytest.importorskip("twilio")

CALLEE = "+15557770000"


@pytest.mark.parametrize("transcode", [False, True], ids=["pcmu-passthrough", "transcoded"])
async def test_outbound_call_is_placed_answered_and_ended_by_its_status_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transcode: bool
) -> None:
    from botrun.bots.call import place
    from botrun.core.sim import Simulator

    voice = ulaw_speech("Hello, this is Sam speaking, who is calling please?", tmp_path / "v.wav")
    extra = "[twilio]\ntranscode = true\n" if transcode else ""
    out = io.StringIO()
    async with (
        Simulator() as sim,
        serve_with_twilio(monkeypatch, tmp_path, sim.url, config_extra=extra) as serve,
    ):
        tw = serve.twilio
        tw.answered_by = "machine_start"
        answered: list[FakeCall] = []

        async def callee(call: FakeCall) -> None:
            answered.append(call)
            assert call.stream is not None
            await call.stream.speak(voice)
            n = len(call.stream.received)
            await wait_for(lambda: len(call.stream.received) >= n + 8000, "the bot's reply")
            # The callee hangs up: Twilio's status callback says so (the stream is left open:
            # the callback alone must end the call).
            await tw.post_status(call, "completed")

        tw.on_answer = callee
        code = await asyncio.wait_for(
            place(CALLEE, None, None, True, "Enable", 30, out=out), timeout=60
        )
        call = answered[0]
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end")
        record = serve.calls.finished[call.sid]
        assert call.stream is not None
        await asyncio.wait_for(call.stream.closed.wait(), 10)  # serve closed the stream
        received = np.frombuffer(sim.session().received_audio, dtype="<i2")

    assert code == 0
    # The REST request: the call, serve's webhook and status callback, machine detection.
    ((_, _, params),) = [r for r in tw.requests if r[0] == "create"]
    assert params["To"] == CALLEE and params["From"] == FROM_NUMBER
    assert params["Url"] == serve.url + "/twilio/voice"
    assert params["StatusCallback"] == serve.url + "/twilio/status"
    assert params["MachineDetection"] == "Enable" and params["Timeout"] == "30"
    # Every status callback was accepted by serve, and is in the call's record (its summary).
    assert [c for c in call.callbacks if c[1] != 204] == []
    assert record.statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert record.summary is not None and record.summary.reason == "call completed"
    # The call's events: its statuses and who answered (for the hooks: leave a voicemail).
    states = [(e.state, e.detail) for e in serve.tap.of(ev.TransportStatus)]
    assert ("answered-by", "machine_start") in states
    assert ("in-progress", "outbound-api") in states and ("completed", "") in states
    # --wait printed the statuses and exited with the outcome.
    text = out.getvalue()
    assert f"call {call.sid} to {CALLEE} from {FROM_NUMBER}: queued" in text
    assert f"call {call.sid}: completed" in text
    # The callee's words reached the agent.
    callee_pcm = as_pcm(voice)
    if transcode:
        from scipy.signal import resample_poly

        ref = resample_poly(callee_pcm.astype(np.float64), 3, 1)
        assert_found_in_order(ref, received, block=4800, min_corr=0.95)
    else:
        assert_found_in_order(callee_pcm, received, block=1600, min_corr=0.99)


async def test_a_busy_number_is_reported_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from botrun.bots.call import place

    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="botrun.serve.twilio")
    async with serve_with_twilio(monkeypatch, tmp_path, "ws://127.0.0.1:9/agent") as serve:
        with pytest.raises(BotrunError, match="busy"):
            await asyncio.wait_for(place(BUSY, None, None, True, None, None, out=out), 30)
        await wait_for(lambda: serve.calls.finished, "the status callbacks")
        (record,) = serve.calls.finished.values()
    assert record.statuses == ["initiated", "ringing", "busy"]
    assert serve.calls.active == {} and serve.calls.pending == {}
    assert ": busy" in out.getvalue()
    summary = [r.getMessage() for r in caplog.records if "before it was answered" in r.getMessage()]
    assert summary == [
        f"call {record.sid} to {BUSY} ended before it was answered: busy; "
        "statuses: initiated, ringing, busy"
    ]


async def test_without_wait_the_call_is_placed_and_the_command_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botrun.bots.call import place

    out = io.StringIO()
    async with serve_with_twilio(monkeypatch, tmp_path, "ws://127.0.0.1:9/agent") as serve:
        code = await asyncio.wait_for(
            place(BUSY, "+15550002222", None, False, None, None, out=out), 30
        )
        (sid,) = serve.twilio.calls
    assert code == 0
    assert out.getvalue() == f"call {sid} to {BUSY} from +15550002222: queued\n"


async def test_call_command_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = [sys.executable, "-m", "botrun.bots.cli", "call"]
    r = subprocess.run([*run, "555-1234"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "E.164" in r.stderr
    r = subprocess.run(
        [*run, "+15551234567"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    # every missing variable at once, the caller ID's too (item 5 of the new-user probe)
    assert (
        "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, PUBLIC_URL, TWILIO_FROM_NUMBER are not set"
        in r.stderr
    )
    r = subprocess.run(
        [*run, "+15551234567", "--from", "+15550001111"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, PUBLIC_URL are not set" in r.stderr
