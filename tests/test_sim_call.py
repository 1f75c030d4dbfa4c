"""Simulator (issue 16 item 7): a scenario makes the agent call any declared tool (botrun's
built-ins too) while saying the turn's own words, answers its result with the turn's own
template (or says nothing), and speaks reply.create instructions (CallContext.say's words
verbatim)."""

from __future__ import annotations

from botrun.core.instructions import say_instructions
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import ReplySettings, Scenario, ToolCallSpec, Turn
from tests.sim_support import RawClient, utterance

END_CALL = {
    "type": "function",
    "name": "end_call",
    "description": "End the call",
    "parameters": {"type": "object", "properties": {}},
}
TD = {"turn_detection": {"min_silence": 300}}


def agent_texts(c: RawClient) -> list[str]:
    return [e["text"] for e in c.of_type("transcript.agent")]


async def test_a_tool_turn_says_its_reply_and_its_result_template() -> None:
    scenario = Scenario(
        reply=ReplySettings(delay_ms=0),
        turns=(
            Turn(
                user="bye",
                reply="Goodbye!",
                tool=ToolCallSpec(name="end_call"),
                result="Result was {result} from {name}.",
            ),
        ),
    )
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[END_CALL], input=TD)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        assert call["name"] == "end_call"
        deltas = []
        while (e := await c.wait(lambda e: e["type"] in ("transcript.agent.delta", "reply.done")))[
            "type"
        ] != "reply.done":
            deltas.append(e["delta"])
        assert "".join(deltas) == "Goodbye!"  # not the scenario's tool_transition
        await c.send("tool.result", call_id=call["call_id"], result='"ok"')
        final = await c.wait("transcript.agent")
        assert final["text"] == "Result was ok from end_call."  # a JSON string, unquoted
        await c.close()


async def test_an_empty_result_template_says_nothing() -> None:
    scenario = Scenario(
        reply=ReplySettings(delay_ms=0),
        turns=(Turn(user="bye", reply="Bye.", tool=ToolCallSpec(name="end_call"), result=""),),
    )
    async with Simulator(scenario, speed=8) as sim:
        c = await RawClient.connect(sim.url)
        await c.start(tools=[END_CALL], input=TD)
        await c.send_audio(utterance(400, 100, 400))
        call = await c.wait("tool.call")
        await c.wait("reply.done")
        await c.send("tool.result", call_id=call["call_id"], result='"ok"')
        await c.send("reply.create", instructions="Now say this.")  # the next reply
        final = await c.wait("transcript.agent")
        assert final["text"] == "Now say this."  # no reply for the result came before it
        assert c.types().count("reply.started") == 2
        await c.close()


async def test_reply_create_speaks_instructions_and_say_words_verbatim(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.start()
    await c.send("reply.create", instructions=say_instructions('You pressed "1".'))
    assert (await c.wait("transcript.agent"))["text"] == 'You pressed "1".'
    await c.send("reply.create", instructions="Ask whether they are still there.")
    assert (await c.wait("transcript.agent"))["text"] == "Ask whether they are still there."
    await c.close()
