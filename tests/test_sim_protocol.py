"""Conformance: session rules, validation and bad input, driven with raw WebSocket messages."""

from __future__ import annotations

import base64
import json

import pytest

from botrun.core.sim import Simulator
from tests.sim_support import RawClient, b64, silence, utterance


async def test_update_first_then_ready_updated_with_defaults(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    sid = await c.start(system_prompt="Be brief.")
    updated = await c.wait("session.updated")
    assert sid.startswith("sess_") and sid in sim.sessions
    assert c.types()[:2] == ["session.ready", "session.updated"]
    cfg = updated["config"]
    assert cfg["system_prompt"] == "Be brief."
    assert cfg["input"]["format"] == {"encoding": "audio/pcm", "sample_rate": 24000}
    assert cfg["input"]["turn_detection"] == {
        "vad_threshold": 0.5,
        "min_silence": 1000,
        "max_silence": 3000,
        "interrupt_response": True,
    }
    assert cfg["output"]["voice"] == "ivy"
    await c.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "input.audio", "audio": b64(silence(20))},
        {"type": "reply.create"},
        {"type": "tool.result", "call_id": "call_x", "result": "{}"},
    ],
)
async def test_first_message_must_be_session_update(sim: Simulator, first: dict) -> None:
    c = await RawClient.connect(sim.url)
    await c.send_raw(json.dumps(first))
    err = await c.wait("session.error")
    assert err["code"] == "invalid_format" and "first message" in err["message"]
    assert isinstance(err["timestamp"], str) and err["timestamp"].endswith("Z")
    # the socket stays open and a proper start still works
    assert await c.start()
    await c.close()


async def test_audio_before_ready_is_an_error() -> None:
    from botrun.core.sim.scenario import FaultSettings, Scenario

    scenario = Scenario(faults=FaultSettings(ready_delay_s=0.3))
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.send("session.update", session={})
        await c.send("input.audio", audio=b64(silence(20)))
        err = await c.wait("session.error")
        assert err["code"] == "invalid_format" and "before session.ready" in err["message"]
        await c.wait("session.ready")
        assert c.types().index("session.error") < c.types().index("session.ready")
        assert sim.session().received_samples == 0
        await c.close()


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"output": {"voice": "hal9000"}}, "session.output.voice"),
        (
            {"input": {"turn_detection": {"vad_threshold": 1.5}}},
            "session.input.turn_detection.vad_threshold",
        ),
        (
            {"input": {"turn_detection": {"min_silence": -1}}},
            "session.input.turn_detection.min_silence",
        ),
        (
            {"input": {"turn_detection": {"min_silence": 2000, "max_silence": 1000}}},
            "session.input.turn_detection.max_silence",
        ),
        (
            {"input": {"turn_detection": {"interrupt_response": "yes"}}},
            "session.input.turn_detection.interrupt_response",
        ),
        ({"input": {"format": {"encoding": "audio/mp3"}}}, "session.input.format.encoding"),
        (
            {"input": {"format": {"encoding": "audio/pcmu", "sample_rate": 16000}}},
            "session.input.format.sample_rate",
        ),
        ({"input": {"keyterms": ["x"] * 101}}, "session.input.keyterms"),
        ({"output": {"volume": 101}}, "session.output.volume"),
        ({"greeting": 5}, "session.greeting"),
        ({"tools": [{"type": "function", "name": "has space"}]}, "session.tools[0].name"),
    ],
)
async def test_invalid_values_are_rejected_and_nothing_applied(
    sim: Simulator, session: dict, param: str
) -> None:
    c = await RawClient.connect(sim.url)
    await c.send("session.update", session=session)
    err = await c.wait("session.error")
    assert (err["code"], err["param"]) == ("invalid_value", param)
    assert "session.ready" not in c.types()
    # a corrected update starts the session with defaults
    await c.start()
    cfg = (await c.wait("session.updated"))["config"]
    assert cfg["output"]["voice"] == "ivy"
    assert cfg["input"]["turn_detection"]["vad_threshold"] == 0.5
    await c.close()


@pytest.mark.parametrize(
    "session",
    [
        {"tools": {"name": "x"}},
        {"tools": [{"function": {"name": "x"}}]},
        {"agent_id": "agent_1", "greeting": "hi"},
    ],
)
async def test_invalid_config(sim: Simulator, session: dict) -> None:
    c = await RawClient.connect(sim.url)
    await c.send("session.update", session=session)
    assert (await c.wait("session.error"))["code"] == "invalid_config"
    await c.close()


async def test_agent_id_alone_is_accepted(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(agent_id="agent_123")
    assert sim.session().config["agent_id"] == "agent_123"
    await c.close()


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"greeting": "Something else"}, "session.greeting"),
        ({"output": {"voice": "james"}}, "session.output.voice"),
        ({"output": {"format": {"encoding": "audio/pcmu"}}}, "session.output.format"),
    ],
)
async def test_immutable_fields_after_ready(sim: Simulator, session: dict, param: str) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(greeting="", output={"voice": "sophie"})
    await c.send("session.update", session=session)
    err = await c.wait("session.error")
    assert (err["code"], err["param"]) == ("immutable_field", param)
    assert sim.session().config["output"]["voice"] == "sophie"
    await c.close()


async def test_mutable_fields_after_ready_and_same_value_is_not_a_change(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start(output={"voice": "diego"})
    await c.wait("session.updated")
    await c.send(
        "session.update",
        session={
            "system_prompt": "New prompt",
            "output": {"voice": "diego", "volume": 40},
            "input": {
                "turn_detection": {"vad_threshold": 0.7, "min_silence": 500},
                "keyterms": ["botrun"],
            },
            "tools": [{"type": "function", "name": "lookup", "description": "d", "parameters": {}}],
            "future_field": 1,
        },
    )
    cfg = (await c.wait("session.updated"))["config"]
    assert cfg["system_prompt"] == "New prompt" and cfg["output"]["volume"] == 40
    assert cfg["input"]["turn_detection"]["min_silence"] == 500
    assert cfg["tools"][0]["execution_mode"] == "interactive"
    assert cfg["tools"][0]["timeout_seconds"] == 120
    assert "session.future_field" in sim.session().ignored_keys
    assert "session.error" not in c.types()
    await c.close()


async def test_bad_frames_get_invalid_format_and_session_survives(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send_raw("{not json")
    await c.send_raw(b"\x00\x01binary")
    await c.send_raw(json.dumps([1, 2, 3]))
    await c.send("no.such.event", x=1)
    await c.send_raw(json.dumps({"type": "input.audio", "audio": "A" * (1024 * 1024 + 10)}))
    await c.send("session.resume", session_id="sess_x")
    errors = [await c.wait("session.error") for _ in range(6)]
    assert [e["code"] for e in errors] == ["invalid_format"] * 6
    assert "binary" in errors[1]["message"] and "unknown event type" in errors[3]["message"]
    assert "exceeds" in errors[4]["message"]
    # still serving: audio is accepted and counted
    await c.send_audio(silence(100))
    await c.send("session.end")
    await c.wait("session.ended")
    assert sim.session().received_samples == 2400
    assert sim.session().events[:6] == [
        "session.update",
        "<malformed>",
        "<binary>",
        "<untyped>",
        "no.such.event",
        "<oversized>",
    ]
    await c.close()


@pytest.mark.parametrize(
    ("audio", "why"),
    [
        ("!!!not base64!!!", "base64"),
        (base64.b64encode(b"\x01\x02\x03").decode(), "even number"),
        (None, "base64 string"),
    ],
)
async def test_invalid_audio_keeps_session_open(
    sim: Simulator, audio: str | None, why: str
) -> None:
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send("input.audio", **({} if audio is None else {"audio": audio}))
    err = await c.wait("session.error")
    assert err["code"] == "invalid_audio" and why in err["message"]
    await c.send_audio(silence(40))
    await c.send("session.end")
    await c.wait("session.ended")
    s = sim.session()
    assert s.received_samples == 960 and s.bad_audio_chunks == 1
    await c.close()


async def test_session_end_answers_ended_and_closes(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    sid = await c.start()
    await c.send_audio(utterance(300, 100, 100))
    await c.send("session.end")
    ended = await c.wait("session.ended")
    assert await c.wait_closed() == 1000
    assert ended["audio_duration_seconds"] == pytest.approx(0.5, abs=0.01)
    assert ended["session_duration_seconds"] >= 0 and ended["timestamp"].endswith("Z")
    # an ended session cannot be resumed
    c2 = await RawClient.connect(sim.url)
    await c2.send("session.resume", session_id=sid)
    assert (await c2.wait("session.error"))["code"] == "session_forbidden"
    await c2.close()


async def test_ids_are_unique_and_prefixed(sim: Simulator) -> None:
    ids = set()
    for _ in range(3):
        c = await RawClient.connect(sim.url)
        ids.add(await c.start())
        await c.close()
    assert len(ids) == 3 and all(i.startswith("sess_") for i in ids)
    assert list(sim.sessions) == [s.session_id for s in sim.sessions.values()]


async def test_reply_create_speaks_instructions(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send("reply.create", instructions="Say something nice")
    started = await c.wait("reply.started")
    final = await c.wait("transcript.agent")
    done = await c.wait("reply.done")
    assert started["reply_id"].startswith("reply_")
    assert final["text"] == "Say something nice" and final["interrupted"] is False
    assert done == {"type": "reply.done", "reply_id": started["reply_id"], "status": "completed"}
    deltas = [e for e in c.of_type("transcript.agent.delta")]
    assert "".join(d["delta"] for d in deltas) == "Say something nice"
    assert all(d["start_ms"] < d["end_ms"] for d in deltas)
    audio = b"".join(base64.b64decode(e["data"]) for e in c.of_type("reply.audio"))
    # tone duration matches the text: 65 ms per character by default
    assert len(audio) // 2 == len("Say something nice") * 65 * 24
    await c.close()


async def test_updated_first_order_is_selectable() -> None:
    from botrun.core.sim.scenario import Scenario, SessionSettings

    scenario = Scenario(session=SessionSettings(ready_order="updated-first"))
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start()
        assert c.types()[:2] == ["session.updated", "session.ready"]
        await c.close()


async def test_stop_closes_live_sessions_with_1001_and_logs_no_errors(caplog) -> None:
    sim = Simulator(speed=2)
    await sim.start()
    c = await RawClient.connect(sim.url)
    await c.start(greeting="A long greeting that is still playing when the server stops.")
    await c.wait("reply.audio")
    await sim.stop()
    assert await c.wait_closed() == 1001
    assert sim.session().replies[0].status == "lost"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
