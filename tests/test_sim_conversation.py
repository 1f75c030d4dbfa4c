"""Conformance: greeting, speech detection, user transcripts, replies, barge-in, audio formats."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import numpy as np

from botrun.core.sim import Simulator
from botrun.core.sim.scenario import FaultSettings, ReplySettings, Scenario, Turn
from tests.sim_support import RawClient, espeak_24k, pcm_of, silence, utterance, voiced

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # an independent G.711 implementation (stdlib, Python 3.11)


async def test_greeting_spoken_on_ready_with_matching_duration(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(greeting="Hi, I am your meeting assistant.")
    started = await c.wait("reply.started")
    final = await c.wait("transcript.agent")
    await c.wait("reply.done")
    assert final == {
        "type": "transcript.agent",
        "reply_id": started["reply_id"],
        "text": "Hi, I am your meeting assistant.",
        "interrupted": False,
    }
    audio = np.frombuffer(b"".join(pcm_of(e) for e in c.of_type("reply.audio")), "<i2")
    assert len(audio) == len("Hi, I am your meeting assistant.") * 65 * 24
    assert np.sqrt(np.mean(audio.astype(float) ** 2)) > 1000  # audible, speech-like level
    await c.close()


async def test_echo_is_the_exact_received_speech(tmp_path: Path, sim: Simulator) -> None:
    speech = espeak_24k("Please echo this sentence back to me.", tmp_path)
    sent = np.concatenate((silence(300), speech, silence(1500)))
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send_audio(sent)
    started = await c.wait("input.speech.started")
    user = await c.wait("transcript.user")
    await c.wait("reply.done")
    s = sim.session()
    assert s.received_samples == len(sent) and s.received_audio == sent.tobytes()
    assert len(s.utterances) == 1
    a, b = s.utterances[0]
    nonzero = np.flatnonzero(np.abs(sent) > 40)
    assert a <= nonzero[0] and b > nonzero[-1]  # the whole utterance, nothing clipped
    echoed = b"".join(pcm_of(e) for e in c.of_type("reply.audio"))
    assert echoed == sent[a:b].tobytes()  # sample-accurate echo
    assert started["audio_start_ms"] <= nonzero[0] * 1000 // 24000 + 60
    assert user["item_id"].startswith("item_") and user["text"].startswith("[user speech ")
    await c.close()


async def test_speech_events_partials_and_scripted_transcript() -> None:
    scenario = Scenario(
        turns=(Turn(user="What is the weather in Paris today", reply="Sunny."),),
        reply=ReplySettings(delay_ms=0),
    )
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start()
        await c.send_audio(utterance(1300, 200, 1500))
        await c.wait("reply.done")
        types = c.types()
        i_start, i_stop = types.index("input.speech.started"), types.index("input.speech.stopped")
        i_user = types.index("transcript.user")
        assert i_start < i_stop < i_user < types.index("reply.started")
        deltas = c.of_type("transcript.user.delta")
        user = c.of_type("transcript.user")[0]
        assert len(deltas) >= 2
        assert all(user["text"].startswith(d["text"]) for d in deltas)  # whole text so far
        assert [len(d["text"]) for d in deltas] == sorted(len(d["text"]) for d in deltas)
        assert {d["item_id"] for d in deltas} == {user["item_id"]}
        assert user["text"] == "What is the weather in Paris today"
        assert c.of_type("transcript.agent")[0]["text"] == "Sunny."
        await c.close()


async def test_turn_detection_settings_drive_detection(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(input={"turn_detection": {"min_silence": 400, "vad_threshold": 0.9}})
    quiet = (voiced(600) // 8).astype(np.int16)  # about -32 dBFS: under a 0.9 threshold
    await c.send_audio(np.concatenate((quiet, silence(600))))
    await c.send_audio(utterance(500, 100, 450))  # loud: detected, and 450 ms > min_silence
    await c.wait("transcript.user")
    assert c.types().count("input.speech.started") == 1
    assert sim.session().utterances[0][0] >= len(quiet) + 600 * 24
    await c.close()


async def test_pause_shorter_than_min_silence_stays_one_turn(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(input={"turn_detection": {"min_silence": 800}})
    audio = np.concatenate((voiced(400), silence(500), voiced(400), silence(1000)))
    await c.send_audio(audio)
    await c.wait("transcript.user")
    assert c.types().count("input.speech.started") == 2  # stopped may arrive twice too
    assert c.types().count("input.speech.stopped") == 2
    assert c.types().count("transcript.user") == 1
    await c.close()


async def test_unfinished_turn_waits_for_max_silence() -> None:
    scenario = Scenario(turns=(Turn(user="I would like to", complete=False),))
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(input={"turn_detection": {"min_silence": 300, "max_silence": 1500}})
        await c.send_audio(np.concatenate((voiced(500), silence(1000))))
        await c.wait("input.speech.stopped")
        await asyncio.sleep(0.05)
        assert "transcript.user" not in c.types()  # 1000 ms > min_silence, < max_silence
        await c.send_audio(silence(600))
        assert (await c.wait("transcript.user"))["text"] == "I would like to"
        await c.close()


async def test_turn_ends_when_client_stops_sending_audio(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(input={"turn_detection": {"min_silence": 400}})
    await c.send_audio(voiced(500))  # and then nothing at all
    await c.wait("transcript.user", timeout=5)
    await c.wait("reply.done")
    await c.close()


async def test_barge_in_interrupts_reply_then_stale_frames() -> None:
    scenario = Scenario(reply=ReplySettings(stale_frames=3))
    async with Simulator(scenario, speed=2) as sim:
        c = await RawClient.connect(sim.url)
        greeting = "Welcome to the meeting, I will keep talking for quite a while now."
        await c.start(greeting=greeting)
        started = await c.wait("reply.started")
        for _ in range(6):
            await c.wait("reply.audio")
        await c.send_audio(voiced(200))
        await c.wait("input.speech.started")
        final = await c.wait("transcript.agent")
        done = await c.wait("reply.done")
        assert final["interrupted"] is True and done["status"] == "interrupted"
        assert done["reply_id"] == final["reply_id"] == started["reply_id"]
        assert final["text"] and greeting.startswith(final["text"]) and final["text"] != greeting
        for _ in range(3):
            await c.wait("reply.audio")
        types = c.types()
        i_speech = types.index("input.speech.started")
        assert types.index("transcript.agent") > i_speech
        after_done = types[types.index("reply.done") + 1 :]
        assert after_done[:3] == ["reply.audio"] * 3
        rec = sim.session().replies[0]
        assert rec.status == "interrupted" and rec.spoken_text == final["text"]
        await c.close()


async def test_interrupt_response_false_disables_barge_in() -> None:
    async with Simulator(speed=4) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(
            greeting="A greeting long enough to talk over it.",
            input={"turn_detection": {"interrupt_response": False, "min_silence": 300}},
        )
        await c.wait("reply.audio")
        await c.send_audio(np.concatenate((voiced(300), silence(400))))
        await c.wait("input.speech.started")
        first_done = await c.wait("reply.done")
        assert first_done["status"] == "completed"
        assert not any(e.get("interrupted") for e in c.of_type("transcript.agent"))
        await c.wait("reply.done")  # the user's turn is answered afterwards
        assert [r.status for r in sim.session().replies] == ["completed", "completed"]
        await c.close()


async def test_scripted_tone_and_wav_replies(tmp_path: Path) -> None:
    wav = tmp_path / "reply.wav"
    import wave

    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(voiced(500, rate=16000).tobytes())
    scenario = Scenario(
        base_dir=tmp_path,
        reply=ReplySettings(delay_ms=0),
        turns=(
            Turn(reply="Short tone.", audio="tone"),
            Turn(reply="From a file.", audio="wav", wav=Path("reply.wav")),
        ),
    )
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(input={"turn_detection": {"min_silence": 300}})
        await c.send_audio(utterance(300, 100, 400))
        await c.wait("reply.done")
        await c.send_audio(utterance(300, 100, 400))
        await c.wait("reply.done")
        replies = sim.session().replies
        assert [(r.kind, r.text) for r in replies] == [
            ("tone", "Short tone."),
            ("wav", "From a file."),
        ]
        assert len(replies[0].audio) // 2 == len("Short tone.") * 65 * 24
        assert len(replies[1].audio) // 2 == 500 * 24  # 16 kHz file resampled to 24 kHz
        await c.close()


async def test_non_24k_input_is_deaf_by_default_and_honoured_when_asked() -> None:
    for mode, expect_turn in (("deaf", False), ("honour", True)):
        scenario = Scenario(faults=FaultSettings(sample_rate=mode))
        async with Simulator(scenario, speed=8) as sim:
            c = await RawClient.connect(sim.url)
            await c.start(
                input={
                    "format": {"encoding": "audio/pcm", "sample_rate": 16000},
                    "turn_detection": {"min_silence": 300},
                }
            )
            await c.send_audio(utterance(500, 100, 600, rate=16000), rate=16000)
            await c.send("session.end")
            await c.wait("session.ended")
            s = sim.session()
            assert s.received_samples == 1200 * 16 and s.input_rate == 16000
            assert ("input.speech.started" in c.types()) is expect_turn, mode
            assert not s.errors
            await c.close()


async def test_g711_input_and_output() -> None:
    async with Simulator(speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(
            input={"format": {"encoding": "audio/pcmu"}, "turn_detection": {"min_silence": 300}},
            output={"format": {"encoding": "audio/pcma"}},
        )
        lin = utterance(500, 100, 500, rate=8000).tobytes()
        ulaw = audioop.lin2ulaw(lin, 2)
        for i in range(0, len(ulaw), 400):
            await c.send(
                "input.audio", audio=__import__("base64").b64encode(ulaw[i : i + 400]).decode()
            )
        await c.wait("reply.done")
        s = sim.session()
        assert s.received_samples == len(ulaw)
        assert s.received_audio == audioop.ulaw2lin(ulaw, 2)  # decoded like the stdlib does
        out = b"".join(pcm_of(e) for e in c.of_type("reply.audio"))
        a, b = s.utterances[0]
        assert len(out) == b - a  # one byte per 8 kHz sample: A-law
        decoded = np.frombuffer(audioop.alaw2lin(out, 2), "<i2")
        assert np.sqrt(np.mean(decoded.astype(float) ** 2)) > 1000
        await c.close()
