"""The sans-I/O protocol module: encode/decode of every event, and decode never raising."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botrun.core import protocol as p
from botrun.core.config import AgentConfig
from botrun.core.tools import make_spec

PCM = b"\x01\x00\xff\x7f\x00\x80"


def test_module_has_no_io_imports() -> None:
    tree = ast.parse(Path(p.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    assert not names & {"asyncio", "websockets", "socket", "aiohttp", "threading"}


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        (
            p.SessionUpdate({"system_prompt": "hi"}),
            {"type": "session.update", "session": {"system_prompt": "hi"}},
        ),
        (p.InputAudio(PCM), {"type": "input.audio", "audio": base64.b64encode(PCM).decode()}),
        (
            p.ToolResult("c1", '{"ok":true}'),
            {"type": "tool.result", "call_id": "c1", "result": '{"ok":true}'},
        ),
        (p.SessionResume("s1"), {"type": "session.resume", "session_id": "s1"}),
        (p.ReplyCreate(), {"type": "reply.create"}),
        (p.ReplyCreate("be brief"), {"type": "reply.create", "instructions": "be brief"}),
        (p.SessionEnd(), {"type": "session.end"}),
    ],
)
def test_encode_client_events(event: p.ClientEvent, wire: dict) -> None:
    text = p.encode(event)
    assert json.loads(text) == wire
    assert p.decode_client(text) == event


@pytest.mark.parametrize("pcm", [b"", PCM, bytes(range(256)) * 4, b"\xff\xfe" * 480])
def test_encode_input_audio_is_the_same_text_as_the_general_encoder(pcm: bytes) -> None:
    data = p.encode_input_audio(pcm)
    general = json.dumps(
        {"type": "input.audio", "audio": base64.b64encode(pcm).decode()}, separators=(",", ":")
    )
    assert data == general.encode()
    assert p.decode_client(data.decode()) == p.InputAudio(pcm)


def test_encode_rejects_non_events() -> None:
    with pytest.raises(TypeError):
        p.encode(p.SessionReady("x"))  # type: ignore[arg-type]


SERVER_CASES = [
    ({"type": "session.ready", "session_id": "s1"}, p.SessionReady("s1")),
    ({"type": "session.updated", "config": {"a": 1}}, p.SessionUpdated({"a": 1})),
    ({"type": "input.speech.started", "timestamp": 12.5}, p.SpeechStarted(12.5)),
    (
        {"type": "input.speech.stopped", "timestamp": "2026-01-01T00:00:00Z"},
        p.SpeechStopped("2026-01-01T00:00:00Z"),
    ),
    (
        {"type": "transcript.user.delta", "text": "hel", "item_id": "i1"},
        p.TranscriptUserDelta("hel", "i1"),
    ),
    (
        {"type": "transcript.user", "text": "hello", "item_id": "i1"},
        p.TranscriptUser("hello", "i1"),
    ),
    ({"type": "reply.started", "reply_id": "r1"}, p.ReplyStarted("r1")),
    ({"type": "reply.audio", "data": base64.b64encode(PCM).decode()}, p.ReplyAudio(PCM)),
    (
        {
            "type": "transcript.agent.delta",
            "reply_id": "r1",
            "delta": "Hi",
            "start_ms": 0,
            "end_ms": 120,
        },
        p.TranscriptAgentDelta("r1", "Hi", 0.0, 120.0),
    ),
    (
        {"type": "transcript.agent", "reply_id": "r1", "text": "Hi", "interrupted": True},
        p.TranscriptAgent("r1", "Hi", True),
    ),
    (
        {"type": "reply.done", "reply_id": "r1", "status": "interrupted"},
        p.ReplyDone("r1", "interrupted"),
    ),
    ({"type": "reply.done", "reply_id": "r1"}, p.ReplyDone("r1", "completed")),
    (
        {"type": "tool.call", "call_id": "c1", "name": "f", "arguments": {"x": 1}},
        p.ToolCall("c1", "f", {"x": 1}),
    ),
    (
        {"type": "tool.call", "call_id": "c1", "name": "f", "arguments": '{"x": 1}'},
        p.ToolCall("c1", "f", {"x": 1}),
    ),
    (
        {
            "type": "session.error",
            "code": "invalid_value",
            "message": "bad",
            "param": "volume",
            "timestamp": 1,
        },
        p.SessionError("invalid_value", "bad", "volume"),
    ),
    (
        {"type": "session.ended", "session_duration_seconds": 3, "audio_duration_seconds": 1.5},
        p.SessionEnded(3.0, 1.5),
    ),
]


@pytest.mark.parametrize(("wire", "event"), SERVER_CASES)
def test_decode_server_events(wire: dict, event: object) -> None:
    assert p.decode(json.dumps(wire)) == event
    assert isinstance(p.decode(json.dumps(wire).encode()), p.ProtocolError)  # binary frame


@pytest.mark.parametrize(("wire", "event"), SERVER_CASES)
def test_server_events_round_trip(wire: dict, event: p.ServerEvent) -> None:
    assert p.decode(p.encode_server(event)) == event


def test_reply_done_interrupted_property() -> None:
    assert p.ReplyDone("r", "interrupted").interrupted
    assert not p.ReplyDone("r").interrupted


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('"text"', "expected a JSON object"),
        ('{"no_type": 1}', "missing or non-string 'type'"),
        ('{"type": 7}', "missing or non-string 'type'"),
        ('{"type": "session.ready"}', "session.ready: missing string field 'session_id'"),
        ('{"type": "session.ready", "session_id": 5}', "must be a string"),
        ('{"type": "reply.audio", "data": "!!notbase64"}', "not valid base64"),
        ('{"type": "reply.audio", "data": 12}', "must be a base64 string"),
        ('{"type": "reply.audio", "data": "AAAA"}', "odd number of bytes (3)"),
        ('{"type": "reply.done", "reply_id": "r", "status": 1}', "must be a string"),
        # (a call with bad arguments but a call_id is answered: tests/test_hardening_tools.py)
        ('{"type": "tool.call", "name": "f", "arguments": [1]}', "missing string field 'call_id'"),
        (
            '{"type": "transcript.agent", "reply_id": "r", "text": "", "interrupted": "yes"}',
            "must be a boolean",
        ),
        (
            '{"type": "transcript.agent.delta", "reply_id": "r", "delta": "", "start_ms": true}',
            "must be a number",
        ),
        ('{"type": "session.error", "message": "x"}', "missing string field 'code'"),
    ],
)
def test_decode_bad_input_is_a_protocol_error(raw: str, reason: str) -> None:
    ev = p.decode(raw)
    assert isinstance(ev, p.ProtocolError)
    assert reason in ev.reason
    assert ev.raw.startswith(raw[:20])


def test_binary_frame_is_a_protocol_error() -> None:
    ev = p.decode(b"\x00\x01\x02")
    assert isinstance(ev, p.ProtocolError)
    assert "binary frame of 3 bytes" in ev.reason


def test_raw_is_truncated() -> None:
    ev = p.decode("x" * 10_000)
    assert isinstance(ev, p.ProtocolError)
    assert len(ev.raw) < p.RAW_KEEP + 20


def test_unknown_event_is_kept_for_forward_compatibility() -> None:
    ev = p.decode('{"type": "reply.thinking", "x": 1}')
    assert ev == p.UnknownEvent("reply.thinking", {"type": "reply.thinking", "x": 1})


def test_odd_length_audio_allowed_for_g711() -> None:
    data = base64.b64encode(b"\x01\x02\x03").decode()
    assert p.decode(json.dumps({"type": "reply.audio", "data": data}), pcm16=False) == (
        p.ReplyAudio(b"\x01\x02\x03")
    )


def test_decode_client_rejects_object_tool_result() -> None:
    ev = p.decode_client('{"type": "tool.result", "call_id": "c", "result": {"a": 1}}')
    assert isinstance(ev, p.ProtocolError)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=64),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text(max_size=10),
            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
            max_leaves=12,
        ).map(json.dumps),
        st.fixed_dictionaries(
            {"type": st.sampled_from(sorted(p._SERVER))},
            optional={
                k: st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=8),
                    st.booleans(),
                    st.lists(st.integers(), max_size=2),
                )
                for k in (
                    "session_id",
                    "reply_id",
                    "data",
                    "status",
                    "call_id",
                    "name",
                    "arguments",
                    "code",
                    "text",
                    "interrupted",
                    "start_ms",
                    "config",
                )
            },
        ).map(json.dumps),
    )
)
def test_decode_never_raises(raw: str | bytes) -> None:
    ev = p.decode(raw)
    assert isinstance(ev, p.ProtocolError | p.UnknownEvent) or type(ev).__module__ == p.__name__


def _cfg(**kw: object) -> AgentConfig:
    return AgentConfig.model_validate(kw)


def test_session_payload_from_config() -> None:
    def lookup(order_id: str) -> dict:
        """Find an order.

        Args:
            order_id: The order number.
        """
        return {}

    cfg = _cfg(
        system_prompt="Be nice.",
        greeting="Hello!",
        voice="james",
        volume=70,
        input={"keyterms": ["botrun"], "turn_detection": {"min_silence": 800}},
    )
    spec = make_spec(lookup, execution_mode="hold")
    s = p.session_payload(cfg, [spec])
    assert s == {
        "system_prompt": "Be nice.",
        "greeting": "Hello!",
        "input": {
            "format": {"encoding": "audio/pcm", "sample_rate": 24000},
            "turn_detection": {
                "vad_threshold": 0.5,
                "min_silence": 800,
                "max_silence": 3000,
                "interrupt_response": True,
            },
            "keyterms": ["botrun"],
        },
        "output": {
            "voice": "james",
            "format": {"encoding": "audio/pcm", "sample_rate": 24000},
            "volume": 70,
        },
        "tools": [
            {
                "type": "function",
                "name": "lookup",
                "description": "Find an order.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "order_id": {"type": "string", "description": "The order number."}
                    },
                    "required": ["order_id"],
                },
                "execution_mode": "hold",
            }
        ],
    }


def test_session_payload_leaves_out_empty_values() -> None:
    s = p.session_payload(_cfg(greeting=""))
    assert "greeting" not in s and "tools" not in s
    assert "keyterms" not in s["input"] and "volume" not in s["output"]


def test_merge_session_replaces_lists_and_merges_objects() -> None:
    base = {"input": {"keyterms": ["a"], "turn_detection": {"min_silence": 1}}, "tools": [1]}
    out = p.merge_session(base, {"input": {"turn_detection": {"max_silence": 2}}, "tools": []})
    assert out == {
        "input": {"keyterms": ["a"], "turn_detection": {"min_silence": 1, "max_silence": 2}},
        "tools": [],
    }
    assert base["tools"] == [1]
