"""Conformance: tool calls (interactive and hold), result rules, and re-sending after resume."""

from __future__ import annotations

import json

from botrun.core.sim import Simulator
from botrun.core.sim.scenario import ReplySettings, Scenario, ToolCallSpec, Turn
from tests.sim_support import RawClient, silence, utterance, voiced

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def tool_scenario(*turns: Turn, **reply: object) -> Scenario:
    return Scenario(turns=turns, reply=ReplySettings(delay_ms=0, **reply))


WEATHER_TURN = Turn(
    user="Weather in Paris?", tool=ToolCallSpec(name="get_weather", arguments={"city": "Paris"})
)
TURN_DETECTION = {"turn_detection": {"min_silence": 300}}


async def test_interactive_tool_call_then_result_reply() -> None:
    async with Simulator(tool_scenario(WEATHER_TURN), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[WEATHER], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        started = await c.wait("reply.started")
        call = await c.wait("tool.call")
        done = await c.wait("reply.done")
        assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
        assert call["call_id"].startswith("call_") and done["status"] == "completed"
        first = c.types()[c.types().index("reply.started") : c.types().index("reply.done")]
        assert first[1] == "tool.call" and "transcript.agent" not in first  # measured behaviour
        assert "transcript.agent.delta" in first and "reply.audio" in first  # transition phrase
        await c.send("tool.result", call_id=call["call_id"], result=json.dumps({"temp_c": 21}))
        second = await c.wait("reply.started")
        final = await c.wait("transcript.agent")
        assert second["reply_id"] != started["reply_id"]
        assert final["text"] == 'Here is what I found: {"temp_c": 21}'
        await c.wait("reply.done")
        s = sim.session()
        assert not s.pending and not s.violations and not s.errors
        assert s.tool_results == [{"call_id": call["call_id"], "result": '{"temp_c": 21}'}]
        await c.close()


async def test_result_before_reply_done_is_flagged_and_still_answered() -> None:
    async with Simulator(tool_scenario(WEATHER_TURN), speed=4) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[WEATHER], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.send("tool.result", call_id=call["call_id"], result='"ok"')
        await c.wait("reply.done")
        assert (await c.wait("transcript.agent"))["text"].endswith(": ok")
        assert sim.session().violations == [
            f"tool.result for {call['call_id']} sent before reply.done"
        ]
        await c.close()


async def test_a_string_result_is_said_unquoted_and_an_error_as_a_sentence() -> None:
    """A JSON string result is spoken without its quotes, an error object as a sentence,
    other JSON as it came (the demo said '"We are open ..."' and '{"error": ...}')."""
    results = [
        ('"We are open Monday to Friday."', "Here is what I found: We are open Monday to Friday."),
        (
            json.dumps({"error": "tool 'press': no such key"}),
            "Here is what I found: Sorry, that did not work: tool 'press': no such key",
        ),
        ('{"temp_c": 21}', 'Here is what I found: {"temp_c": 21}'),
        ("not json", "Here is what I found: not json"),
    ]
    for result, said in results:
        async with Simulator(tool_scenario(WEATHER_TURN), speed=8) as sim:
            c = await RawClient.connect(sim.url)
            await c.start(tools=[WEATHER], input=TURN_DETECTION)
            await c.send_audio(utterance(400, 100, 400))
            call = await c.wait("tool.call")
            await c.wait("reply.done")
            await c.send("tool.result", call_id=call["call_id"], result=result)
            assert (await c.wait("transcript.agent"))["text"] == said
            assert sim.session().tool_results == [{"call_id": call["call_id"], "result": result}]
            await c.close()


async def test_object_result_ignored_until_tool_timeout() -> None:
    tool = {**WEATHER, "timeout_seconds": 1}
    async with Simulator(tool_scenario(WEATHER_TURN), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[tool], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.wait("reply.done")
        await c.send("tool.result", call_id=call["call_id"], result={"temp_c": 21})
        final = await c.wait("transcript.agent", timeout=5)
        assert final["text"] == "Sorry, that took too long."
        assert "session.error" not in c.types()
        assert "not a JSON string" in sim.session().violations[0]
        await c.close()


async def test_unknown_and_duplicate_call_ids(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send("tool.result", call_id="call_nope", result="{}")
    err = await c.wait("session.error")
    assert (err["code"], err["param"]) == ("invalid_value", "call_id")
    await c.send("tool.result", result="{}")
    assert (await c.wait("session.error"))["param"] == "call_id"
    await c.close()


async def test_hold_mode_holds_user_transcripts_until_result() -> None:
    hold_tool = {**WEATHER, "execution_mode": "hold"}
    scenario = tool_scenario(WEATHER_TURN, Turn(user="Are you there?", reply="Yes."))
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[hold_tool], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.wait("reply.done")
        hold_reply = c.types()[c.types().index("reply.started") : c.types().index("reply.done")]
        assert "reply.audio" not in hold_reply  # no speech while the tool runs
        await c.send_audio(utterance(400, 100, 400))  # the user talks during the hold
        await c.wait("input.speech.stopped")
        await c.send_audio(silence(200))
        assert c.types().count("transcript.user") == 1  # held
        await c.send("tool.result", call_id=call["call_id"], result='"sunny"')
        held = await c.wait(
            lambda e: e.get("type") == "transcript.user" and e["text"] == "Are you there?"
        )
        assert held
        await c.wait(lambda e: e.get("type") == "transcript.agent" and e["text"] == "Yes.")
        agent_texts = [e["text"] for e in c.of_type("transcript.agent")]
        assert agent_texts == ["Here is what I found: sunny", "Yes."]
        await c.close()


async def test_interrupted_tool_reply_discards_the_call() -> None:
    scenario = tool_scenario(
        WEATHER_TURN,
        tool_transition="Let me look that up for you, this will take a little while to find out.",
    )
    async with Simulator(scenario, speed=2) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[WEATHER], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.wait("reply.audio")
        await c.send_audio(voiced(200))
        done = await c.wait("reply.done")
        assert done["status"] == "interrupted"
        await c.send("tool.result", call_id=call["call_id"], result='"late"')
        await c.send("session.end")
        await c.wait("session.ended")
        s = sim.session()
        assert not s.pending and "no longer pending" in s.violations[0]
        assert "session.error" not in c.types()
        await c.close()


async def test_undeclared_scenario_tool_is_not_called() -> None:
    async with Simulator(tool_scenario(WEATHER_TURN), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(input=TURN_DETECTION)  # no tools declared
        await c.send_audio(utterance(400, 100, 400))
        await c.wait("reply.done")
        assert "tool.call" not in c.types()
        assert "not declared" in sim.session().violations[0]
        await c.close()


async def test_pending_tool_call_resent_after_resume() -> None:
    async with Simulator(tool_scenario(WEATHER_TURN), speed=8) as sim:
        c = await RawClient.connect(sim.url)
        sid = await c.start(tools=[WEATHER], input=TURN_DETECTION)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.wait("reply.done")
        c.ws.transport.abort()  # the network drops; the result was not sent yet
        await c.wait_closed()
        c2 = await RawClient.connect(sim.url)
        await c2.send("session.resume", session_id=sid)
        ready = await c2.wait("session.ready")
        again = await c2.wait("tool.call")
        assert ready["session_id"] == sid and again == call
        await c2.send("tool.result", call_id=call["call_id"], result='"21 C"')
        assert (await c2.wait("transcript.agent"))["text"].endswith(": 21 C")
        s = sim.session()
        assert s.connections == 2 and ("user", "Weather in Paris?") in s.context
        await c2.close()
