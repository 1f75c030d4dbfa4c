"""The end-of-call summary agrees with the recording (issue 12 item 7).

"bot spoke" counts the audio that reached the transport (the pacer's sink), not what was
queued; the reply in flight when the call ends (Ctrl-C) counts as an interrupted reply, with
its latency, and its words go to the transcript marked interrupted. Everything is compared
with what the WAV transport recorded; the only tolerances are chunk-sized (a final partial
chunk is padded with silence; the printed figure is rounded to 0.1 s)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sim_support import start_wav_call
from speech import read_wav, speak, write_wav
from test_bridge_e2e import RATE, Recorder, RecordingWav, config

from botrun.core import events as ev
from botrun.core.config import apply_overrides
from botrun.core.sim import Simulator
from botrun.core.sim.scenario import scenario_from_dict
from botrun.core.transport import Transport
from botrun.transports.wav.transport import WavInput

CHUNK_MS = Transport.output_chunk_ms  # what the WAV transport's pacer writes


def voiced_ms(samples: np.ndarray, rate: int = RATE) -> float:
    """Milliseconds of 20 ms frames of the recording that hold sound (any sample above
    -50 dBFS): a frame can only sound if bot audio reached the sink in it."""
    frame = rate * CHUNK_MS // 1000
    n = len(samples) // frame
    frames = np.abs(samples[: n * frame].astype(np.int32)).reshape(n, frame).max(axis=1)
    return float(np.count_nonzero(frames > 100) * CHUNK_MS)


def printed_spoken_s(summary: str) -> float:
    return float(re.search(r"bot spoke ([\d.]+) s", summary).group(1))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speech") / "long.wav"
    speak("I would like to talk about my order, it has not arrived yet and I am worried.", path)
    return path


class StopAfterWav(RecordingWav):
    """The WAV transport that presses Ctrl-C (a real SIGINT to this process) once
    ``stop_after`` chunks of the bot's voice have reached it."""

    def __init__(self, *a: Any, stop_after: int, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.stop_after = stop_after
        self.pressed = threading.Event()

    def write_audio(self, pcm: bytes) -> None:
        super().write_audio(pcm)
        if len(self.writes) >= self.stop_after and not self.pressed.is_set():
            self.pressed.set()
            os.kill(os.getpid(), signal.SIGINT)


async def test_ctrl_c_mid_reply_summary_matches_the_recording(
    tmp_path: Path, long_speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the runner, as ``botrun wav`` runs it: its signal handler turns the SIGINT
    into ``Bridge.stop``, and its console has printed everything, summary last, by the time
    the call returns (issue 15: the console writes from a thread of its own)."""
    from botrun.bots.runner import call
    from botrun.transports.wav.wavio import read_wav_mono16

    out = tmp_path / "bot.wav"
    transcript = tmp_path / "t.jsonl"
    transport = StopAfterWav(
        [WavInput(long_speech, read_wav_mono16(long_speech, RATE), 0.0, "Ann")],
        out,
        RATE,
        1.0,
        stop_after=800 // CHUNK_MS,  # 0.8 s into the echo of Ann's 5 s sentence
    )
    rec = Recorder()
    async with Simulator() as sim:
        cfg = apply_overrides(config(), {"agent.url": sim.url, "bridge.idle_timeout_s": 0.0})
        summary = await call(transport, cfg, None, transcript, observers=[rec])
    assert transport.pressed.is_set() and summary.reason == "SIGINT"
    m = summary.metrics
    sent_ms = len(transport.sent) / 2 / RATE * 1000
    recording, _ = read_wav(out)
    # the printed figure (one decimal) is what reached the sink
    assert abs(printed_spoken_s(m.summary()) - sent_ms / 1000) <= 0.05 + CHUNK_MS / 1000
    # spoken = what reached the sink, less the padding of at most one final partial chunk
    assert m.spoken_ms is not None
    assert sent_ms - CHUNK_MS <= m.spoken_ms <= sent_ms
    assert voiced_ms(recording) <= m.spoken_ms + 2 * CHUNK_MS
    assert m.spoken_ms >= 800 - CHUNK_MS
    # the reply in flight is a reply (interrupted), with the latency the console printed
    assert len(m.turns) == 1 and m.turns[0].interrupted
    assert m.turns[0].reply_ms == pytest.approx(m.spoken_ms)
    printed = [e.data["latency_ms"] for e in rec.of(ev.REPLY_STARTED)]
    assert printed and m.latencies_ms == pytest.approx(printed)
    text = m.summary()
    assert "1 agent reply," in text and "response latency" in text
    assert f"bot spoke {m.spoken_ms / 1000:.1f} s" in text
    # its words so far are in the transcript, marked interrupted
    agent = [
        x for x in map(json.loads, transcript.read_text().splitlines()) if x["role"] == "agent"
    ]
    assert len(agent) == 1 and agent[0]["interrupted"] is True and agent[0]["text"]
    # the console's output is complete when the call returns: every line, summary last
    screen = capsys.readouterr().out.splitlines()
    assert "+ Ann joined" in screen[0]
    assert any(f"bot: {agent[0]['text']} [interrupted]" in line for line in screen)
    assert any(f"(reply after {printed[0]:.0f} ms)" in line for line in screen)
    assert f"bot spoke {m.spoken_ms / 1000:.1f} s" in screen[-3:]
    assert screen[-1] == text.splitlines()[-1]


async def test_barge_in_summary_counts_only_what_was_played(
    tmp_path: Path, long_speech: Path
) -> None:
    from test_bridge_e2e import run_wav_call

    stop = tmp_path / "stop.wav"
    speak("Stop, wait a moment please.", stop)
    samples = len(read_wav(long_speech)[0])
    scenario = scenario_from_dict({"reply": {"delay_ms": 200}})
    reply_starts = samples / RATE + 0.3 + 0.2
    summary, recording, _sim, rec, transport = await run_wav_call(
        tmp_path,
        [(long_speech, 0.0, "Ann"), (stop, reply_starts + 1.5, "Bob")],
        config(),
        scenario,
    )
    assert summary.error is None and rec.of(ev.BARGE_IN)
    m = summary.metrics
    sent_ms = len(transport.sent) / 2 / RATE * 1000
    slack_s = 0.05 + len(m.turns) * CHUNK_MS / 1000
    assert abs(printed_spoken_s(m.summary()) - sent_ms / 1000) <= slack_s
    assert m.spoken_ms is not None
    # flushed audio never reached the sink and is not counted (one padded chunk per reply)
    assert sent_ms - len(m.turns) * CHUNK_MS <= m.spoken_ms <= sent_ms
    assert voiced_ms(recording) <= m.spoken_ms + 2 * CHUNK_MS * len(m.turns)
    assert sum(t.reply_ms for t in m.turns) == pytest.approx(m.spoken_ms)
    played = [t for t in m.turns if t.reply_ms > 0]
    assert len(played) == 2 and played[0].interrupted and not played[1].interrupted


async def test_ctrl_c_during_the_greeting_cli_summary_matches_the_recording(
    tmp_path: Path, long_speech: Path
) -> None:
    """The real `botrun wav` command, Ctrl-C while the greeting plays: the printed summary
    counts the greeting and the time it was heard; the transcript has its words."""
    path = tmp_path / "late.wav"  # 3 s of silence first: the bot greets, then is cut off
    write_wav(path, bytes(3 * 2 * RATE) + read_wav(long_speech)[0].tobytes(), RATE)
    transcript = tmp_path / "t.jsonl"
    async with Simulator() as sim:
        proc = await start_wav_call(path, tmp_path, sim.url, transcript)
        # Ctrl-C once the simulator has sent 1 s of the 2.2 s greeting (it paces in real time)
        for _ in range(600):
            await asyncio.sleep(0.05)
            s = next(iter(sim.sessions.values()), None)
            if s is not None and s.reply_audio_frames >= 20:
                break
        proc.send_signal(signal.SIGINT)
        stdout, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    text = stdout.decode()
    replies = int(re.search(r"(\d+) agent repl(?:y|ies)", text).group(1))  # type: ignore[union-attr]
    spoken_s = printed_spoken_s(text)
    recording, _ = read_wav(tmp_path / "o.wav")
    heard_ms = voiced_ms(recording)
    assert heard_ms > 200, "the greeting was not recorded"
    assert replies == 1, text
    # printed with one decimal: within 50 ms of the sink's figure, which the recording bounds
    assert heard_ms / 1000 - 0.05 - 2 * CHUNK_MS / 1000 <= spoken_s
    assert spoken_s <= len(recording) / RATE + 0.05
    agent = [
        x for x in map(json.loads, transcript.read_text().splitlines()) if x["role"] == "agent"
    ]
    assert len(agent) == 1 and agent[0]["interrupted"] is True
    assert "Hi, I'm listening. How can I help?".startswith(agent[0]["text"])


def test_settle_without_any_audio_and_with_several_turns() -> None:
    from botrun.core.metrics import CallMetrics, Turn

    m = CallMetrics(turns=[Turn(audio_queued=True), Turn()])  # queued, never played
    m.settle(0.0)
    assert m.spoken_ms == 0.0 and [t.reply_ms for t in m.turns] == [0.0, 0.0]
    m = CallMetrics(turns=[Turn(sink_start_ms=500.0), Turn(sink_start_ms=0.0), Turn()])
    m.settle(1200.0)
    assert [t.reply_ms for t in m.turns] == [700.0, 500.0, 0.0]
    assert "bot spoke 1.2 s" in m.summary()


async def test_sped_up_call_length_is_meeting_time_like_the_report(tmp_path: Path) -> None:
    """`botrun wav --speed 4`: the console's call length is the call's own time, so it
    covers the whole input and the bot's speech, and it is the length `botrun report` gives
    the same call (it was wall-clock time, a quarter of it). Probe item 6."""
    import sys

    from botrun.bots.report import load_recording

    sample = Path(__file__).resolve().parent.parent / "bots" / "assets" / "demo-hello.wav"
    input_s = len(read_wav(sample)[0]) / read_wav(sample)[1]
    record = tmp_path / "rec"
    async with Simulator(speed=4) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botrun.bots.cli",
            "wav",
            "--input",
            str(sample),
            "--output",
            str(tmp_path / "o.wav"),
            "--speed",
            "4",
            "--agent-url",
            sim.url,
            "--record",
            str(record),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
        )
        stdout, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    text = stdout.decode()
    m = re.search(r"call length ([0-9.]+) s, (\d+) agent repl(y|ies), (\d+) interruptions?\b", text)
    assert m is not None, text
    length_s = float(m.group(1))
    assert (m.group(3) == "y") == (m.group(2) == "1"), text  # 1 agent reply, 2 agent replies
    assert length_s >= input_s and length_s >= printed_spoken_s(text), text
    report_s = load_recording(record).duration
    # the same call on the same (meeting) clock; the report's ends at its last event
    assert abs(length_s - report_s) <= 0.2 * report_s + 0.5, (length_s, report_s, text)


def test_summary_counts_are_singular_for_one() -> None:
    from botrun.core.metrics import CallMetrics, Turn

    m = CallMetrics(turns=[Turn()], barge_ins=1)
    first = m.summary().splitlines()[0]
    assert first.endswith(", 1 agent reply, 1 interruption"), first
    m = CallMetrics(turns=[Turn(), Turn()], barge_ins=0)
    assert m.summary().splitlines()[0].endswith(", 2 agent replies, 0 interruptions")
