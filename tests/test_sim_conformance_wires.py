"""Conformance of the simulator's OpenAI Realtime and Gemini Live wires (issue 18 item 4),
driven with raw ``websockets`` messages -- not botrun's clients -- so the simulator is
checked against the protocols themselves (shared/reference/realtime-backends.md)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
import websockets
from sim_support import RawClient, silence, utterance, voiced

from botrun.core.sim import Simulator
from botrun.core.sim.scenario import scenario_from_dict

TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]


def pcm_b64(samples: np.ndarray) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


def to16k(samples24: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    return np.round(resample_poly(samples24.astype(np.float64), 2, 3)).astype(np.int16)


async def oa_append(c: RawClient, samples: np.ndarray, chunk_ms: int = 50) -> None:
    step = chunk_ms * 24
    for i in range(0, len(samples), step):
        await c.send("input_audio_buffer.append", audio=pcm_b64(samples[i : i + step]))


async def oa_start(c: RawClient, **session: Any) -> dict[str, Any]:
    created = await c.wait("session.created")
    await c.send(
        "session.update",
        session={
            "type": "realtime",
            "instructions": "be brief",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                }
            },
            **session,
        },
    )
    await c.wait("session.updated")
    return created


# -- OpenAI Realtime ------------------------------------------------------------------------


async def test_openai_turn_and_reply_events_in_order() -> None:
    async with Simulator(protocol="openai", speed=4) as sim:
        c = await RawClient.connect(sim.url)
        created = await oa_start(c)
        assert c.events[0]["type"] == "session.created" and created["session"]["id"]
        await oa_append(c, utterance(600, tail_ms=1200))
        started = await c.wait("input_audio_buffer.speech_started")
        stopped = await c.wait("input_audio_buffer.speech_stopped")
        assert stopped["item_id"] == started["item_id"]
        done = await c.wait("conversation.item.input_audio_transcription.completed")
        assert done["transcript"]
        resp = (await c.wait("response.created"))["response"]
        delta = await c.wait("response.output_audio.delta")
        assert delta["response_id"] == resp["id"] and delta["item_id"]
        assert len(base64.b64decode(delta["delta"])) % 2 == 0
        await c.wait("response.output_audio_transcript.done")
        final = await c.wait("response.done")
        assert final["response"]["id"] == resp["id"]
        assert final["response"]["status"] == "completed"
        await c.close()


async def test_openai_has_no_greeting_until_response_create() -> None:
    async with Simulator(protocol="openai", speed=4) as sim:
        c = await RawClient.connect(sim.url)
        await oa_start(c)
        await c.send("input_audio_buffer.append", audio=pcm_b64(silence(200)))
        assert "response.created" not in c.types()
        await c.send(
            "response.create",
            response={"instructions": 'Say exactly this greeting, and nothing else: "Hi there"'},
        )
        await c.wait("response.created")
        said = await c.wait("response.output_audio_transcript.done")
        assert said["transcript"] == "Hi there"
        await c.wait("response.done")
        # a second response.create while one is active is refused
        await c.send("response.create")
        await c.wait("response.created")
        await c.send("response.create")
        err = await c.wait("error")
        assert err["error"]["code"] == "conversation_already_has_active_response"
        await c.close()


async def test_openai_cancel_and_truncate_rules() -> None:
    async with Simulator(protocol="openai", speed=2) as sim:
        c = await RawClient.connect(sim.url)
        await oa_start(c)
        await c.send("response.cancel")
        assert (await c.wait("error"))["error"]["code"] == "response_cancel_not_active"
        await c.send("response.create", response={"instructions": "a long enough answer"})
        resp = (await c.wait("response.created"))["response"]
        delta = await c.wait("response.output_audio.delta")
        item = delta["item_id"]
        await c.send("response.cancel")
        done = await c.wait("response.done")
        assert done["response"]["id"] == resp["id"]
        assert done["response"]["status"] == "cancelled"
        sent_ms = sum(
            len(base64.b64decode(e["delta"])) // 48
            for e in c.of_type("response.output_audio.delta")
            if e["item_id"] == item
        )
        # past the audio sent for the item: refused, and nothing recorded
        await c.send(
            "conversation.item.truncate", item_id=item, content_index=0, audio_end_ms=10**6
        )
        assert (await c.wait("error"))["error"]["param"] == "audio_end_ms"
        await c.send(
            "conversation.item.truncate", item_id=item, content_index=0, audio_end_ms=sent_ms // 2
        )
        ok = await c.wait("conversation.item.truncated")
        assert ok["audio_end_ms"] == sent_ms // 2
        (t,) = sim.session().wire["truncations"]
        assert t["audio_end_ms"] == sent_ms // 2 and t["sent_ms"] >= sent_ms
        await c.send("conversation.item.truncate", item_id="nope", audio_end_ms=1)
        assert (await c.wait("error"))["error"]["param"] == "item_id"
        await c.close()


@pytest.mark.parametrize("out", ["audio/pcmu", "audio/pcm"])
async def test_openai_pcmu_in_and_out_when_the_session_asks(out: str) -> None:
    """``audio/pcmu`` (a phone call passed through): μ-law at 8 kHz is heard, the reply comes
    in the output format asked for, and truncation counts the item's ms in that format
    (8 bytes a ms for μ-law, 48 for 24 kHz PCM16), refusing anything past what was sent."""
    from botrun.core.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16

    async with Simulator(protocol="openai", speed=2) as sim:
        c = await RawClient.connect(sim.url)
        out_fmt = {"type": out} if out == "audio/pcmu" else {"type": out, "rate": 24000}
        await oa_start(
            c,
            audio={
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                },
                "output": {"format": out_fmt},
            },
        )
        said = utterance(800, tail_ms=1200, rate=8000)
        ulaw = pcm16_to_ulaw(said.astype("<i2").tobytes())
        for i in range(0, len(ulaw), 160):  # 20 ms messages, as Twilio sends them
            chunk = base64.b64encode(ulaw[i : i + 160]).decode()
            await c.send("input_audio_buffer.append", audio=chunk)
        await c.wait("input_audio_buffer.speech_started")
        await c.wait("response.created")
        await c.wait("response.done", timeout=20)
        session = sim.session()
        assert session.config["input"]["format"] == {"encoding": "audio/pcmu", "sample_rate": 8000}
        assert session.received_audio == ulaw_to_pcm16(ulaw)  # heard as sent
        deltas = [base64.b64decode(e["delta"]) for e in c.of_type("response.output_audio.delta")]
        item = c.of_type("response.output_audio.delta")[0]["item_id"]
        got = b"".join(deltas)
        per_ms = 8 if out == "audio/pcmu" else 48
        sent_ms = len(got) // per_ms
        assert sent_ms >= 700  # the echo of the 800 ms utterance
        if out == "audio/pcmu":  # the echo, in μ-law: the caller's voice back
            assert ulaw_to_pcm16(got) == bytes(session.replies[0].audio)
        await c.send(
            "conversation.item.truncate",
            item_id=item,
            content_index=0,
            audio_end_ms=sent_ms + 20,
        )
        assert (await c.wait("error"))["error"]["param"] == "audio_end_ms"
        await c.send(
            "conversation.item.truncate", item_id=item, content_index=0, audio_end_ms=sent_ms
        )
        await c.wait("conversation.item.truncated")
        (t,) = session.wire["truncations"]
        assert t == {"item_id": item, "audio_end_ms": sent_ms, "sent_ms": sent_ms}
        await c.close()


async def test_openai_function_call_waits_for_response_create() -> None:
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 5},
            "turns": [{"user": "look it up", "tool": {"name": "lookup", "arguments": {"q": "x"}}}],
        }
    )
    async with Simulator(scenario, protocol="openai", speed=4) as sim:
        c = await RawClient.connect(sim.url)
        await oa_start(c, tools=TOOLS)
        await oa_append(c, utterance(600, tail_ms=1200))
        call = await c.wait("response.function_call_arguments.done")
        assert call["name"] == "lookup" and json.loads(call["arguments"]) == {"q": "x"}
        await c.wait("response.done")
        item = {"type": "function_call_output", "call_id": call["call_id"], "output": '"42"'}
        await c.send("conversation.item.create", item=item)
        await c.wait("conversation.item.added")
        await oa_append(c, silence(400))
        replies_before = len(c.of_type("response.created"))
        assert replies_before == 1  # no reply to a function output without response.create
        await c.send("response.create")
        await c.wait("response.created")
        said = await c.wait("response.output_audio_transcript.done")
        assert "42" in said["transcript"]
        assert sim.session().tool_results[0]["result"] == '"42"'
        await c.close()


async def test_openai_bad_input_is_answered_not_fatal() -> None:
    async with Simulator(protocol="openai", api_key="right-key-123") as sim:
        bad = await RawClient.connect(sim.url, additional_headers={"Authorization": "Bearer x"})
        err = await bad.wait("error")
        assert err["error"]["code"] == "invalid_api_key"
        assert await bad.wait_closed() == 1008
        c = await RawClient.connect(
            sim.url, additional_headers={"Authorization": "Bearer right-key-123"}
        )
        await oa_start(c)
        await c.send_raw("{not json")
        await c.wait("error")
        await c.send("input_audio_buffer.append", audio="***not base64***")
        await c.wait("error")
        await c.send("no.such.event")
        await c.wait("error")
        await oa_append(c, voiced(100))
        assert not c.closed.is_set()
        await c.close()


# -- Gemini Live ----------------------------------------------------------------------------


async def gm_connect(sim: Simulator, **setup: Any) -> RawClient:
    c = await RawClient.connect(sim.url)
    await c.ws.send(
        json.dumps(
            {
                "setup": {
                    "model": "models/x",
                    "generationConfig": {"responseModalities": ["AUDIO"]},
                    "systemInstruction": {"parts": [{"text": "be brief"}]},
                    "realtimeInputConfig": {
                        "automaticActivityDetection": {"silenceDurationMs": 500}
                    },
                    "inputAudioTranscription": {},
                    "outputAudioTranscription": {},
                    "sessionResumption": {},
                    **setup,
                }
            }
        )
    )
    return c


def has(key: str, sub: str | None = None) -> Any:
    def match(e: dict[str, Any]) -> bool:
        return key in e and (sub is None or sub in (e[key] or {}))

    return match


async def gm_append(c: RawClient, samples24: np.ndarray, chunk_ms: int = 50) -> None:
    pcm = to16k(samples24)
    step = chunk_ms * 16
    for i in range(0, len(pcm), step):
        blob = {"mimeType": "audio/pcm;rate=16000", "data": pcm_b64(pcm[i : i + step])}
        await c.ws.send(json.dumps({"realtimeInput": {"audio": blob}}))


async def test_gemini_setup_turn_and_transcriptions() -> None:
    async with Simulator(protocol="gemini", speed=4) as sim:
        c = await gm_connect(sim)
        await c.wait(has("setupComplete"))
        handle = (await c.wait(has("sessionResumptionUpdate")))["sessionResumptionUpdate"]
        assert handle["resumable"] and handle["newHandle"]
        await gm_append(c, utterance(600, tail_ms=1200))
        await c.wait(has("serverContent", "inputTranscription"))
        audio = await c.wait(has("serverContent", "modelTurn"))
        blob = audio["serverContent"]["modelTurn"]["parts"][0]["inlineData"]
        assert blob["mimeType"] == "audio/pcm;rate=24000"
        await c.wait(has("serverContent", "turnComplete"))
        # no speech events and no reply ids on this wire
        assert not any("type" in e for e in c.events)
        assert sim.session().received_samples > 0
        await c.close()


async def test_gemini_setup_must_come_first_and_once() -> None:
    async with Simulator(protocol="gemini") as sim:
        c = await RawClient.connect(sim.url)
        blob = {"mimeType": "audio/pcm;rate=16000", "data": pcm_b64(silence(20, 16000))}
        await c.ws.send(json.dumps({"realtimeInput": {"audio": blob}}))
        assert await c.wait_closed() == 1007
        c2 = await gm_connect(sim)
        await c2.wait(has("setupComplete"))
        await c2.ws.send(json.dumps({"setup": {"model": "models/x"}}))
        assert await c2.wait_closed() == 1007


async def test_gemini_tool_call_and_cancellation() -> None:
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 5, "delay_ms": 0},
            "turns": [
                {"user": "look it up", "tool": {"name": "lookup", "arguments": {"q": "x"}}},
            ],
        }
    )
    tools = [{"functionDeclarations": [{k: v for k, v in TOOLS[0].items() if k != "type"}]}]
    async with Simulator(scenario, protocol="gemini", speed=4) as sim:
        c = await gm_connect(sim, tools=tools)
        await c.wait(has("setupComplete"))
        await gm_append(c, utterance(600, tail_ms=1200))
        call = (await c.wait(has("toolCall")))["toolCall"]["functionCalls"][0]
        assert call["name"] == "lookup" and call["args"] == {"q": "x"}
        response = {"id": call["id"], "name": "lookup", "response": {"answer": 42}}
        await c.ws.send(json.dumps({"toolResponse": {"functionResponses": [response]}}))
        await c.wait(has("serverContent", "turnComplete"))
        said = ""
        while "42" not in said:
            ev = await c.wait(has("serverContent", "outputTranscription"), timeout=10)
            said += ev["serverContent"]["outputTranscription"]["text"]
        assert json.loads(sim.session().tool_results[0]["result"]) == {"answer": 42}
        await c.close()


async def test_gemini_resumption_handle_and_refusal() -> None:
    async with Simulator(protocol="gemini", speed=4) as sim:
        c = await gm_connect(sim)
        await c.wait(has("setupComplete"))
        handle = (await c.wait(has("sessionResumptionUpdate")))["sessionResumptionUpdate"]
        await c.close()
        again = await gm_connect(sim, sessionResumption={"handle": handle["newHandle"]})
        await again.wait(has("setupComplete"))
        assert len(sim.sessions) == 1 and sim.session().connections == 2
        await again.close()
        bad = await gm_connect(sim, sessionResumption={"handle": "h1.nosuch.1"})
        assert await bad.wait_closed() == 1008


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
async def test_wire_refuses_a_bad_key(protocol: str) -> None:
    async with Simulator(protocol=protocol, api_key="right-key-123") as sim:
        url = sim.url + ("/?key=wrong" if protocol == "gemini" else "")
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                while True:
                    await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        if protocol == "gemini":
            assert "API key not valid" in info.value.rcvd.reason


@pytest.mark.parametrize("protocol", ["openai", "gemini"])
async def test_agent_sim_command_speaks_the_protocol(protocol: str) -> None:
    import asyncio
    import os
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botrun.bots.cli",
        "agent-sim",
        "--port",
        "0",
        "--protocol",
        protocol,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert url.startswith("ws://"), url
        async with websockets.connect(url) as ws:
            if protocol == "gemini":
                await ws.send(json.dumps({"setup": {"model": "models/x"}}))
                assert "setupComplete" in json.loads(await ws.recv())
            else:
                assert json.loads(await ws.recv())["type"] == "session.created"
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and f"speaking {protocol}" in err.decode()


def test_agent_sim_refuses_an_unknown_protocol() -> None:
    from helpers_cli import run_botrun

    res = run_botrun("agent-sim", "--protocol", "gpt")
    assert res.returncode == 2 and "gpt" in res.stderr and "Traceback" not in res.stderr
