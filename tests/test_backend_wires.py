"""The OpenAI Realtime and Gemini Live wires, sans-I/O (issue 18): lists of messages in,
lists of botrun protocol events out -- the rules the clients rely on, without sockets."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from botrun.core import protocol as p
from botrun.core.backends.gemini.protocol import GeminiWire, GoAway, ToolCancelled
from botrun.core.backends.openai.protocol import OpenAIWire, session_object

PCM = bytes(480)  # 10 ms at 24 kHz


def oa(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


def audio(rid: str, item: str, ms: int = 10) -> str:
    data = base64.b64encode(bytes(48 * ms)).decode()
    return oa("response.output_audio.delta", response_id=rid, item_id=item, delta=data)


def ready_openai() -> OpenAIWire:
    w = OpenAIWire()
    w.connection_opened()
    assert w.decode(oa("session.created", session={"id": "sess_1"})) == []
    assert w.decode(oa("session.updated", session={})) == [p.SessionReady("sess_1")]
    return w


def reply(w: OpenAIWire, rid: str = "r1", item: str = "i1", ms: int = 1000) -> None:
    w.decode(oa("response.created", response={"id": rid}))
    w.decode(
        oa("response.output_item.added", response_id=rid, item={"id": item, "type": "message"})
    )
    for _ in range(ms // 10):
        w.decode(audio(rid, item))


def test_openai_events_map_to_botrun_events() -> None:
    w = ready_openai()
    assert w.decode(oa("input_audio_buffer.speech_started", audio_start_ms=5)) == [
        p.SpeechStarted(5)
    ]
    assert w.decode(
        oa("conversation.item.input_audio_transcription.delta", item_id="u", delta="hel")
    ) == [p.TranscriptUserDelta("hel", "u")]
    assert w.decode(
        oa("conversation.item.input_audio_transcription.delta", item_id="u", delta="lo")
    ) == [p.TranscriptUserDelta("hello", "u")]
    assert w.decode(oa("response.created", response={"id": "r"})) == [p.ReplyStarted("r")]
    (a,) = w.decode(audio("r", "i"))
    assert a == p.ReplyAudio(bytes(480), "r")
    w.decode(oa("response.output_audio_transcript.delta", response_id="r", delta="Hi"))
    out = w.decode(oa("response.done", response={"id": "r", "status": "completed"}))
    assert out == [p.TranscriptAgent("r", "Hi"), p.ReplyDone("r", "completed")]
    cut = w.decode(oa("response.done", response={"id": "x", "status": "cancelled"}))
    assert cut == [p.ReplyDone("x", "interrupted")]


def test_openai_newer_events_are_unknown_not_errors() -> None:
    w = ready_openai()
    (ev,) = w.decode(oa("response.some_future_event", foo=1))
    assert isinstance(ev, p.UnknownEvent) and ev.type == "response.some_future_event"
    assert w.decode(oa("rate_limits.updated", rate_limits=[])) == []
    for bad in ("{", "[]", '{"type": 3}', b"\x00"):
        (ev,) = w.decode(bad)
        assert isinstance(ev, p.ProtocolError)
    (ev,) = w.decode(oa("response.output_audio.delta", response_id="r", delta="***"))
    assert isinstance(ev, p.ProtocolError)


def test_openai_errors_map_to_the_codes_the_session_classifies() -> None:
    w = OpenAIWire()
    w.connection_opened()

    def code(err: dict[str, Any]) -> str:
        (ev,) = w.decode(oa("error", error=err))
        assert isinstance(ev, p.SessionError)
        return ev.code

    assert code({"type": "invalid_request_error", "code": "invalid_api_key"}) == "UNAUTHORIZED"
    assert code({"type": "invalid_request_error", "code": "bad_voice"}) == "invalid_config"
    assert code({"type": "server_error"}) == "server_error"
    w.ready = True
    assert code({"type": "invalid_request_error", "code": "bad_voice"}) == "bad_voice"
    assert code({"type": "invalid_request_error", "code": "session_expired"}) == "session_expired"


def test_openai_barge_in_cancels_and_truncates_to_what_was_heard() -> None:
    w = ready_openai()
    reply(w, ms=1000)
    frames = [json.loads(f) for f in w.barge_in(lambda rid: 400.0 if rid == "r1" else 0.0)]
    assert frames == [
        {"type": "response.cancel", "response_id": "r1"},
        {
            "type": "conversation.item.truncate",
            "item_id": "i1",
            "content_index": 0,
            "audio_end_ms": 400,
        },
    ]
    assert w.barge_in(lambda rid: 400.0) == [json.dumps(frames[0], separators=(",", ":"))]
    # a finished response, heard in full: nothing to cut, nothing to cancel
    w.decode(oa("response.done", response={"id": "r1", "status": "cancelled"}))
    reply(w, "r2", "i2", ms=500)
    w.decode(oa("response.done", response={"id": "r2", "status": "completed"}))
    assert w.barge_in(lambda rid: 500.0) == []
    # nothing of it heard: the item is deleted (audio_end_ms 0 is refused by some versions)
    reply(w, "r3", "i3", ms=300)
    w.decode(oa("response.done", response={"id": "r3", "status": "completed"}))
    assert json.loads(w.barge_in(lambda rid: 0.0)[0]) == {
        "type": "conversation.item.delete",
        "item_id": "i3",
    }


@given(received=st.integers(0, 5000), heard=st.floats(0, 1e6, allow_nan=False))
def test_openai_audio_end_ms_never_exceeds_what_was_received(received: int, heard: float) -> None:
    w = ready_openai()
    reply(w, ms=received - received % 10)
    for frame in w.barge_in(lambda rid: heard):
        msg = json.loads(frame)
        if msg["type"] == "conversation.item.truncate":
            assert 0 < msg["audio_end_ms"] <= min(heard, received)


def test_openai_tool_results_continue_once_after_the_last_call() -> None:
    w = ready_openai()
    w.decode(oa("response.created", response={"id": "r"}))
    for cid in ("c1", "c2"):
        w.decode(
            oa(
                "response.function_call_arguments.done",
                response_id="r",
                call_id=cid,
                name="f",
                arguments='{"a": 1}',
            )
        )
    first = [json.loads(f)["type"] for f in w.encode(p.ToolResult("c1", '"x"'))]
    last = [json.loads(f)["type"] for f in w.encode(p.ToolResult("c2", '"y"'))]
    assert first == ["conversation.item.create"]
    # the continuation waits for the calling response to end (one response at a time)
    assert last == ["conversation.item.create"] and w.release() == []
    w.decode(oa("response.done", response={"id": "r", "status": "completed"}))
    assert [json.loads(f)["type"] for f in w.release()] == ["response.create"]
    (bad,) = w.decode(
        oa("response.function_call_arguments.done", call_id="c3", name="f", arguments="{")
    )
    assert isinstance(bad, p.ToolCall) and bad.bad_arguments


def test_openai_new_session_is_reseeded_and_greets_once() -> None:
    w = ready_openai()
    w.decode(
        oa(
            "conversation.item.input_audio_transcription.completed",
            item_id="u",
            transcript="where is my order",
        )
    )
    w.decode(oa("response.created", response={"id": "r"}))
    w.decode(oa("response.output_audio_transcript.done", response_id="r", transcript="On its way"))
    w.decode(oa("response.done", response={"id": "r", "status": "completed"}))
    w.connection_opened()
    frames = [json.loads(f) for f in w.first_frames({"system_prompt": "s", "greeting": "Hi"})]
    assert frames[0]["type"] == "session.update"
    assert frames[0]["session"]["instructions"] == "s"
    items = [f["item"] for f in frames[1:]]
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "where is my order"),
        ("assistant", "On its way"),
    ]
    (greet,) = w.take_greeting()
    assert '"Hi"' in json.loads(greet)["response"]["instructions"]
    assert w.take_greeting() == []


def test_openai_turn_detection_server_or_semantic() -> None:
    from botrun.core.config import config_from_dict
    from botrun.core.protocol import session_payload

    cfg = config_from_dict({"agent": {"backend": "openai"}})
    td = session_object(session_payload(cfg.agent))["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and td["silence_duration_ms"] == 1000
    cfg = config_from_dict(
        {"agent": {"backend": "openai", "input": {"turn_detection": {"semantic_vad": True}}}}
    )
    td = session_object(session_payload(cfg.agent))["audio"]["input"]["turn_detection"]
    assert td["type"] == "semantic_vad" and td["interrupt_response"] is True


def test_openai_session_object_keeps_pcmu_for_phone_calls() -> None:
    s = session_object({"input": {"format": {"encoding": "audio/pcmu", "sample_rate": 8000}}})
    assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session_object({})["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}


def ready_openai_pcmu() -> OpenAIWire:
    """A wire whose session asked for G.711 μ-law both ways (a phone call passed through)."""
    w = OpenAIWire()
    w.connection_opened()
    fmt = dict(p.PCMU_FORMAT)
    (update,) = w.first_frames({"input": {"format": fmt}, "output": {"format": fmt}})
    audio_cfg = json.loads(update)["session"]["audio"]
    assert audio_cfg["input"]["format"] == audio_cfg["output"]["format"] == {"type": "audio/pcmu"}
    w.decode(oa("session.created", session={"id": "sess_1"}))
    w.decode(oa("session.updated", session={}))
    return w


def test_openai_pcmu_replies_are_8_bytes_a_ms_and_any_length() -> None:
    """μ-law at 8 kHz: one byte a sample, so an odd length is no error, and what was
    received of an item (the cap of ``audio_end_ms``) is its bytes / 8, not / 48."""
    w = ready_openai_pcmu()
    w.decode(oa("response.created", response={"id": "r1"}))
    w.decode(
        oa("response.output_item.added", response_id="r1", item={"id": "i1", "type": "message"})
    )
    for n in (4001, 3999):  # 1000 ms in all
        data = base64.b64encode(b"\xff" * n).decode()
        (ev,) = w.decode(
            oa("response.output_audio.delta", response_id="r1", item_id="i1", delta=data)
        )
        assert ev == p.ReplyAudio(b"\xff" * n, "r1")
    frames = [json.loads(f) for f in w.barge_in(lambda rid: 700.0)]
    assert frames[1] == {
        "type": "conversation.item.truncate",
        "item_id": "i1",
        "content_index": 0,
        "audio_end_ms": 700,
    }
    assert w.truncations == [("i1", 700, 1000)]
    # heard more than arrived (never happens, but never sent): capped at the 1000 ms received
    w.decode(oa("response.done", response={"id": "r1", "status": "cancelled"}))
    w.decode(oa("response.created", response={"id": "r2"}))
    data = base64.b64encode(b"\x7f" * 2400).decode()
    w.decode(oa("response.output_audio.delta", response_id="r2", item_id="i2", delta=data))
    (_, trunc) = (json.loads(f) for f in w.barge_in(lambda rid: 5000.0))
    assert trunc["item_id"] == "i2" and trunc["audio_end_ms"] == 300


def test_openai_pcm16_replies_of_odd_length_are_protocol_errors() -> None:
    w = ready_openai()
    w.decode(oa("response.created", response={"id": "r1"}))
    data = base64.b64encode(bytes(481)).decode()
    (ev,) = w.decode(oa("response.output_audio.delta", response_id="r1", item_id="i1", delta=data))
    assert isinstance(ev, p.ProtocolError) and "odd PCM16 length 481" in ev.reason


def test_openai_backend_asks_for_pcmu_when_the_bridge_passes_mulaw_through() -> None:
    """The backend declares phone_audio, and its session takes the bridge's audio format:
    ``audio/pcmu`` in the neutral config (so the client buffers and replays G.711 at 8000
    bytes a second) and in the service's ``session.update``; PCM16 24 kHz without it."""
    from botrun.core.backends.base import BackendContext
    from botrun.core.backends.openai.client import OpenAIClient
    from botrun.core.config import load_config
    from botrun.core.plugins import get_backend

    assert get_backend("openai").phone_audio and not get_backend("gemini").phone_audio
    cfg = load_config("default")
    cfg.agent.backend = "openai"
    phone = OpenAIClient.from_context(BackendContext(cfg, None, audio_format=p.PCMU_FORMAT))
    plain = OpenAIClient.from_context(BackendContext(cfg, None))
    for client, fmt in (
        (phone, {"type": "audio/pcmu"}),
        (plain, {"type": "audio/pcm", "rate": 24000}),
    ):
        update = json.loads(client.wire.first_frames(client._state.config)[0])
        audio_cfg = update["session"]["audio"]
        assert audio_cfg["input"]["format"] == audio_cfg["output"]["format"] == fmt
    assert phone._state.config["input"]["format"] == p.PCMU_FORMAT
    assert phone.buffered_ms == 0 and phone._ms(8000) == 1000.0
    assert plain._ms(48000) == 1000.0


# -- Gemini ---------------------------------------------------------------------------------


def gm(**fields: Any) -> str:
    return json.dumps(fields)


def model_audio() -> str:
    blob = {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(PCM).decode()}
    return gm(serverContent={"modelTurn": {"parts": [{"inlineData": blob}]}})


def ready_gemini() -> GeminiWire:
    w = GeminiWire("models/x")
    w.connection_opened()
    w.first_frames({"system_prompt": "s"}, resume=False)
    assert w.decode(gm(setupComplete={})) == [p.SessionReady("gemini-1")]
    return w


def test_gemini_turns_become_speech_and_reply_events() -> None:
    w = ready_gemini()
    first = w.decode(gm(serverContent={"inputTranscription": {"text": "where is"}}))
    assert first == [p.SpeechStarted(), p.TranscriptUserDelta("where is")]
    w.decode(gm(serverContent={"inputTranscription": {"text": " it"}}))
    out = w.decode(model_audio())
    assert out == [
        p.SpeechStopped(),
        p.TranscriptUser("where is it"),
        p.ReplyStarted("gemini-1-r1"),
        p.ReplyAudio(PCM, "gemini-1-r1"),
    ]
    w.decode(gm(serverContent={"outputTranscription": {"text": "Here."}}))
    done = w.decode(gm(serverContent={"turnComplete": True}))
    assert done == [p.TranscriptAgent("gemini-1-r1", "Here."), p.ReplyDone("gemini-1-r1")]


def test_gemini_interrupted_makes_the_rest_stale_until_new_input() -> None:
    w = ready_gemini()
    w.decode(model_audio())
    cut = w.decode(gm(serverContent={"interrupted": True}))
    assert cut == [p.SpeechStarted(), p.ReplyDone("gemini-1-r1", "interrupted")]
    # audio still in flight for the cut reply keeps its id: the session drops it as stale
    assert w.decode(model_audio()) == [p.ReplyAudio(PCM, "gemini-1-r1")]
    w.decode(gm(serverContent={"inputTranscription": {"text": "stop"}}))
    assert p.ReplyStarted("gemini-1-r2") in w.decode(model_audio())


def test_gemini_tool_calls_end_the_reply_and_can_be_cancelled() -> None:
    w = ready_gemini()
    w.decode(model_audio())
    out = w.decode(gm(toolCall={"functionCalls": [{"id": "c1", "name": "f", "args": {"a": 1}}]}))
    assert out == [p.ReplyDone("gemini-1-r1"), p.ToolCall("c1", "f", {"a": 1})]
    assert w.decode(gm(toolCallCancellation={"ids": ["c1"]})) == [ToolCancelled(("c1",))]
    (resp,) = w.encode(p.ToolResult("c1", '{"ok": true}'))
    assert json.loads(resp) == {
        "toolResponse": {"functionResponses": [{"id": "c1", "response": {"ok": True}}]}
    }


def test_gemini_resumption_go_away_and_unknown_messages() -> None:
    w = ready_gemini()
    assert w.decode(gm(sessionResumptionUpdate={"newHandle": "h-1", "resumable": True})) == []
    assert w.decode(gm(goAway={"timeLeft": "10s"})) == [GoAway("10s")]
    w.connection_opened()
    (setup,) = w.first_frames({"system_prompt": "s"}, resume=True)
    assert json.loads(setup)["setup"]["sessionResumption"] == {"handle": "h-1"}
    assert w.decode(gm(setupComplete={})) == [p.SessionReady("gemini-1")]  # the same session
    w.connection_opened()
    w.first_frames({}, resume=False)
    assert w.decode(gm(setupComplete={})) == [p.SessionReady("gemini-2")]  # a new one
    (ev,) = w.decode(gm(someFutureMessage={}))
    assert isinstance(ev, p.UnknownEvent)
    assert w.decode(gm(usageMetadata={"totalTokenCount": 3})) == []
    assert w.decode(gm(setupComplete={}).encode()) == [p.SessionReady("gemini-2")]
    (bad,) = w.decode(b"\xff\xfe")
    assert isinstance(bad, p.ProtocolError)


def test_openai_a_response_in_progress_is_cut_even_when_heard_up_to_what_arrived() -> None:
    # A real-time sender: the caller has heard almost all that arrived, but the service has
    # generated more of the item than that, so the item must still be cut (it once was not:
    # "all heard so far" skipped the truncation and the model remembered unheard words).
    w = ready_openai()
    reply(w, ms=1500)
    frames = [json.loads(f) for f in w.barge_in(lambda rid: 1490.0)]
    assert [f["type"] for f in frames] == ["response.cancel", "conversation.item.truncate"]
    assert frames[1]["audio_end_ms"] == 1490


def test_openai_one_response_at_a_time_later_ones_wait_in_order() -> None:
    """A say() while the agent answers (or while a tool runs inside its response) used to
    send response.create at once: the service refused it with
    conversation_already_has_active_response and the line was never spoken (second new-user
    probe #1). Response requests now wait their turn, in order, one per response.done."""
    w = ready_openai()
    reply(w, "r1", "i1", ms=100)
    assert w.encode(p.ReplyCreate("say: Let me get you a colleague.")) == []
    assert w.encode(p.ReplyCreate("say: One moment.")) == []
    assert w.release() == []  # r1 still in progress
    w.decode(oa("response.done", response={"id": "r1", "status": "completed"}))
    (first,) = w.release()
    assert "colleague" in json.loads(first)["response"]["instructions"]
    assert w.release() == []  # asked for, not yet created: the next one still waits
    w.decode(oa("response.created", response={"id": "r2"}))
    assert w.release() == []
    w.decode(oa("response.done", response={"id": "r2", "status": "completed"}))
    (second,) = w.release()
    assert "One moment" in json.loads(second)["response"]["instructions"]
    # a refused request does not block the ones after it
    assert w.encode(p.ReplyCreate("say: Third.")) == []
    w.decode(oa("error", error={"type": "invalid_request_error", "code": "x", "message": "no"}))
    assert len(w.release()) == 1
    # nothing in progress: a request goes at once
    w.decode(oa("response.done", response={"id": "r3", "status": "completed"}))
    assert len(w.encode(p.ReplyCreate("say: Now."))) == 1
