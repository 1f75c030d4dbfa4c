"""A Twilio phone call end to end: the fake Twilio's signed voice webhook and Media Streams
WebSocket against ``botrun serve``'s real application, the bridge and the simulator.

Real: espeak-ng speech as μ-law sent in real time in 20 ms ``media`` messages; serve's
routes, signature checks, the transport, the bridge, pacer, agent client and simulator on
loopback; a Twilio-like player that plays the bot's μ-law in real time, answers marks once
played and drops its queue on ``clear``. Both audio paths: μ-law passed through to an
``audio/pcmu`` session, and transcoded (8 kHz μ-law <-> 24 kHz PCM16) for an agent limited
to PCM.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from speech import assert_found_in_order
from twilio_support import as_pcm, serve_with_twilio, ulaw_speech, wait_for

from botrun.core import events as ev

pytest.importorskip("twilio")

BLOCK = 1600  # 200 ms at 8 kHz


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("twilio-e2e")
    return {
        "caller": ulaw_speech(
            "I would like to talk about my order, it has not arrived yet.", d / "a.wav"
        ),
        "stop": ulaw_speech("Stop, wait a moment please.", d / "b.wav", pad_s=1.0),
    }


@pytest.mark.parametrize("transcode", [False, True], ids=["pcmu-passthrough", "transcoded"])
async def test_inbound_call_through_serve(
    voices: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transcode: bool
) -> None:
    from botrun.core.sim import Simulator

    extra = "[twilio]\ntranscode = true\n" if transcode else ""
    async with (
        Simulator() as sim,
        serve_with_twilio(monkeypatch, tmp_path, sim.url, config_extra=extra) as serve,
    ):
        tw = serve.twilio
        call, status, twiml = await tw.incoming_call(from_="+15557654321")
        assert status == 200 and "<Connect><Stream" in twiml, twiml
        assert 'name="from" value="+15557654321"' in twiml
        stream = await tw.open_stream(call, twiml)
        # The greeting plays first.
        await wait_for(lambda: len(stream.received) >= 8000, "the greeting")
        await wait_for(lambda: sim.sessions and sim.session().replies, "the greeting's reply")
        await wait_for(
            lambda: sim.session().replies[-1].status != "in_progress", "the greeting's end", 15
        )
        await stream.speak(voices["caller"])
        # The echo of the caller's sentence comes back; 1 s into it the caller talks over it.
        n0 = len(stream.received)
        await wait_for(lambda: len(stream.received) >= n0 + 8000, "the reply")
        await stream.speak(voices["stop"])
        await wait_for(lambda: stream.clears, "a clear after the barge-in")
        await stream.dtmf("5")
        await wait_for(lambda: serve.tap.of(ev.DtmfReceived), "the DTMF digit")
        active = serve.calls.active[call.sid]
        transport = active.transport
        await transport.hang_up("the test is over")
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        summary = serve.calls.finished[call.sid].summary
        session = sim.session()
        replies = list(session.replies)
        received = np.frombuffer(session.received_audio, dtype="<i2")
        input_format = session.config["input"]["format"]
        output_format = session.config["output"]["format"]

    # The agent session: μ-law at 8 kHz both ways (pass-through), or 24 kHz PCM16.
    if transcode:
        assert input_format == output_format == {"encoding": "audio/pcm", "sample_rate": 24000}
    else:
        assert input_format == output_format == {"encoding": "audio/pcmu", "sample_rate": 8000}
    # What the agent heard is the caller's voice, piece by piece, in order.
    caller = as_pcm(voices["caller"])
    if transcode:
        from scipy.signal import resample_poly

        assert_found_in_order(
            resample_poly(caller.astype(np.float64), 3, 1), received, block=3 * BLOCK, min_corr=0.95
        )
    else:
        assert_found_in_order(caller, received, block=BLOCK, min_corr=0.99)
    # The bot's reply reached Twilio as μ-law: the simulator's echo of the caller.
    bot = as_pcm(bytes(stream.received))
    assert_found_in_order(caller[: 8000 * 1], bot, block=BLOCK, min_corr=0.9)
    # Barge-in: Twilio was told to clear what it held; how long that took to take effect
    # (the most stale audio the caller can have heard) is measured from the marks.
    st = transport.stats
    assert st.clears >= 1 and stream.clears
    assert st.clear_ms and stream.cleared_bytes > 0
    # Marks: what the transport counts as heard never exceeds what Twilio played, and every
    # chunk sent is accounted for as heard or cleared.
    played_ms = sum(len(p.data) for p in stream.played) / 8
    assert st.heard_ms <= played_ms + 1e-6
    assert st.cleared_ms > 0
    assert abs(st.heard_ms + st.cleared_ms + st.unconfirmed_ms - st.sent_ms) < 1e-6
    assert st.bad_messages == 0
    # Each reply's share of what was heard, from the marks: all of the greeting, part of
    # the reply the caller cut short; in the summary's line too.
    turns = [t for t in summary.metrics.turns if t.heard_ms is not None]
    assert abs(sum(t.heard_ms for t in turns) - st.heard_ms) < 1e-6
    assert turns[0].heard_ms == pytest.approx(turns[0].reply_ms, abs=20)
    cut_turn = next(t for t in turns if t.interrupted)
    assert cut_turn.heard_ms < cut_turn.reply_ms
    assert "the caller heard" in summary.metrics.summary()
    # The greeting played whole; the echo was cut by the caller, and its words in the
    # transcript are those the caller heard (from the marks): never more than the agent sent.
    assert replies[0].status == "completed"
    cut = next(r for r in replies[1:] if r.status == "interrupted")
    finals = [e for e in serve.tap.of(ev.AgentTranscript) if e.final and e.interrupted]
    assert finals, "the interrupted reply's words"
    said = finals[0].text
    assert cut.spoken_text.startswith(said) and cut.text.startswith(said)
    # The keypad digit reached the bridge's observers (the hooks), attributed to the caller.
    (dtmf,) = serve.tap.of(ev.DtmfReceived)
    assert dtmf.digit == "5" and dtmf.participant_id == "caller"
    # Hang-up went through Twilio's REST API: the call's status set to completed.
    updates = [r for r in serve.twilio.requests if r[0] == "update"]
    assert updates == [("update", call.sid, {"Status": "completed"})]


async def test_openai_takes_the_callers_mulaw_untouched(
    voices: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI Realtime takes ``audio/pcmu`` both ways: with ``--backend openai`` the call is
    passed through like the Voice Agent API's (no transcoding), the bot's μ-law reaches the
    caller as the service sent it, and a barge-in truncates the model's memory in
    milliseconds of 8 kHz μ-law (8 bytes a ms), to what the caller heard."""
    from botrun.core.sim import Simulator

    async with (
        Simulator(protocol="openai") as sim,
        serve_with_twilio(
            monkeypatch, tmp_path, sim.url, agent_extra='backend = "openai"\ngreeting = ""\n'
        ) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: sim.sessions, "the agent session")
        await stream.speak(voices["caller"])
        # The echo of the caller's sentence comes back; 1 s into it the caller talks over it.
        await wait_for(lambda: len(stream.received) >= 8000, "the reply")
        await stream.speak(voices["stop"])
        await wait_for(lambda: stream.clears, "a clear after the barge-in")
        session = sim.session()
        await wait_for(lambda: session.wire.get("truncations"), "the truncation")
        await stream.stop()
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        summary = serve.calls.finished[call.sid].summary
        input_format = session.config["input"]["format"]
        output_format = session.config["output"]["format"]
        received = session.received_audio
        (trunc,) = session.wire["truncations"]
        cut = next(r for r in session.replies if r.status == "interrupted")

    # The session.update asked for audio/pcmu both ways (the simulator's reading of it).
    assert input_format == output_format == {"encoding": "audio/pcmu", "sample_rate": 8000}
    # What the agent heard is the caller's μ-law, sample for sample (decoded here to compare:
    # a transcoded path, 8k -> 24k, could never match exactly).
    caller = as_pcm(voices["caller"])
    assert caller.astype("<i2").tobytes() in received
    # The bot's μ-law reached Twilio unchanged too: the simulator's echo of the caller.
    bot = as_pcm(bytes(stream.received))
    assert caller[:8000].astype("<i2").tobytes() in bot.astype("<i2").tobytes()
    # Barge-in: the model's memory is cut to what the caller heard, in ms of 8 kHz μ-law:
    # within the 1 s+ of audio the service sent for the item, and what Twilio's marks say
    # the caller heard of that reply (bounded by the 200 ms the transport keeps at Twilio).
    sent_ms = len(cut.audio) / 2 / 8  # the reply's audio as sent (PCM16 before encoding)
    assert 0 < trunc["audio_end_ms"] <= trunc["sent_ms"]
    assert trunc["sent_ms"] >= sent_ms  # counted at 8 bytes a ms (stale frames after the cut too)
    turn = next(t for t in summary.metrics.turns if t.interrupted)
    assert turn.heard_ms is not None and turn.heard_ms > 500
    # (counted as PCM16 at 24 kHz, 48 bytes a ms, it would stop at a sixth of the audio)
    assert abs(trunc["audio_end_ms"] - turn.heard_ms) <= 300, (trunc, turn.heard_ms)


async def test_openai_new_session_after_a_drop_keeps_mulaw(
    voices: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI has no resume: after a dropped socket the call goes on in a new session,
    re-seeded with the conversation, and that session is asked for ``audio/pcmu`` too (the
    bridge keeps passing the caller's bytes through: a PCM16 session would hear noise)."""
    from botrun.core.sim import Simulator
    from botrun.core.sim.scenario import scenario_from_dict

    scenario = scenario_from_dict({"faults": {"drop_at_reply_audio": 10}})
    async with (
        Simulator(scenario, protocol="openai") as sim,
        serve_with_twilio(
            monkeypatch, tmp_path, sim.url, agent_extra='backend = "openai"\ngreeting = ""\n'
        ) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: sim.sessions, "the agent session")
        await stream.speak(voices["caller"])
        await wait_for(lambda: len(sim.sessions) >= 2, "a new session after the drop")
        second = list(sim.sessions.values())[1]
        await wait_for(lambda: second.ready, "the new session's setup")
        await stream.speak(voices["stop"])
        await wait_for(lambda: second.user_transcripts, "the new session hearing the caller")
        await stream.stop()
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        first = next(iter(sim.sessions.values()))
        summary = serve.calls.finished[call.sid].summary

    assert summary.client_stats.fresh_sessions >= 1
    pcmu = {"encoding": "audio/pcmu", "sample_rate": 8000}
    assert second.config["input"]["format"] == second.config["output"]["format"] == pcmu
    assert ("user", first.user_transcripts[0]) in second.wire.get("seeded", [])
    stop = as_pcm(voices["stop"]).astype("<i2").tobytes()
    assert stop in second.received_audio  # the caller's μ-law, sample for sample


async def test_gemini_gets_the_call_transcoded(
    voices: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini Live takes 16 kHz PCM16 only (and answers 24 kHz): the bridge transcodes the
    call without being told ([twilio] transcode stays false)."""
    from scipy.signal import resample_poly

    from botrun.core.sim import Simulator

    async with (
        Simulator(protocol="gemini") as sim,
        serve_with_twilio(
            monkeypatch, tmp_path, sim.url, agent_extra='backend = "gemini"\ngreeting = ""\n'
        ) as serve,
    ):
        tw = serve.twilio
        call, _, twiml = await tw.incoming_call()
        stream = await tw.open_stream(call, twiml)
        await wait_for(lambda: sim.sessions, "the agent session")
        await stream.speak(voices["caller"])
        await wait_for(lambda: len(stream.received) >= 8000, "the reply")
        await stream.stop()
        await wait_for(lambda: call.sid in serve.calls.finished, "the call's end", 15)
        session = sim.session()
        received = np.frombuffer(session.received_audio, dtype="<i2")
        wire = dict(session.wire)

    # Every chunk was PCM16 at 16 kHz (the simulator records any other as bad audio, and
    # hands the rest on to its core resampled to 24 kHz).
    assert "bad_audio" not in wire, wire.get("bad_audio")
    caller = as_pcm(voices["caller"])
    assert_found_in_order(
        resample_poly(caller.astype(np.float64), 3, 1), received, block=3 * BLOCK, min_corr=0.95
    )
    # The reply (the simulator's echo) reached Twilio as μ-law at 8 kHz.
    bot = as_pcm(bytes(stream.received))
    assert_found_in_order(caller[:8000], bot, block=BLOCK, min_corr=0.9)
