"""Each backend end to end (issue 18): WAV participants -> the real bridge -> botrun's client
for that service -> the simulator speaking that service's protocol -> back to the WAV sink.

Checked for every protocol: inbound audio arrives intact, replies play, tool calls round
trip, barge-in flushes (and, on OpenAI, truncates to what the caller heard: audio_end_ms is
never more than the audio the sink got), a dropped connection recovers (Gemini resumes;
OpenAI starts a new session re-seeded with the conversation), malformed frames are
survived, and a refused key names the backend's variable."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.signal import resample_poly
from speech import assert_found_in_order, speak
from test_bridge_e2e import RATE, Recorder, RecordingWav

from botrun.core import events as ev
from botrun.core.bridge import CallSummary, run_call
from botrun.core.config import BotConfig, apply_overrides, config_from_dict
from botrun.core.errors import AgentError
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import Scenario, scenario_from_dict
from botrun.transports.wav.transport import WavInput

PROTOCOLS = ["openai", "gemini"]
IN_RATE = {"assemblyai": 24000, "openai": 24000, "gemini": 16000}


def config(backend: str, **overrides: Any) -> BotConfig:
    base = config_from_dict({"agent": {"backend": backend, "greeting": ""}})
    return apply_overrides(base, overrides)


async def call_on(
    backend: str,
    tmp_path: Path,
    inputs: list[tuple[Path, float, str]],
    cfg: BotConfig | None = None,
    scenario: Scenario | None = None,
    *,
    tools: Any = None,
    transcript: Path | None = None,
    sim_kw: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> tuple[CallSummary, Simulator, Recorder, RecordingWav]:
    from botrun.transports.wav.wavio import read_wav_mono16

    wav_inputs = [WavInput(p, read_wav_mono16(p, RATE), at, name) for p, at, name in inputs]
    transport = RecordingWav(wav_inputs, tmp_path / "bot.wav", RATE, 1.0)
    rec = Recorder()
    async with Simulator(scenario, protocol=backend, **(sim_kw or {})) as sim:
        cfg = apply_overrides(
            cfg or config(backend),
            {"agent.url": sim.url, "bridge.idle_timeout_s": 0.0, "bridge.leave_grace_s": 1.0},
        )
        summary = await run_call(
            transport, cfg, api_key=api_key, transcript=transcript, tools=tools, observers=[rec]
        )
    return summary, sim, rec, transport


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray]]:
    d = tmp_path_factory.mktemp("speech")
    texts = {
        "fox": "The quick brown fox jumps over the lazy dog.",
        "weather": "What will the weather be like tomorrow?",
        "long": "I would like to talk about my order, it has not arrived yet and I am worried.",
        "stop": "Stop, wait a moment please.",
    }
    return {k: (d / f"{k}.wav", speak(t, d / f"{k}.wav")) for k, t in texts.items()}


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_echo_round_trip(backend: str, tmp_path: Path, voices: dict) -> None:
    path, speech = voices["fox"]
    transcript = tmp_path / "t.jsonl"
    summary, sim, rec, transport = await call_on(
        backend,
        tmp_path,
        [(path, 0.0, "Ann")],
        config(backend, **{"bridge.prebuffer_ms": 300}),
        transcript=transcript,
    )
    assert summary.error is None, summary.error
    session = sim.session()
    # inbound: what Ann said reached the agent intact (at 24 kHz as the simulator hears it)
    received = np.frombuffer(session.received_audio, dtype="<i2")
    up = {24000: (3, 2), 16000: (1, 1)}[IN_RATE[backend]]
    ref = resample_poly(speech.astype(np.float64), *up)
    if backend == "gemini":  # the adapter takes Gemini's 16 kHz up to the simulator's 24 kHz
        ref = resample_poly(ref, 3, 2)
    assert_found_in_order(ref, received, block=4800, min_corr=0.95)
    # the echo reply played: the sink got about as much audio as the simulator sent
    (reply,) = session.replies
    sent_ms = len(transport.sent) / 2 / RATE * 1000
    assert sent_ms >= 0.9 * len(reply.audio) / 2 / 24000 * 1000
    assert [e.status for e in rec.events if isinstance(e, ev.ReplyDone)] == ["completed"]
    lines = [json.loads(x) for x in transcript.read_text().splitlines()]
    roles = [x["role"] for x in lines if x.get("role") in ("user", "agent")]
    assert roles == ["user", "agent"], lines


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_tool_call_round_trip(backend: str, tmp_path: Path, voices: dict) -> None:
    from botrun.core.config import load_config
    from botrun.core.tools import load_tools

    path, _ = voices["weather"]
    cfg = apply_overrides(
        load_config(Path(__file__).parent.parent / "configs" / "support.toml"),
        # (Gemini has no keyterm biasing: the config must leave them out, or it is refused)
        {"agent.greeting": "", "agent.backend": backend, "agent.input.keyterms": []},
    )
    tools = load_tools(cfg.agent.tools, [], timeout_s=5)
    scenario = scenario_from_dict(
        {
            "reply": {"ms_per_char": 5},
            "turns": [
                {
                    "user": "Where is my order A1001?",
                    "audio": "tone",
                    "tool": {"name": "lookup_order", "arguments": {"order_id": "a-1001"}},
                }
            ],
        }
    )
    transcript = tmp_path / "t.jsonl"
    summary, sim, rec, _ = await call_on(
        backend,
        tmp_path,
        [(path, 0.0, "Maria")],
        cfg,
        scenario,
        tools=tools,
        transcript=transcript,
    )
    assert summary.error is None, summary.error
    session = sim.session()
    assert [c["name"] for c in session.tool_calls] == ["lookup_order"]
    (result,) = session.tool_results
    assert json.loads(result["result"])["order_id"] == "A1001"
    assert not session.violations, session.violations
    assert rec.of(ev.TOOL_CALL)[0].data["name"] == "lookup_order"
    agent = [
        json.loads(x)["text"]
        for x in transcript.read_text().splitlines()
        if json.loads(x)["role"] == "agent"
    ]
    assert any("A1001" in text for text in agent), agent


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_barge_in_flushes_and_drops_stale_audio(
    backend: str, tmp_path: Path, voices: dict
) -> None:
    long_path, long = voices["long"]
    stop_path, _ = voices["stop"]
    # Bob interrupts 1.5 s into the echo; the simulator then sends 5 frames of the cut
    # reply anyway (stale audio after the interruption), which must never play.
    scenario = scenario_from_dict({"reply": {"delay_ms": 200, "stale_frames": 5}})
    reply_starts = len(long) / RATE + 0.3 + 0.2
    summary, sim, rec, transport = await call_on(
        backend,
        tmp_path,
        [(long_path, 0.0, "Ann"), (stop_path, reply_starts + 1.5, "Bob")],
        scenario=scenario,
    )
    assert summary.error is None, summary.error
    assert rec.of(ev.BARGE_IN) and transport.flushes
    assert summary.client_stats.stale_audio_chunks + summary.client_stats.late_audio_chunks >= 1
    cut = sim.session().replies[0]
    assert cut.status == "interrupted"
    if backend == "openai":
        # the model's memory is cut to what the caller heard: never more than the sink got
        # of that reply (the whole reply's audio reached the sink before any later reply)
        wire = sim.session().wire
        assert "truncations" in wire, {k: v for k, v in wire.items() if k != "client"}
        (trunc,) = wire["truncations"]
        delivered = sum(n for t, n in transport.writes if t <= transport.flushes[0])
        delivered_ms = delivered / 2 / RATE * 1000  # the cut reply's audio the sink got
        assert 0 < trunc["audio_end_ms"] <= delivered_ms
        assert trunc["audio_end_ms"] <= trunc["sent_ms"]
        assert trunc["audio_end_ms"] < len(cut.audio) / 48  # not all of it was heard


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_a_dropped_connection_recovers(backend: str, tmp_path: Path, voices: dict) -> None:
    a_path, _ = voices["fox"]
    b_path, _ = voices["weather"]
    scenario = scenario_from_dict({"faults": {"drop_at_reply_audio": 10}})
    reply_starts = 3.1 + 0.3 + 0.3
    summary, sim, rec, _ = await call_on(
        backend,
        tmp_path,
        [(a_path, 0.0, "Ann"), (b_path, reply_starts + 1.0, "Bob")],
        config(backend, **{"agent.input.turn_detection.interrupt_response": False}),
        scenario,
    )
    assert summary.error is None, summary.error
    stats = summary.client_stats
    assert stats.reconnects >= 1
    states = [e.data["state"] for e in rec.of(ev.SESSION_STATE)]
    if backend == "openai":  # no resume: a new session, seeded with the conversation so far
        assert stats.fresh_sessions >= 1 and "newsession" in states
        first, second = list(sim.sessions.values())[:2]
        seeded = second.wire.get("seeded", [])
        assert ("user", first.user_transcripts[0]) in seeded, seeded
        assert second.user_transcripts  # Bob was heard by the new session
    else:  # Gemini resumes the same session with its resumption handle
        assert stats.resumes >= 1 and "resumed" in states
        assert sim.session().connections >= 2


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_malformed_frames_are_survived(backend: str, tmp_path: Path, voices: dict) -> None:
    path, _ = voices["fox"]
    scenario = scenario_from_dict(
        {
            "faults": {
                "inject": ["malformed_json", "binary_frame", "unknown_event"],
                "inject_at_reply_audio": 3,
            }
        }
    )
    summary, _sim, rec, transport = await call_on(
        backend, tmp_path, [(path, 0.0, "Ann")], scenario=scenario
    )
    assert summary.error is None, summary.error
    stats = summary.client_stats
    assert stats.protocol_errors >= 2 and stats.unknown_events >= 1
    assert [e.status for e in rec.events if isinstance(e, ev.ReplyDone)] == ["completed"]
    assert len(transport.sent) > 0


@pytest.mark.parametrize(
    ("backend", "var"), [("openai", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY")]
)
async def test_a_refused_key_names_the_backends_variable(
    backend: str, var: str, tmp_path: Path, voices: dict
) -> None:
    path, _ = voices["fox"]
    summary, _sim, _rec, _ = await call_on(
        backend,
        tmp_path,
        [(path, 0.0, "Ann")],
        sim_kw={"api_key": "the-right-key"},
        api_key="a-wrong-key-for-this-service",
    )
    assert isinstance(summary.error, AgentError)
    assert var in str(summary.error) and "a-wrong-key" not in str(summary.error)


async def test_gemini_go_away_resumes_without_the_caller_noticing(
    tmp_path: Path, voices: dict
) -> None:
    a_path, _ = voices["fox"]
    b_path, _ = voices["weather"]
    # Every connection gets goAway 2.5 s after its setup (and would be closed 10 s later):
    # the client reconnects with the latest resumption handle between turns.
    summary, sim, rec, _ = await call_on(
        "gemini",
        tmp_path,
        [(a_path, 0.0, "Ann"), (b_path, 4.2, "Bob")],  # Bob joins while the bot replies
        config("gemini", **{"agent.input.turn_detection.interrupt_response": False}),
        sim_kw={"go_away_after_s": 2.5},
    )
    assert summary.error is None, summary.error
    session = sim.session()
    assert len(sim.sessions) == 1 and session.connections >= 2
    assert summary.client_stats.resumes >= 1
    assert session.wire.get("go_away")
    statuses = [e.status for e in rec.events if isinstance(e, ev.ReplyDone)]
    assert statuses.count("completed") == 2, statuses  # both replies whole
    assert len(session.user_transcripts) == 2


async def test_gemini_config_change_reconnects_with_the_new_setup() -> None:
    from botrun.core.backends.base import BackendContext
    from botrun.core.backends.gemini.client import GeminiClient

    async with Simulator(protocol="gemini", speed=4) as sim:
        cfg = apply_overrides(config("gemini"), {"agent.url": sim.url})
        client = GeminiClient.from_context(BackendContext(cfg, None))
        await client.start()
        await client.update_session({"system_prompt": "Now speak French."})
        for _ in range(200):
            if sim.session().connections >= 2 and client.ready:
                break
            await asyncio.sleep(0.02)
        assert sim.session().connections == 2 and len(sim.sessions) == 1  # resumed
        assert client.stats.resumes == 1
        await client.close()


@pytest.mark.parametrize("backend", PROTOCOLS)
async def test_a_tool_call_cut_by_a_barge_in_is_discarded(
    backend: str, tmp_path: Path, voices: dict
) -> None:
    from botrun.core.tools import load_tools

    async def slow_lookup(q: str) -> str:
        """Look something up, slowly.

        Args:
            q: what to look up.
        """
        await asyncio.sleep(2.5)
        return f"found {q}"

    fox, _ = voices["fox"]
    stop, _ = voices["stop"]
    tools = load_tools([], [slow_lookup], timeout_s=10)
    scenario = scenario_from_dict(
        {
            "reply": {"delay_ms": 100},
            "turns": [
                {"user": "look it up", "tool": {"name": "slow_lookup", "arguments": {"q": "x"}}},
            ],
        }
    )
    # Bob speaks over the "One moment, let me check that." the agent says while the tool runs
    summary, sim, rec, _ = await call_on(
        backend,
        tmp_path,
        [(fox, 0.0, "Ann"), (stop, 4.3, "Bob")],
        scenario=scenario,
        tools=tools,
    )
    assert summary.error is None, summary.error
    session = next(iter(sim.sessions.values()))
    assert [c["name"] for c in session.tool_calls] == ["slow_lookup"]
    assert rec.of(ev.BARGE_IN)
    assert summary.client_stats.tool_results_discarded >= 1
    assert session.tool_results == [] and not session.violations, session.violations
    if backend == "gemini":
        assert session.wire.get("cancelled")
