"""Several sessions at once, with one misbehaving client among them: nothing is lost, nobody
else is disturbed. (The 100-session run lives in benchmarks/sim_load.py.)"""

from __future__ import annotations

import asyncio
import json

import numpy as np

from botrun.core.sim import Simulator
from tests.sim_support import RawClient, pcm_of, utterance

SESSIONS = 10


async def one_session(sim: Simulator, seed: int) -> tuple[str, bytes, bytes]:
    rng = np.random.default_rng(seed)
    audio = utterance(int(rng.integers(300, 600)), 100, 500)
    audio = (audio + rng.integers(-30, 30, len(audio))).astype(np.int16)  # unique per session
    c = await RawClient.connect(sim.url)
    sid = await c.start(input={"turn_detection": {"min_silence": 400}})
    await c.send_audio(audio, chunk_ms=20)
    await c.wait("reply.done", timeout=20)
    echoed = b"".join(pcm_of(e) for e in c.of_type("reply.audio"))
    await c.send("session.end")
    await c.wait("session.ended")
    await c.close()
    return sid, audio.tobytes(), echoed


async def vandal(sim: Simulator) -> None:
    c = await RawClient.connect(sim.url)
    await c.send_raw("garbage")
    await c.start()
    for frame in ("{", b"\xff" * 100, json.dumps({"type": "input.audio", "audio": "%%%"})):
        await c.send_raw(frame)
    c.ws.transport.abort()


async def test_ten_concurrent_sessions_lose_nothing(sim: Simulator) -> None:
    results = await asyncio.gather(*(one_session(sim, i) for i in range(SESSIONS)), vandal(sim))
    sessions = results[:SESSIONS]
    assert len({sid for sid, _, _ in sessions}) == SESSIONS
    for sid, sent, echoed in sessions:
        s = sim.sessions[sid]
        assert s.received_audio == sent and s.received_samples == len(sent) // 2
        assert not s.errors
        a, b = s.utterances[0]
        assert echoed == sent[a * 2 : b * 2]
    assert len(sim.sessions) == SESSIONS + 1
