"""``botrun daily`` end to end into the local voice-agent simulator, with the real SDK.

Real: daily-python's ``CallClient`` (renderers are set on it), the event handler driven from
foreign threads with SDK-shaped participant dicts, ``AudioData``-shaped frames of espeak-ng
speech through the transport's audio renderer, a real ``CustomAudioSource`` taking the bot's
voice with blocking real-time writes, the bridge, pacer, resamplers, agent client and the
simulator on loopback. The one thing replaced is Daily's cloud: the offline SDK cannot join
a room, so the join completion is produced locally in the shape the SDK gives it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daily_support import FakeAudioData, make_transport, participant
from daily_support import wait_for as wait_until
from speech import align, assert_found_in_order, speak

from botrun.core import events as ev
from botrun.core.config import apply_overrides, config_from_dict
from botrun.core.events import BridgeEvent
from botrun.transports.daily import sdk
from botrun.transports.daily.transport import DailyTransport

pytest.importorskip("daily")
pytest.importorskip("botrun.core.audio.pacer", reason="the bridge's pacer is not built yet")

RATE = 16000
FRAME = 320  # 20 ms at 16 kHz, what Daily's renderer delivers per callback


class ClientSpy:
    """Forwards every call to the real CallClient, remembering set_audio_renderer calls."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.renderers: list[tuple[str, int, int]] = []

    def set_audio_renderer(self, pid: str, cb: Any, **kw: Any) -> None:
        self.renderers.append((pid, kw["sample_rate"], kw["callback_interval_ms"]))
        self._client.set_audio_renderer(pid, cb, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class CloudlessDaily(DailyTransport):
    """The Daily transport with the network join answered locally; writes are timed."""

    def prepare(self, events: Any) -> None:
        super().prepare(events)
        self.spy = ClientSpy(self._client)
        self._client = self.spy
        self.writes: list[tuple[float, float, int]] = []
        self.flushes: list[float] = []

    async def _join_call(self, token: str | None) -> dict[str, Any]:
        local = participant(self.options.bot_name, local=True, pid=self._bot_id)
        return {"participants": {"local": local}}

    def flush_audio(self) -> None:  # the pacer calls it right after dropping its queue
        self.flushes.append(time.monotonic())
        super().flush_audio()

    def write_audio(self, pcm: bytes) -> None:
        t0 = time.monotonic()
        super().write_audio(pcm)
        self.writes.append((t0, time.monotonic(), len(pcm)))


def feed(transport: DailyTransport, pid: str, samples: np.ndarray) -> threading.Thread:
    """Deliver ``samples`` through the transport's renderer callback in real time, 20 ms per
    callback, from a thread of its own (like Daily's audio thread)."""

    def run() -> None:
        t0 = time.monotonic()
        for i, start in enumerate(range(0, len(samples), FRAME)):
            chunk = samples[start : start + FRAME]
            chunk = np.pad(chunk, (0, FRAME - len(chunk)))
            transport._renderer(pid, FakeAudioData(chunk.astype("<i2").tobytes()), "microphone")
            time.sleep(max(0.0, t0 + (i + 1) * 0.02 - time.monotonic()))

    t = threading.Thread(target=run, name="daily-audio-test")
    t.start()
    return t


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    d = tmp_path_factory.mktemp("daily-e2e")
    return {
        "ann": speak("I would like to talk about my order, it has not arrived yet.", d / "ann.wav"),
        "bob": speak("Stop, wait a moment please.", d / "bob.wav"),
    }


async def test_daily_call_into_the_simulator(voices: dict[str, np.ndarray], tmp_path: Path) -> None:
    from botrun.core.bridge import run_call
    from botrun.core.sim import Simulator

    ann_voice, bob_voice = voices["ann"], voices["bob"]
    seen: list[BridgeEvent] = []
    live_before = sdk.live_objects()
    t = make_transport(CloudlessDaily, audio_out="custom-track")
    assert isinstance(t, CloudlessDaily)
    async with Simulator() as sim:
        cfg = apply_overrides(
            config_from_dict({"agent": {"greeting": "Hello, how can I help?"}}),
            {
                "agent.url": sim.url,
                # Not 0: the room stays empty (but for the bot) for the second of bot noise
                # below, and an idle timeout of 0 may end the call before Ann's join is handled.
                "bridge.idle_timeout_s": 5.0,
                "bridge.leave_grace_s": 0.5,
            },
        )
        call = asyncio.create_task(
            run_call(
                t,
                cfg,
                api_key=None,
                observers=[seen.append],
            )
        )
        await wait_until(lambda: t._joined)
        h = t._handler
        bot = participant("botrun", local=True, pid=t.bot_participant_id)
        threading.Thread(target=h.on_participant_joined, args=(bot,)).start()
        # The bot's own audio, if it ever reached the renderer, is dropped by the bridge.
        noise = (np.random.default_rng(1).standard_normal(RATE) * 6000).astype("<i2")
        feed(t, t.bot_participant_id, noise).join()
        assert sim.sessions == {} and t.writes == []  # nobody there: no session, no greeting

        ann = participant("Ann")
        threading.Thread(target=h.on_participant_joined, args=(ann,)).start()
        # The greeting plays as soon as the first human is there.
        await wait_until(lambda: len(t.writes) >= 10, timeout=10)
        await wait_until(lambda: sim.sessions and t.spy.renderers, timeout=5)
        greeting_writes = len(t.writes)

        def greeted() -> bool:
            return any(e.kind == ev.TRANSCRIPT_AGENT and e.data.get("final") for e in seen)

        await wait_until(greeted, timeout=15)
        await asyncio.sleep(0.2)
        feeder = feed(t, ann["id"], ann_voice)
        await asyncio.to_thread(feeder.join)
        # The echo of Ann's sentence plays; 1 s into it Bob joins and talks over the bot.
        n0 = len(t.writes)
        await wait_until(lambda: len(t.writes) >= n0 + 50, timeout=15)
        bob = participant("Bob")
        threading.Thread(target=h.on_participant_joined, args=(bob,)).start()
        await wait_until(lambda: len(t.spy.renderers) == 2)
        flushes_before = len(t.flushes)
        bob_feeder = feed(t, bob["id"], bob_voice)
        await wait_until(lambda: len(t.flushes) > flushes_before, timeout=10)
        t_flush = t.flushes[flushes_before]  # the pacer's flush, as Bob started talking
        await asyncio.to_thread(bob_feeder.join)
        await asyncio.sleep(0.3)
        for p in (ann, bob):
            threading.Thread(target=h.on_participant_left, args=(p, "leftCall")).start()
        summary = await asyncio.wait_for(call, timeout=30)
        session = sim.session()

    assert summary.error is None, summary.error
    assert greeting_writes >= 10
    # Renderers: one per remote participant at 16 kHz / 20 ms, never the bot itself.
    assert t.spy.renderers == [(ann["id"], 16000, 20), (bob["id"], 16000, 20)]
    joined = [(e.participant_id, e.name) for e in seen if isinstance(e, ev.ParticipantJoined)]
    assert joined == [(ann["id"], "Ann"), (bob["id"], "Bob")]
    # What the agent heard is Ann's voice (at 24 kHz), and none of the bot's own noise.
    from scipy.signal import resample_poly

    received = np.frombuffer(session.received_audio, dtype="<i2")
    # Piece by piece (200 ms): under CPU load a starved delivery can leave a gap in what the
    # agent hears, which shifts whatever follows (see tests/speech.py). Ann spoke
    # alone, so each piece is there as she said it, in order.
    assert_found_in_order(
        resample_poly(ann_voice.astype(np.float64), 3, 2), received, block=4800, min_corr=0.95
    )
    _, corr_bot = align(resample_poly(noise.astype(np.float64), 3, 2), received)
    assert corr_bot < 0.2
    # The bot's voice reached Daily as blocking writes of whole 20-ms chunks.
    assert {n for _, _, n in t.writes} == {640}
    # Barge-in: what was still being handed to Daily after the flush is at most the
    # pacer's bound (max_ahead chunks); the rest of the reply never reached Daily.
    late = [w for w in t.writes if w[1] > t_flush]
    reply_left = [w for w in late if w[0] < t_flush + 0.25]
    assert len(reply_left) <= t.output_max_ahead
    assert summary.metrics.barge_ins >= 1
    # Left and released: the client and its audio source are gone.
    assert t._client is None and sdk.live_objects() == live_before
